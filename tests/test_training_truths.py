"""What a training run hides (#20 item 4): each fault planted for real in a tiny BERT, and its healthy twin.

logged-loss-scale-mismatch and no-grad-under-checkpointing in real Trainer runs of a few steps;
head-weights-garbage at load (every command) and at train begin; model-max-length-unset on a
tokenizer left at transformers' 1e30 sentinel.
"""
from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from helpers import tiny_trainer  # noqa: E402
from tests.test_callback_eval import model_for  # noqa: E402  (shared tiny-Trainer pieces)


@pytest.fixture(scope="module")
def parts():
    from labeldiag.synthetic import build_tokenizer, make_examples

    rows = make_examples(160, seed=4)
    return build_tokenizer([r["text"] for r in rows]), rows[:128], rows[128:]


def train(tmp_path, tokenizer, model, rows, eval_rows, cb, steps=2, **extra):
    trainer = tiny_trainer(tmp_path, tokenizer, model, rows, None, [cb], lr=1e-4, steps=steps, batch_size=8, **extra)
    trainer.train()
    return trainer


def codes(cb):
    return {f.code for r in cb.reports for f in r.findings}


# --- logged-loss-scale-mismatch ----------------------------------------------------------------------

def test_accumulated_loss_logged_k_times_too_large(parts, tmp_path):
    """transformers 5.x passes num_items_in_batch to BertForSequenceClassification (its forward takes
    **kwargs), which ignores it, and then skips the division by gradient_accumulation_steps."""
    from labeldiag import LabelDiagCallback

    tokenizer, rows, eval_rows = parts
    cb = LabelDiagCallback(verbose=False)
    trainer = train(tmp_path, tokenizer, model_for(tokenizer), rows, eval_rows, cb, gradient_accumulation_steps=4)
    found = [r.get("logged-loss-scale-mismatch") for r in cb.reports if r.has("logged-loss-scale-mismatch")]
    assert len(found) == 1, [r.findings for r in cb.reports]
    f = found[0]
    assert f.severity == "warning" and f.evidence["gradient_accumulation_steps"] == 4
    assert f.evidence["ratio"] == pytest.approx(4.0, rel=0.02) and f.evidence["micro_batches"] == 8
    logged = next(h["loss"] for h in trainer.state.log_history if "loss" in h)
    assert f.evidence["logged_loss"] == pytest.approx(logged)
    assert "accepts_loss_kwargs = False" in f.hint


def test_accumulated_loss_divided_by_the_trainer_is_not_reported(parts, tmp_path):
    from labeldiag import LabelDiagCallback

    tokenizer, rows, eval_rows = parts
    model = model_for(tokenizer)
    model.accepts_loss_kwargs = False  # the documented fix: the Trainer divides by the accumulation steps
    cb = LabelDiagCallback(verbose=False)
    train(tmp_path, tokenizer, model, rows, eval_rows, cb, gradient_accumulation_steps=4)
    assert "logged-loss-scale-mismatch" not in codes(cb)


# --- no-grad-under-checkpointing ---------------------------------------------------------------------

def frozen_embeddings(tokenizer, reentrant: bool):
    model = model_for(tokenizer)
    for p in model.bert.embeddings.parameters():
        p.requires_grad_(False)
    model.gradient_checkpointing_enable({"use_reentrant": reentrant})
    # what older transformers and custom models do: no hook makes the frozen embeddings' output need a grad
    model.disable_input_require_grads()
    return model


def test_reentrant_checkpointing_with_frozen_embeddings_in_the_callback(parts, tmp_path):
    from labeldiag import LabelDiagCallback

    tokenizer, rows, eval_rows = parts
    cb = LabelDiagCallback(verbose=False)
    train(tmp_path, tokenizer, frozen_embeddings(tokenizer, reentrant=True), rows, eval_rows, cb, steps=1)
    f = cb.reports[0].get("no-grad-under-checkpointing")
    assert f is not None and f.severity == "error", cb.reports[0].findings
    assert f.evidence["layers"] == ["layer 0", "layer 1"] and f.evidence["count"] == 32
    assert "use_reentrant" in f.hint and "enable_input_require_grads" in f.hint


def test_non_reentrant_checkpointing_gets_gradients(parts, tmp_path):
    from labeldiag import LabelDiagCallback

    tokenizer, rows, eval_rows = parts
    cb = LabelDiagCallback(verbose=False)
    train(tmp_path, tokenizer, frozen_embeddings(tokenizer, reentrant=False), rows, eval_rows, cb, steps=1)
    assert "no-grad-under-checkpointing" not in codes(cb), cb.reports[0].findings


def test_grad_flow_names_checkpointing_not_a_cut_graph(parts):
    from labeldiag import grad_flow

    tokenizer, rows, _ = parts
    planted = grad_flow(frozen_embeddings(tokenizer, reentrant=True), rows[:32], tokenizer=tokenizer)
    assert planted.has("no-grad-under-checkpointing") and not planted.has("disconnected-parameters"), \
        planted.findings
    healthy = grad_flow(frozen_embeddings(tokenizer, reentrant=False), rows[:32], tokenizer=tokenizer)
    assert not healthy.has("no-grad-under-checkpointing") and not healthy.has("disconnected-parameters")


