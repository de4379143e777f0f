"""Forward/backward hooks a grad-flow pass installs: call order, activations, hidden-state gradients,
where NaN/inf first appear; and dropout switched off for the pass. Each removes itself on close().
"""
from __future__ import annotations

import contextlib
import inspect
import re
from typing import Any, Iterator


from labeldiag import thresholds as T
from labeldiag.records import ActivationStats

STACK_NAMES = ("layer", "layers", "h", "blocks")  # the same names as measure.layers.STACK_RE


# --- dropout -------------------------------------------------------------------------------

@contextlib.contextmanager
def dropout_disabled(model: Any) -> Iterator[int]:
    """Train mode with every dropout probability set to 0; restores both on exit.

    Also zeroes float attributes named *dropout* (transformers 4.x SDPA attention reads
    `self.dropout_prob`, not an nn.Dropout).
    """
    import torch

    was_training = model.training
    saved: list[tuple[Any, str, float]] = []
    count = 0
    for module in model.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            saved.append((module, "p", module.p))
            module.p = 0.0
            count += 1
        for key, value in list(vars(module).items()):
            if "dropout" in key and isinstance(value, float) and not isinstance(value, bool) and value > 0:
                saved.append((module, key, value))
                setattr(module, key, 0.0)
    model.train()
    try:
        yield count
    finally:
        for module, key, value in reversed(saved):
            setattr(module, key, value)
        model.train(was_training)


# --- hooks -----------------------------------------------------------------------------------

def find_layer_stack(model: Any) -> tuple[str | None, list[Any]]:
    """The blocks: children of the first ModuleList named 'layer' / 'layers' (BERT family, Llama, ModernBERT),
    'h' (GPT-2) or 'blocks'."""
    import torch

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and name.split(".")[-1] in STACK_NAMES and len(module):
            return name, list(module)
    return None, []


def find_embeddings(model: Any) -> tuple[str | None, Any]:
    """The module whose output is the summed input embeddings (BertEmbeddings and the like)."""
    import torch

    for name, module in model.named_modules():
        if name.split(".")[-1] == "embeddings" and not isinstance(module, torch.nn.Embedding):
            return name, module
    try:
        emb = model.get_input_embeddings()
    except Exception:
        emb = None
    if emb is not None:
        for name, module in model.named_modules():
            if module is emb:
                return name, module
    return None, None


def _first_tensor(output: Any):
    import torch

    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    hs = getattr(output, "last_hidden_state", None)
    return hs if isinstance(hs, torch.Tensor) else None


def _forward_mentions_relu(model: Any) -> bool:
    try:
        src = inspect.getsource(type(model).forward)
    except (OSError, TypeError):
        return getattr(getattr(model, "config", None), "model_type", None) == "distilbert"
    return bool(re.search(r"relu", src, re.IGNORECASE))


def activation_modules(model: Any) -> list[tuple[str, str, Any]]:
    """(name, kind, module) of the activations worth watching.

    GELU units are never exactly 0 on negatives, so they are not "dead" in the ReLU sense and are
    left out. DistilBERT applies its ReLU functionally after `pre_classifier`; its Linear output is
    watched with the ReLU rule (output <= 0 means the ReLU gives 0).
    """
    import torch

    out = []
    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.ReLU, torch.nn.ReLU6)) or (
                isinstance(module, torch.nn.LeakyReLU) and module.negative_slope == 0):
            out.append((name, "relu", module))
        elif isinstance(module, torch.nn.Tanh):
            out.append((name, "tanh", module))
        elif isinstance(module, torch.nn.Sigmoid):
            out.append((name, "sigmoid", module))
    pre = getattr(model, "pre_classifier", None)
    if isinstance(pre, torch.nn.Linear) and not isinstance(getattr(model, "relu", None), torch.nn.Module) \
            and _forward_mentions_relu(model):
        out.append(("pre_classifier", "relu", pre))
    return out


