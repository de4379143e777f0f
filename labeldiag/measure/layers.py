"""Which layer a parameter belongs to, in depth order, and each layer's gradient statistics."""
from __future__ import annotations

import math
import re


from labeldiag.records import LayerGrad


# `bert.encoder.layer.3.`, `roberta.encoder.layer.3.`, `distilbert.transformer.layer.3.`, `model.layers.3.`
STACK_RE = re.compile(r"^(?P<stack>(?:.*\.)?(?:layer|layers|h|blocks))\.(?P<index>\d+)\.")
EMBEDDINGS_RE = re.compile(r"(?:^|\.)embeddings?\.")
POOLER_RE = re.compile(r"(?:^|\.)pooler\.")


# --- parameter grouping ----------------------------------------------------------------------

def layer_of(name: str, base_prefix: str | None) -> tuple[str, bool]:
    """Map a parameter name to the layer a user recognises, and whether it is an encoder block."""
    m = STACK_RE.match(name)
    if m:
        return f"{m.group('stack')}.{m.group('index')}", True
    if EMBEDDINGS_RE.search(name) and not name.startswith(("classifier", "score", "head")):
        return "embeddings", False
    if POOLER_RE.search(name):
        return "pooler", False
    parts = name.split(".")
    if base_prefix and parts[0] == base_prefix and len(parts) > 2:
        return f"{parts[0]}.{parts[1]}", False
    return (parts[0] if len(parts) > 1 else name), False


def short_stack_names(keys: list[str]) -> dict[str, str]:
    """`bert.encoder.layer.3` -> `layer 3` when there is a single stack; keep the prefix otherwise."""
    stacks = {k.rsplit(".", 1)[0] for k in keys}
    if len(stacks) == 1:
        return {k: f"layer {k.rsplit('.', 1)[1]}" for k in keys}
    return {k: k for k in keys}



def layer_stats(named: list, lr: float, base_prefix: str | None, call_order: dict[str, int], *,
                 skip_grads: bool = False) -> list[LayerGrad]:
    """Group parameters into layers and compute norms, ratios and zero shares (one pass per tensor)."""
    import torch

    groups: dict[str, dict] = {}
    stack_keys = []
    for position, (name, p) in enumerate(named):
        key, is_stack = layer_of(name, base_prefix)
        g = groups.get(key)
        if g is None:
            module_name = name.rsplit(".", 1)[0] if "." in name else ""
            g = groups[key] = {"params": 0, "trainable": 0, "frozen": 0, "no_grad": 0, "grad_sq": 0.0,
                               "weight_sq": 0.0, "zeros": 0, "with_grad": 0, "nonzero": 0, "abs_sum": 0.0,
                               "abs_max": 0.0, "no_grad_names": [], "zero_names": [], "bad_names": [],
                               "frozen_names": [], "stack": is_stack, "position": position,
                               "call": call_order.get(module_name)}
            if is_stack:
                stack_keys.append(key)
        elif g["call"] is None:
            g["call"] = call_order.get(name.rsplit(".", 1)[0] if "." in name else "")
        numel = p.numel()
        g["params"] += numel
        if not p.requires_grad:
            g["frozen"] += numel
            g["frozen_names"].append(name)
            continue
        g["trainable"] += numel
        with torch.no_grad():
            w = p.detach()
            g["weight_sq"] += float(torch.linalg.vector_norm(w, dtype=torch.float32)) ** 2
            if skip_grads:
                continue
            if p.grad is None:
                g["no_grad"] += numel
                g["no_grad_names"].append(name)
                continue
            grad = p.grad.detach()
            norm = float(torch.linalg.vector_norm(grad, dtype=torch.float32))
            if not math.isfinite(norm):
                g["bad_names"].append(name)
                g["grad_sq"] = float("inf")
                continue
            nonzero = int(torch.count_nonzero(grad))
            g["grad_sq"] += norm * norm
            g["with_grad"] += numel
            g["nonzero"] += nonzero
            g["zeros"] += numel - nonzero
            if nonzero == 0:
                g["zero_names"].append(name)
            else:
                # L1 and max norms: |grad| sum and max without a temporary copy
                g["abs_sum"] += float(torch.linalg.vector_norm(grad, ord=1, dtype=torch.float32))
                low, high = torch.aminmax(grad)  # 4x faster than the inf-norm on CPU
                g["abs_max"] = max(g["abs_max"], float(-low), float(high))
    short = short_stack_names(stack_keys)
    # depth order: first forward call of the layer's modules; never-called layers stay after their
    # neighbour in parameter order
    ordered = sorted(groups.items(), key=lambda kv: kv[1]["position"])
    last_call = -1.0
    for _, g in ordered:
        if g["call"] is None:
            g["call"] = last_call + 0.5
        last_call = g["call"]
    ordered.sort(key=lambda kv: (kv[1]["call"], kv[1]["position"]))
    out = []
    for key, g in ordered:
        has_grad = g["with_grad"] > 0 or g["bad_names"]
        grad_norm = math.sqrt(g["grad_sq"]) if has_grad else None
        weight_norm = math.sqrt(g["weight_sq"])
        # AdamW's first step is lr * m/(sqrt(v)+eps) = lr * sign(g) per element with a gradient
        update_norm = lr * math.sqrt(g["nonzero"])
        out.append(LayerGrad(
            name=short.get(key, key), params=g["params"], trainable=g["trainable"], grad_norm=grad_norm,
            weight_norm=weight_norm,
            grad_weight_ratio=grad_norm / weight_norm if grad_norm is not None and weight_norm > 0 else None,
            update_weight_ratio=update_norm / weight_norm if has_grad and weight_norm > 0 else None,
            zero_share=g["zeros"] / g["with_grad"] if g["with_grad"] else None,
            mean_abs_grad=g["abs_sum"] / g["with_grad"] if g["with_grad"] else None,
            max_abs_grad=g["abs_max"] if g["with_grad"] else None,
            frozen=g["frozen"], no_grad=g["no_grad"], no_grad_names=g["no_grad_names"],
            zero_grad_names=g["zero_names"], nonfinite_names=g["bad_names"], frozen_names=g["frozen_names"],
            is_stack_layer=g["stack"]))
    return out