# --- head-weights-garbage ----------------------------------------------------------------------------

def garbage_head(tokenizer):
    """What torch.empty leaves behind: scattered values around 1e37 among tiny ones."""
    import torch

    model = model_for(tokenizer)
    with torch.no_grad():
        w = model.classifier.weight
        w[0, ::7] = 3.4e37
        w[2, 3::11] = -1.2e37
    return model


def test_head_garbage_at_load_and_at_train_begin(parts, tmp_path):
    from labeldiag import LabelDiagCallback, check_logits

    tokenizer, rows, eval_rows = parts
    report = check_logits(garbage_head(tokenizer), rows[:32], tokenizer=tokenizer)
    f = report.get("head-weights-garbage")
    assert f is not None and f.severity == "error", report.findings
    assert f.evidence["tensor"] == "classifier.weight" and f.evidence["max_abs"] == pytest.approx(3.4e37, rel=1e-6)
    cb = LabelDiagCallback(verbose=False)
    train(tmp_path, tokenizer, garbage_head(tokenizer), rows, eval_rows, cb, steps=1)
    assert cb.reports[0].has("head-weights-garbage")


def test_doctor_ranks_a_garbage_head_first(parts):
    from labeldiag.checks.diagnosis import rank_findings
    from labeldiag.findings import Finding

    found = [Finding("label-permutation", "m"), Finding("logit-saturation", "m"), Finding("head-weights-garbage", "m")]
    ranked = rank_findings(found)
    assert [e.code for e in ranked] == ["head-weights-garbage"]
    assert ranked[0].explains == ("label-permutation", "logit-saturation")


def test_nan_head_is_garbage_and_a_trained_head_is_not(parts, trained):
    import torch
    from transformers import AutoModelForSequenceClassification

    from labeldiag import check_logits
    from labeldiag.checks.training_run import head_weights_garbage
    from labeldiag.measure.head_values import head_values

    tokenizer, rows, _ = parts
    model = model_for(tokenizer)
    with torch.no_grad():
        model.classifier.bias[1] = float("nan")
    assert head_weights_garbage(head_values(model))[0].evidence["nonfinite"] == 1
    healthy = check_logits(trained["checkpoint"], trained["data"], max_examples=64)
    assert not healthy.has("head-weights-garbage")
    assert not head_weights_garbage(head_values(AutoModelForSequenceClassification.from_pretrained(
        trained["checkpoint"])))


# --- model-max-length-unset --------------------------------------------------------------------------

def test_tokenizer_without_a_length_limit_is_noted(parts):
    from labeldiag import check_logits
    from labeldiag.synthetic import build_tokenizer

    tokenizer, rows, _ = parts
    unset = build_tokenizer([r["text"] for r in rows])
    unset.model_max_length = int(1e30)  # what from_pretrained leaves when the folder sets no limit
    model = model_for(unset)
    report = check_logits(model, rows[:32], tokenizer=unset)
    f = report.get("model-max-length-unset")
    assert f is not None and f.severity == "info" and f.evidence["model_max_length"] == 1e30
    assert not check_logits(model, rows[:32], tokenizer=tokenizer).has("model-max-length-unset")


# --- the judges on plain records ---------------------------------------------------------------------

@pytest.mark.parametrize("logged, k, micro_batches, found", [
    (4.0, 4, 8, True),    # the Trainer forgot to divide by k
    (1.0, 4, 8, False),   # divided: the logged loss is the recomputed one
    (2.0, 4, 8, False),   # off, but not by the accumulation factor: another cause, not this verdict
    (4.0, 4, 3, False),   # fewer micro-batches than one accumulated step
    (2.0, 1, 8, False),   # no accumulation, nothing to scale
], ids=["k-times", "divided", "other-factor", "too-few-batches", "no-accumulation"])
def test_logged_loss_scale_judge(logged, k, micro_batches, found):
    from labeldiag.checks.training_run import logged_loss_scale_mismatch
    from labeldiag.records import LossScaleRecord

    rec = LossScaleRecord(logged_loss=logged, recomputed_loss=1.0, micro_batches=micro_batches,
                          accumulation_steps=k, examples=micro_batches * 8)
    assert bool(logged_loss_scale_mismatch(rec)) is found


def test_recomputed_training_loss_is_the_cross_entropy_of_its_batches():
    import torch

    from labeldiag.measure.train_probe import TrainingLosses

    torch.manual_seed(0)
    batches = [(torch.randn(8, 3), torch.randint(0, 3, (8,))) for _ in range(4)]
    losses = TrainingLosses()
    for logits, labels in batches:
        losses.add(logits, labels)
    losses.add(torch.randn(8, 3, 5), torch.randint(0, 3, (8, 3)))  # token logits: not a sequence classifier
    expected = sum(float(torch.nn.functional.cross_entropy(x, y)) for x, y in batches) / 4
    rec = losses.record(logged_loss=1.0, accumulation_steps=4)
    assert rec.micro_batches == 4 and rec.examples == 32 and rec.recomputed_loss == pytest.approx(expected)
