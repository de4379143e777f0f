"""LabelDiagCallback inside real (tiny) transformers Trainer runs."""
from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from helpers import tiny_trainer  # noqa: E402


def _trainer(tmp_path, tokenizer, model, train_rows, eval_rows, lr, steps, callbacks, optimizers=(None, None),
             eval_every=None):
    return tiny_trainer(tmp_path, tokenizer, model, train_rows, eval_rows, callbacks, lr=lr, steps=steps,
                        eval_every=eval_every or steps // 2, optimizers=optimizers)


@pytest.fixture(scope="module")
def setup(trained):
    """The trained tiny BERT's tokenizer and fresh rows; _model() loads the trained checkpoint anew."""
    from transformers import AutoTokenizer

    from labeldiag.synthetic import make_examples

    tokenizer = AutoTokenizer.from_pretrained(trained["checkpoint"])
    return tokenizer, make_examples(160, seed=7), make_examples(120, seed=8), trained["checkpoint"]


def _model(setup):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(setup[3])


def codes(report):
    return {f.code for f in report.findings if f.severity != "info"}


def test_healthy_run_reports_nothing(setup, tmp_path):
    from labeldiag import LabelDiagCallback

    tokenizer, train_rows, eval_rows, _ = setup
    cb = LabelDiagCallback(fail_on="error", verbose=False)
    trainer = _trainer(tmp_path, tokenizer, _model(setup), train_rows, eval_rows, lr=1e-4, steps=10, callbacks=[cb])
    trainer.train()
    assert trainer.state.global_step == 10  # never stopped
    assert len(cb.reports) == 3  # train begin + two evaluations
    assert [codes(r) for r in cb.reports] == [set(), set(), set()], [r.findings for r in cb.reports]
    assert cb.reports[-1].metrics["accuracy"] > 0.8
    # the verdicts reached the Trainer's logs, where TensorBoard / W&B read them
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    assert evals and all(h["eval_labeldiag_errors"] == 0.0 for h in evals)
    assert "eval_labeldiag_accuracy" in evals[-1]


def test_collapse_is_reported_and_stops_training(setup, tmp_path):
    from labeldiag import LabelDiagCallback

    tokenizer, train_rows, eval_rows, _ = setup
    cb = LabelDiagCallback(fail_on="error", verbose=False)
    # a learning rate this high drives every prediction into one class
    trainer = _trainer(tmp_path, tokenizer, _model(setup), train_rows, eval_rows, lr=5.0, steps=40, callbacks=[cb],
                       eval_every=10)
    trainer.train()
    found = [r for r in cb.reports[1:] if r.has("constant-predictions")]
    assert found, [(r.notes, [f.code for f in r.findings]) for r in cb.reports]
    # stopped right after the first evaluation with an error, before the step budget ran out
    assert cb.reports[-1] is found[0] and trainer.state.global_step < 40
    assert [h for h in trainer.state.log_history if "eval_labeldiag_constant_predictions" in h]


def test_optimizer_without_the_encoder_is_reported(setup, tmp_path):
    import torch

    from labeldiag import LabelDiagCallback

    tokenizer, train_rows, eval_rows, _ = setup
    model = _model(setup)
    head_only = torch.optim.AdamW(model.classifier.parameters(), lr=1e-3)
    cb = LabelDiagCallback(verbose=False)
    trainer = _trainer(tmp_path, tokenizer, model, train_rows, eval_rows, lr=1e-3, steps=2, callbacks=[cb],
                       optimizers=(head_only, None))
    trainer.train()
    begin = cb.reports[0]
    f = begin.get("params-not-in-optimizer")
    assert f is not None and f.severity == "error", begin.findings
    assert f.evidence["count"] == len([p for p in model.parameters() if p.requires_grad]) - 2
    assert all(not n.startswith("classifier") for n in f.evidence["parameters"])


def test_bad_fail_on_is_refused():
    from labeldiag import LabelDiagCallback, UsageError

    with pytest.raises(UsageError, match="fail_on"):
        LabelDiagCallback(fail_on="sometimes")
