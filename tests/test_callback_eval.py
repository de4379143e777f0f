"""LabelDiagCallback judges exactly the evaluation set, says when it stops training, and catches a
learning rate far above the fine-tuning range at train begin (#23 item 9). Tiny untrained BERTs in
real Trainer runs of a few steps."""
from __future__ import annotations

import logging

import numpy as np
import pytest

pytest.importorskip("transformers")

from helpers import tiny_trainer  # noqa: E402


@pytest.fixture(scope="module")
def parts():
    from labeldiag.synthetic import build_tokenizer, make_examples

    rows = make_examples(400, seed=3)
    return build_tokenizer([r["text"] for r in rows]), rows[:64], rows[64:304]  # 240 evaluation examples


def model_for(tokenizer, seed=0):
    from labeldiag.synthetic import TOPICS, tiny_bert

    return tiny_bert(len(tokenizer), list(TOPICS), seed=seed)


def accuracy(eval_pred):
    logits, labels = eval_pred
    return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}


def trainer_for(tmp_path, tokenizer, model, train_rows, eval_rows, callbacks, lr=1e-4, steps=2, **extra):
    return tiny_trainer(tmp_path, tokenizer, model, train_rows, eval_rows, callbacks, lr=lr, steps=steps,
                        compute_metrics=accuracy, **extra)


def test_evaluation_is_judged_on_exactly_the_evaluation_set(parts, tmp_path):
    from labeldiag import LabelDiagCallback

    tokenizer, train_rows, eval_rows = parts
    cb = LabelDiagCallback(verbose=False)
    trainer = trainer_for(tmp_path, tokenizer, model_for(tokenizer), train_rows, eval_rows, [cb])
    trainer.train()
    evaluation = cb.reports[-1]
    assert "evaluation" in evaluation.notes[0]
    assert evaluation.data["examples"] == len(eval_rows) == 240  # the 16-example probe batch is not in it
    logged = next(h for h in trainer.state.log_history if "eval_accuracy" in h)
    assert evaluation.metrics["accuracy"] == pytest.approx(logged["eval_accuracy"], abs=1e-9)
    assert logged["eval_labeldiag_accuracy"] == pytest.approx(logged["eval_accuracy"], abs=1e-9)
    # a second evaluation starts from an empty capture too
    again = trainer.evaluate()
    assert cb.reports[-1].data["examples"] == 240
    assert again["eval_labeldiag_accuracy"] == pytest.approx(again["eval_accuracy"], abs=1e-9)


def test_stopping_training_is_logged_and_noted(parts, tmp_path, caplog):
    import torch

    from labeldiag import LabelDiagCallback

    tokenizer, train_rows, eval_rows = parts
    model = model_for(tokenizer)
    with torch.no_grad():  # every example predicted as class 0: constant-predictions at the first evaluation
        model.classifier.bias.copy_(torch.tensor([50.0, 0.0, 0.0]))
    cb = LabelDiagCallback(fail_on="error", verbose=False)
    trainer = trainer_for(tmp_path, tokenizer, model, train_rows, eval_rows, [cb], lr=1e-5, steps=6)
    trainer.args.eval_steps = trainer.args.logging_steps = 2
    with caplog.at_level(logging.WARNING, logger="labeldiag"):
        trainer.train()
    assert trainer.state.global_step == 2  # stopped at the first evaluation
    stopped = [r.message for r in caplog.records if r.name == "labeldiag"]
    assert len(stopped) == 1 and "stopped training at evaluation at step 2" in stopped[0]
    assert "fail_on='error'" in stopped[0] and "constant-predictions" in stopped[0]
    assert stopped[0] in cb.reports[-1].notes


def test_learning_rate_far_above_fine_tuning_range_at_train_begin(parts, tmp_path):
    from labeldiag import LabelDiagCallback

    tokenizer, train_rows, eval_rows = parts
    cb = LabelDiagCallback(verbose=False)
    trainer_for(tmp_path, tokenizer, model_for(tokenizer), train_rows, eval_rows, [cb], lr=5e-3, steps=1).train()
    f = cb.reports[0].get("learning-rate-too-high")
    assert f is not None and f.severity == "warning", cb.reports[0].findings
    assert f.evidence["lr"] == 5e-3 and f.evidence["median_update_weight_ratio"] > 1e-2
    assert "fine-tuning range" in f.message


@pytest.mark.parametrize("lr", [2e-5, 1e-3])
def test_usual_learning_rates_pass_train_begin(parts, tmp_path, lr):
    from labeldiag import LabelDiagCallback

    tokenizer, train_rows, eval_rows = parts
    model = model_for(tokenizer)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cb = LabelDiagCallback(verbose=False)
    trainer = trainer_for(tmp_path, tokenizer, model, train_rows, eval_rows, [cb], lr=lr, steps=1)
    cb.on_init_end(trainer.args, trainer.state, trainer.control, model=model)
    report = cb.on_train_begin(trainer.args, trainer.state, trainer.control, model=model,
                               optimizer=trainer.create_optimizer(), train_dataloader=trainer.get_train_dataloader())
    begin = cb.reports[0]
    assert not begin.has("learning-rate-too-high"), begin.findings
    assert begin.metrics["learning_rate"] == lr
    # the probe left no gradient, no changed weight and nothing captured for the evaluation
    assert all(p.grad is None for p in model.parameters())
    assert all(bool((p == before[n]).all()) for n, p in model.named_parameters())
    assert cb._captured == [] and report is trainer.control
