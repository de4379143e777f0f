"""Static statistics of every weight tensor (no data): norms, exactly-zero rows and columns, and, when a
base model is given, how far each tensor moved from it.

Tensors are grouped by role: the same parameter name with the block index replaced by '*'
(`bert.encoder.layer.*.attention.self.query.weight`), so each block can be judged against its siblings.
"""
from __future__ import annotations

import math
import re
from typing import Any

from labeldiag.measure.layers import STACK_RE
from labeldiag.records import BaseDistance, TensorStats

NORM_RE = re.compile(r"(?:^|\.)(?:[a-z_]*layer_?norm[a-z_]*|ln_?\w*|norm\w*|[a-z_]*_norm)\.(?:weight|bias)$",
                     re.IGNORECASE)


def role_of(name: str) -> tuple[str, int | None]:
    m = STACK_RE.match(name)
    if not m:
        return name, None
    return f"{m.group('stack')}.*.{name[m.end():]}", int(m.group("index"))


def kind_of(name: str, dims: int) -> str:
    if NORM_RE.search(name):
        return "norm-gain" if name.endswith("weight") else "norm-bias"
    if dims == 2:
        return "matrix"
    return "bias" if dims == 1 else "other"


def weight_stats(model: Any) -> list[TensorStats]:
    """Statistics of every floating-point parameter, one small reduction each."""
    import torch

    from labeldiag.load.dispatch import named_weights

    out = []
    with torch.no_grad():
        for name, p in named_weights(model):  # offloaded weights too (--device-map)
            if not p.is_floating_point() or p.numel() == 0 or p.is_meta:
                continue
            w = p.detach()
            role, block = role_of(name)
            rms = float(torch.linalg.vector_norm(w, dtype=torch.float32)) / math.sqrt(w.numel())
            zero_rows = zero_cols = 0
            if w.dim() == 2:
                nonzero = w != 0
                zero_rows = int((~nonzero.any(1)).sum())
                zero_cols = int((~nonzero.any(0)).sum())
            out.append(TensorStats(name=name, role=role, block=block, kind=kind_of(name, w.dim()),
                                   rows=int(w.shape[0]) if w.dim() else 1, cols=int(w.shape[1]) if w.dim() == 2 else 1,
                                   rms=rms, zero_rows=zero_rows, zero_cols=zero_cols))
    return out


def base_distances(model: Any, base_state: dict[str, Any]) -> list[BaseDistance]:
    """Relative change of every parameter that the base holds under the same name (or without the
    model's base prefix, e.g. `bert.`) and shape. Tensors the base lacks (the head) or holds as zeros are
    skipped."""
    import torch

    from labeldiag.load.dispatch import named_weights

    out = []
    with torch.no_grad():
        for name, p in named_weights(model):  # offloaded weights too (--device-map)
            ref = None if p.is_meta else matching_base_tensor(name, p, base_state)
            if ref is None:
                continue
            ref = ref.to(device=p.device, dtype=torch.float32)
            base_norm = float(torch.linalg.vector_norm(ref))
            if base_norm == 0:  # a zero-initialised tensor (a bias the base never trained): no scale to move against
                continue
            diff = float(torch.linalg.vector_norm(p.detach().float() - ref))
            role, block = role_of(name)
            out.append(BaseDistance(name=name, role=role, block=block, relative_change=diff / base_norm,
                                    base_rms=base_norm / math.sqrt(max(1, ref.numel()))))
    return out


def matching_base_tensor(name: str, p: Any, base_state: dict[str, Any]) -> Any:
    """The base's tensor for parameter `name`: same name, or the name without its first component
    (`bert.encoder...` in a classifier, `encoder...` in the bare base), with the same shape."""
    for candidate in (name, name.split(".", 1)[-1]):
        ref = base_state.get(candidate)
        if ref is not None and tuple(ref.shape) == tuple(p.shape):
            return ref
    return None
