"""Which parameters are the head, which are trainable, and which of them a backward pass reached."""
from __future__ import annotations

from typing import Any, Callable

from labeldiag.records import ParameterCensus, group_layers

HEAD_MODULES = ("classifier", "score", "head", "pre_classifier", "classification_head", "out_proj")


def census(named: list[tuple[str, Any]], *, loss_connected: bool = True, backward_ran: bool = True,
           layer_of: Callable[[str], str] | None = None, checkpointing: bool = False) -> ParameterCensus:
    """Read requires_grad and .grad of (name, parameter) pairs right after a backward pass.

    `layer_of` names the layer of a parameter (grad-flow's table names); default: its module path.
    """
    trainable = [(n, p) for n, p in named if p.requires_grad]
    frozen = [(n, p) for n, p in named if not p.requires_grad]
    no_grad = [(n, p) for n, p in trainable if p.grad is None] if backward_ran else []
    return ParameterCensus(
        trainable=tuple(n for n, _ in trainable), frozen=tuple(n for n, _ in frozen),
        trainable_elements=sum(p.numel() for _, p in trainable), frozen_elements=sum(p.numel() for _, p in frozen),
        no_grad=tuple(n for n, _ in no_grad), no_grad_elements=sum(p.numel() for _, p in no_grad),
        loss_connected=loss_connected, backward_ran=backward_ran,
        frozen_layers=_layers([n for n, _ in frozen], layer_of), no_grad_layers=_layers([n for n, _ in no_grad], layer_of),
        checkpointing=checkpointing)


def _layers(names: list[str], layer_of: Callable[[str], str] | None) -> tuple[str, ...]:
    if layer_of is None:
        return tuple(group_layers(names))
    return tuple(dict.fromkeys(layer_of(n) for n in names))


def head_parameter_names(model: Any) -> set[str]:
    """Parameters outside model.base_model_prefix, else those under a module named like a head."""
    names = [n for n, _ in model.named_parameters()]
    prefix = getattr(model, "base_model_prefix", None)
    if prefix and hasattr(model, prefix):
        outside = {n for n in names if not n.startswith(prefix + ".")}
        if outside and len(outside) < len(names):
            return outside
    return {n for n in names if any(part in HEAD_MODULES for part in n.split(".")[:-1])}
