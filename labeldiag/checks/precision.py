"""Trainable weights stored in half precision (no fp32 master copy)."""
from __future__ import annotations

from labeldiag import thresholds as T
from labeldiag.findings import Finding
from labeldiag.records import HalfPrecisionWeights
from labeldiag.catalogue import HALF_PRECISION_WEIGHTS


def half_precision_weights(h: HalfPrecisionWeights | None) -> list[Finding]:
    if h is None or (h.lost_share < T.HALF_PRECISION_MIN_LOST_SHARE and not h.nonfinite_elements
                     and not h.overflow_elements):
        return []
    kinds = ", ".join(f"{n:,} {dtype}" for dtype, n in sorted(h.half_elements.items()))
    return [Finding(
        HALF_PRECISION_WEIGHTS,
        f"{h.half_total:,} of {h.trainable_elements:,} trainable elements are stored in half precision ({kinds}); "
        f"an AdamW step of lr {h.lr:g} rounds away for {h.lost_share:.0%} of them"
        + (f"; AdamW's fp16 state turns small gradients (|g| < 7.7e-3) into inf/NaN steps for the "
           f"{h.overflow_elements:,} fp16 elements" if h.overflow_elements else "")
        + (f"; {h.nonfinite_elements:,} are already inf/NaN" if h.nonfinite_elements else ""),
        {"half_elements": h.half_elements, "trainable_elements": h.trainable_elements,
         "lost_share": h.lost_share, "overflow_elements": h.overflow_elements,
         "nonfinite_elements": h.nonfinite_elements, "lr": h.lr,
         "threshold": T.HALF_PRECISION_MIN_LOST_SHARE, "parameters": h.examples},
    )]
