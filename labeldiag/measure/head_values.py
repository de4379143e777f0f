"""The magnitude of the head's values, read without running the model (every command at load, the callback)."""
from __future__ import annotations

from typing import Any

from labeldiag.records import HeadValues


def head_values(model: Any) -> HeadValues | None:
    """None when the model has no head that labeldiag can name."""
    import torch

    from labeldiag.measure.parameters import head_parameter_names

    from labeldiag.load.dispatch import named_weights

    params = dict(named_weights(model))  # offloaded weights too (--device-map)
    names = sorted(n for n in head_parameter_names(model) if n in params and params[n].is_floating_point())
    if not names:
        return None
    max_abs, largest, nonfinite, elements = 0.0, names[0], 0, 0
    with torch.no_grad():
        for n in names:
            t = params[n].detach()
            if t.device.type == "meta" or t.numel() == 0:
                continue
            finite = torch.isfinite(t)
            nonfinite += int(t.numel() - finite.sum())
            elements += t.numel()
            top = float(t.float().abs().masked_fill(~finite, 0).max())
            if top > max_abs:
                max_abs, largest = top, n
    return HeadValues(parameters=names, elements=elements, max_abs=max_abs, largest=largest, nonfinite=nonfinite)
