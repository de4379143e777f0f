"""Padding: a decoder classifier without a pad token; logits that change when examples are padded."""
from __future__ import annotations

from labeldiag import thresholds as T
from labeldiag.findings import Finding
from labeldiag.records import PaddingProbe, TemporaryPad, padding_limit
from labeldiag.catalogue import PADDING_SENSITIVE_LOGITS, PAD_TOKEN_MISSING


def pad_token_missing(pad: TemporaryPad | None) -> list[Finding]:
    if pad is None:
        return []
    fix = ("model.config.pad_token_id = tokenizer.pad_token_id" if pad.tokenizer_has_pad else
           "tokenizer.pad_token = tokenizer.eos_token; model.config.pad_token_id = tokenizer.pad_token_id")
    return [Finding(
        PAD_TOKEN_MISSING,
        f"{pad.model_class} reads the last non-pad token but config.pad_token_id is not set; measured with "
        f"{pad.source} (id {pad.pad_id}) as a temporary pad, nothing saved",
        {"temporary_pad_id": pad.pad_id, "temporary_pad": pad.source, "tokenizer_has_pad": pad.tokenizer_has_pad},
        hint=f"{fix} (then save both)",
    )]


def padding_sensitive_logits(probes: list[PaddingProbe]) -> list[Finding]:
    bad = []
    for p in probes:
        relative, limit = p.relative_delta, padding_limit(p.precision)
        # a model that differs from itself without padding (nondeterministic-eval) proves nothing about padding
        if relative > limit and p.max_abs_delta > T.PADDING_MIN_OVER_REPEAT * (p.repeat_abs_delta or 0.0):
            bad.append((p, relative, limit))
    if not bad:
        return []
    worst, relative, limit = max(bad, key=lambda b: b[1])
    sides = " and ".join(f"{p.side}" for p, _, _ in bad)
    return [Finding(
        PADDING_SENSITIVE_LOGITS,
        f"{worst.examples} examples give other logits batched with {sides} padding than alone: max |delta logit| "
        f"{worst.max_abs_delta:.3g} ({relative:.0%} of the mean |logit|), {worst.changed_predictions:.0%} of "
        "predictions change",
        {"max_abs_delta": worst.max_abs_delta, "relative_delta": relative, "threshold": limit,
         "changed_predictions": worst.changed_predictions, "padding_side": worst.side,
         "repeat_abs_delta": worst.repeat_abs_delta,
         "sides": {p.side: {"max_abs_delta": p.max_abs_delta, "changed_predictions": p.changed_predictions}
                   for p in (b[0] for b in bad)},
         "n": worst.examples},
    )]
