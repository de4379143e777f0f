"""What a training run hides (#20): the logged loss's scale, gradients under checkpointing, a head
left uninitialised, a tokenizer without a length limit. Plain numbers in, findings out."""
from __future__ import annotations

from labeldiag import thresholds as T
from labeldiag.checks.parameters import listing
from labeldiag.findings import Finding
from labeldiag.records import HeadValues, LossScaleRecord, ParameterCensus
from labeldiag.catalogue import (
    HEAD_WEIGHTS_GARBAGE, LOGGED_LOSS_SCALE_MISMATCH, MODEL_MAX_LENGTH_UNSET, NO_GRAD_UNDER_CHECKPOINTING,
)


def logged_loss_scale_mismatch(rec: LossScaleRecord | None) -> list[Finding]:
    """The Trainer's logged loss against the cross-entropy of the same micro-batches' own logits.

    With gradient accumulation k, a model whose forward takes **kwargs receives num_items_in_batch and the
    Trainer stops dividing by k; a sequence classifier ignores it, so the logged loss (and the gradient) is k x.
    """
    if rec is None or rec.accumulation_steps < 2 or rec.micro_batches < rec.accumulation_steps:
        return []
    if rec.recomputed_loss <= T.LOSS_SCALE_MIN_LOSS:
        return []  # a fitted batch's loss is too small for a ratio to mean anything
    ratio = rec.logged_loss / rec.recomputed_loss
    k = rec.accumulation_steps
    if abs(ratio / k - 1.0) > T.LOSS_SCALE_TOLERANCE:
        return []
    return [Finding(
        LOGGED_LOSS_SCALE_MISMATCH,
        f"the Trainer logged loss {rec.logged_loss:.4g}, {ratio:.2f} x the cross-entropy {rec.recomputed_loss:.4g} "
        f"recomputed from the same {rec.micro_batches} micro-batches' logits and labels "
        f"(gradient_accumulation_steps={k}): the loss, and so the gradient, is not divided by the accumulation steps",
        {"logged_loss": rec.logged_loss, "recomputed_loss": rec.recomputed_loss, "ratio": ratio,
         "gradient_accumulation_steps": k, "micro_batches": rec.micro_batches, "examples": rec.examples,
         "test": f"|ratio / k - 1| <= {T.LOSS_SCALE_TOLERANCE:g}"},
    )]


def no_grad_under_checkpointing(c: ParameterCensus | None) -> list[Finding]:
    """Checkpointing on and trainable tensors without a gradient: the cause, not a cut graph
    (disconnected-parameters stands aside when checkpointing is on)."""
    if c is None or not c.checkpointing or not c.backward_ran or not c.no_grad:
        return []
    return [Finding(
        NO_GRAD_UNDER_CHECKPOINTING,
        f"gradient checkpointing is on and {len(c.no_grad)} trainable tensor(s) ({c.no_grad_elements:,} elements) "
        f"got no gradient from one backward pass: {listing(c.no_grad, layers=c.no_grad_layers)}",
        {"count": len(c.no_grad), "elements": c.no_grad_elements, "trainable_elements": c.trainable_elements,
         "layers": list(c.no_grad_layers[:20]), "parameters": list(c.no_grad[:20])},
    )]


def head_weights_garbage(head: HeadValues | None) -> list[Finding]:
    if head is None or (head.max_abs < T.HEAD_GARBAGE_MIN_ABS and not head.nonfinite):
        return []
    what = f"|value| up to {head.max_abs:.3g} in '{head.largest}'" if head.max_abs >= T.HEAD_GARBAGE_MIN_ABS else ""
    bad = f"{head.nonfinite:,} NaN/inf value(s)" if head.nonfinite else ""
    return [Finding(
        HEAD_WEIGHTS_GARBAGE,
        f"the head holds {' and '.join(x for x in (what, bad) if x)}: far outside any initialiser's range "
        f"(threshold {T.HEAD_GARBAGE_MIN_ABS:g}; a trained head stays below 1), memory left uninitialised",
        {"max_abs": head.max_abs, "tensor": head.largest, "nonfinite": head.nonfinite, "elements": head.elements,
         "parameters": head.parameters[:10], "threshold": T.HEAD_GARBAGE_MIN_ABS},
    )]


def model_max_length_unset(model_max_length: float | None) -> list[Finding]:
    if not isinstance(model_max_length, (int, float)) or model_max_length < T.MODEL_MAX_LENGTH_SENTINEL:
        return []
    return [Finding(
        MODEL_MAX_LENGTH_UNSET,
        f"the tokenizer's model_max_length is {model_max_length:.0e}, transformers' 'unset' value: "
        "tokenizer(..., truncation=True) without max_length cuts nothing",
        {"model_max_length": model_max_length, "sentinel_from": T.MODEL_MAX_LENGTH_SENTINEL},
    )]
