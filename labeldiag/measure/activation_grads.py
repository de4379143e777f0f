"""grad-flow's activation-gradient mode, for a model dispatched over devices (--device-map auto).

A dispatched model cannot hold a gradient for every parameter (offloaded weights live on disk and
are loaded only for their forward), so in this mode every parameter is frozen except the head's when
it is in memory; the embeddings' output is made to require a gradient, and what is measured is the
gradient of the loss with respect to each layer's hidden states, over all positions and at the
position the head pools (the first token for encoders, the last non-pad token for decoder classifiers
with a `score` head, as transformers pools them). Memory stays near inference: no parameter
gradient but the head's, no optimizer state. The caller's requires_grad flags are put back.
"""
from __future__ import annotations

import math
from typing import Any

from labeldiag.records import HiddenStateGrad


class ActivationGradients:
    """A context: parameters frozen (the head's kept when in memory), hidden-state gradients accumulated."""

    def __init__(self, model: Any, head_names: set[str]):
        from labeldiag.measure.hooks import find_embeddings, find_layer_stack

        self.model = model
        self.head_names = head_names
        _, self.embeddings = find_embeddings(model)
        _, blocks = find_layer_stack(model)
        self.modules = ([("embeddings", self.embeddings)] if self.embeddings is not None else []) + \
            [(f"layer {i}", b) for i, b in enumerate(blocks)]
        self.last_token = getattr(model, "score", None) is not None  # decoder classifiers pool the last token
        self.squares = [0.0] * len(self.modules)
        self.pooled_squares = [0.0] * len(self.modules)
        self.pooled_rows: Any = None
        self.handles: list[Any] = []
        self.flags: list[tuple[Any, bool]] = []
        self.head_in_memory = False

    def __enter__(self) -> "ActivationGradients":
        self.flags = [(p, p.requires_grad) for p in self.model.parameters()]
        for name, p in self.model.named_parameters():
            keep = name in self.head_names and p.device.type != "meta"
            p.requires_grad_(keep)
            self.head_in_memory |= keep
        self.handles.append(self.model.register_forward_pre_hook(self._pooled_positions, with_kwargs=True))
        if self.embeddings is not None:
            self.handles.append(self.embeddings.register_forward_hook(self._require_grad))
        for i, (_, module) in enumerate(self.modules):
            self.handles.append(module.register_forward_hook(self._tap(i)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self.handles:
            h.remove()
        for p, flag in self.flags:
            p.requires_grad_(flag)

    def _pooled_positions(self, module: Any, args: Any, kwargs: dict) -> None:
        import torch

        mask = kwargs.get("attention_mask")
        ids = kwargs.get("input_ids", args[0] if args else None)
        rows = ids.shape[0] if ids is not None else (mask.shape[0] if mask is not None else 0)
        if self.last_token and mask is not None:
            self.pooled_rows = (mask.long().sum(1) - 1).clamp(min=0).cpu()
        else:
            self.pooled_rows = torch.zeros(rows, dtype=torch.long)

    def _require_grad(self, module: Any, args: Any, output: Any) -> Any:
        from labeldiag.measure.hooks import _first_tensor

        out = _first_tensor(output)
        if out is not None and out.is_floating_point() and not out.requires_grad:
            out.requires_grad_(True)  # a leaf: nothing upstream requires a gradient in this mode
        return None

    def _tap(self, index: int):
        from labeldiag.measure.hooks import _first_tensor

        def hook(module: Any, args: Any, output: Any) -> None:
            out = _first_tensor(output)
            if out is None or not out.requires_grad or out.dim() != 3:
                return
            rows = self.pooled_rows

            def keep(grad: Any) -> None:
                g = grad.detach().float()
                self.squares[index] += float(g.pow(2).sum().cpu())  # read back to the CPU at once
                if rows is not None and len(rows) == g.shape[0]:
                    at = g[range(g.shape[0]), rows.to(g.device)]
                    self.pooled_squares[index] += float(at.pow(2).sum().cpu())
            out.register_hook(keep)
        return hook

    def result(self) -> list[HiddenStateGrad]:
        return [HiddenStateGrad(name=name, grad_norm=math.sqrt(sq), pooled_grad_norm=math.sqrt(pooled))
                for (name, _), sq, pooled in zip(self.modules, self.squares, self.pooled_squares)]