class ActivationWatch:
    """Per unit: was it ever active (ReLU) / how often at a limit (tanh, sigmoid)."""

    def __init__(self, model: Any):
        self.entries = activation_modules(model)
        self.active: dict[str, Any] = {}
        self.saturated_rows: dict[str, Any] = {}
        self.rows: dict[str, int] = {}
        self.handles = [m.register_forward_hook(self._make(name, kind)) for name, kind, m in self.entries]

    def _make(self, name: str, kind: str):
        import torch

        def hook(module, args, output):
            out = _first_tensor(output)
            if out is None or out.dim() == 0:
                return
            with torch.no_grad():
                flat = out.detach().reshape(-1, out.shape[-1])
                self.rows[name] = self.rows.get(name, 0) + flat.shape[0]
                if kind == "relu":
                    act = (flat > 0).any(0)
                    self.active[name] = act if name not in self.active else (self.active[name] | act)
                else:
                    f = flat.float()
                    if kind == "tanh":
                        at_limit = f.abs() > T.SATURATED_TANH_ABS
                    else:
                        at_limit = (f < T.SATURATED_SIGMOID_MARGIN) | (f > 1 - T.SATURATED_SIGMOID_MARGIN)
                    count = at_limit.sum(0)
                    prev = self.saturated_rows.get(name)
                    self.saturated_rows[name] = count if prev is None else prev + count
        return hook

    def results(self) -> list[ActivationStats]:
        out = []
        for name, kind, _ in self.entries:
            rows = self.rows.get(name, 0)
            if not rows:
                continue
            if kind == "relu":
                act = self.active[name]
                out.append(ActivationStats(name, kind, int(act.numel()), rows, dead_units=int((~act).sum())))
            else:
                share = self.saturated_rows[name].float() / rows
                out.append(ActivationStats(name, kind, int(share.numel()), rows,
                                           saturated_units=int((share >= T.SATURATED_MIN_ROW_SHARE).sum())))
        return out

    def close(self) -> None:
        for h in self.handles:
            h.remove()


class CallOrder:
    """First-call index of every module that owns parameters directly: depth order of the layers."""

    def __init__(self, model: Any):
        self.order: dict[str, int] = {}
        self.handles = []
        for name, module in model.named_modules():
            if any(True for _ in module.parameters(recurse=False)):
                self.handles.append(module.register_forward_pre_hook(self._make(name)))

    def _make(self, name: str):
        def hook(module, args):
            if name not in self.order:
                self.order[name] = len(self.order)
        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


class HiddenGradTap:
    """Gradient of the loss w.r.t. the embeddings output and each encoder block's output."""

    def __init__(self, model: Any):
        _, emb = find_embeddings(model)
        _, blocks = find_layer_stack(model)
        self.names: list[str] = []
        self.handles = []
        self.grads: dict[int, Any] = {}
        self.seen: set[int] = set()
        modules = ([("embeddings", emb)] if emb is not None else []) + [(f"layer {i}", b) for i, b in enumerate(blocks)]
        for i, (name, module) in enumerate(modules):
            self.names.append(name)
            self.handles.append(module.register_forward_hook(self._make(i)))

    def _make(self, index: int):
        def hook(module, args, output):
            out = _first_tensor(output)
            if out is None or not out.requires_grad or out.dim() != 3:
                return
            if index in self.seen:
                return  # a block called twice in one forward: keep the first call
            self.seen.add(index)

            def keep(grad):
                self.grads[index] = grad.detach()
            out.register_hook(keep)
        return hook

    def reset(self) -> None:
        self.grads = {}
        self.seen = set()

    def close(self) -> None:
        for h in self.handles:
            h.remove()


class NonFiniteWatch:
    """Hooks on every module: first non-finite output (forward), first non-finite input gradient (backward)."""

    def __init__(self, model: Any):
        self.forward_first: str | None = None
        self.backward_first: str | None = None
        self.out_grad_bad: set[str] = set()
        self.handles = [m.register_forward_hook(self._make(name), with_kwargs=True)
                        for name, m in model.named_modules() if name]

    def _make(self, name: str):
        import torch

        def bad(t) -> bool:
            return t.is_floating_point() and not bool(torch.isfinite(t).all())

        def tensors(x):
            if isinstance(x, torch.Tensor):
                return [x]
            if isinstance(x, (tuple, list)):
                return [t for item in x for t in tensors(item)]
            if isinstance(x, dict):
                return [t for item in x.values() for t in tensors(item)]
            return []

        def hook(module, args, kwargs, output):
            outs = tensors(output)
            if self.forward_first is None and any(bad(t) for t in outs):
                self.forward_first = name
            for t in outs:
                if t.requires_grad:
                    t.register_hook(lambda g, n=name: self.out_grad_bad.add(n) if bad(g) else None)
            for t in tensors(args) + tensors(kwargs):
                if t.requires_grad and t.is_floating_point():
                    def on_input_grad(g, n=name):
                        # origin: this module's input gradient is bad while its output gradient was fine
                        if self.backward_first is None and bad(g) and n not in self.out_grad_bad:
                            self.backward_first = n
                    t.register_hook(on_input_grad)
        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()
