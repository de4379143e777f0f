"""Half-precision trainable weights: what share of AdamW's first step is lost to rounding.

Measured on the caller's model BEFORE smoke-train's training copy is cast to fp32 (that cast is
why labeldiag's own training never shows the problem).
"""
from __future__ import annotations

from typing import Any

from labeldiag.records import HalfPrecisionWeights

HALF = ("float16", "bfloat16")


def measure_half_precision(model: Any, lr: float) -> HalfPrecisionWeights | None:
    """None when no trainable parameter is stored in fp16/bf16."""
    import torch

    record = HalfPrecisionWeights(lr=lr, trainable_elements=0)
    lost_by_name = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            record.trainable_elements += p.numel()
            dtype = str(p.dtype).replace("torch.", "")
            if dtype not in HALF:
                continue
            record.half_elements[dtype] = record.half_elements.get(dtype, 0) + p.numel()
            w = p.detach()
            # AdamW's first step moves every element by about lr; in the weight's own dtype it may not move at all
            lost = int(((w + lr) == w).sum()) + int(((w - lr) == w).sum())
            record.lost_elements += lost // 2
            record.nonfinite_elements += int((~torch.isfinite(w)).sum())
            if p.dtype == torch.float16:
                record.overflow_elements += p.numel()
            lost_by_name.append((lost // 2, name))
    if not record.half_elements:
        return None
    record.examples = [n for _, n in sorted(lost_by_name, reverse=True)[:5]]
    return record
