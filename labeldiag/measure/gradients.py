"""One forward and backward pass: per-layer gradient statistics, activations, label-token gradients.

Torch work only; the results are small dataclasses of plain numbers that checks/gradients.py
judges and render/grad_flow.py draws. torch is imported inside functions so the checks can import
these record types without it.
"""
from __future__ import annotations

import contextlib
import inspect
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from labeldiag import thresholds as T
from labeldiag.errors import ModelCodeError, UsageError
from labeldiag.measure.encode import Encoded
from labeldiag.measure.forward import collate, make_batches
from labeldiag.measure.runtime import (Runtime, call_model, extract_logits, extract_loss, filter_inputs,
                                     forward_params,
                                     logits_tensor)

# `bert.encoder.layer.3.`, `roberta.encoder.layer.3.`, `distilbert.transformer.layer.3.`, `model.layers.3.`
STACK_RE = re.compile(r"^(?P<stack>(?:.*\.)?(?:layer|layers|h|blocks))\.(?P<index>\d+)\.")
EMBEDDINGS_RE = re.compile(r"(?:^|\.)embeddings?\.")
POOLER_RE = re.compile(r"(?:^|\.)pooler\.")


@dataclass
class LayerGrad:
    """Gradient statistics of one user-recognisable layer (a group of parameters)."""

    name: str
    params: int  # elements in all its parameters
    trainable: int  # elements with requires_grad
    grad_norm: float | None  # L2 over every trainable element that got a gradient
    weight_norm: float
    grad_weight_ratio: float | None
    update_weight_ratio: float | None  # first AdamW step at --lr, see update_norm
    zero_share: float | None  # share of gradient elements exactly 0.0
    mean_abs_grad: float | None
    max_abs_grad: float | None
    frozen: int  # elements with requires_grad=False
    no_grad: int  # trainable elements whose .grad stayed None
    no_grad_names: list[str] = field(default_factory=list)
    zero_grad_names: list[str] = field(default_factory=list)  # trainable, grad exactly all zero
    nonfinite_names: list[str] = field(default_factory=list)
    frozen_names: list[str] = field(default_factory=list)
    is_stack_layer: bool = False  # one block of the encoder stack

    def as_metrics(self) -> dict:
        return {"name": self.name, "params": self.params, "grad_norm": self.grad_norm,
                "grad_weight_ratio": self.grad_weight_ratio, "update_weight_ratio": self.update_weight_ratio,
                "zero_share": self.zero_share, "frozen": self.frozen, "no_grad": self.no_grad,
                "mean_abs_grad": self.mean_abs_grad, "max_abs_grad": self.max_abs_grad}


@dataclass
class ActivationStats:
    """How one activation module's units behaved on the batch."""

    module: str
    kind: str  # "relu" (ReLU family, incl. a Linear followed by a functional ReLU), "tanh", "sigmoid"
    units: int
    rows: int  # tokens/examples seen
    dead_units: int = 0  # relu: output <= 0 on every row
    saturated_units: int = 0  # tanh/sigmoid: at a limit on most rows

    @property
    def dead_share(self) -> float:
        return self.dead_units / self.units if self.units else 0.0

    @property
    def saturated_share(self) -> float:
        return self.saturated_units / self.units if self.units else 0.0


@dataclass
class LabelTokenGrad:
    """Gradient norm of the loss w.r.t. hidden states, at label-token positions and elsewhere, per layer."""

    layers: list[str]  # "embeddings", "layer 0", ...
    label_mean: list[float]  # mean norm over label-token occurrences
    other_median: list[float]  # median norm over other non-padding positions
    peak: list[float]  # mean over examples of the largest per-position norm (the position the loss reads most)
    occurrences: int  # label-token positions found in the batch
    missing: list[str]  # label tokens/positions never found
    heat: list[list[float]]  # layer x position mean norm (positions capped), for the plot
    embedding_rows: dict[str, float] | None = None  # label word -> grad norm of its word-embedding row
    embedding_row_median: float | None = None  # median over rows that got a gradient

    @property
    def share_of_peak(self) -> list[float]:
        return [lm / pk if pk > 0 else 0.0 for lm, pk in zip(self.label_mean, self.peak)]

    def as_metrics(self) -> dict:
        shares = self.share_of_peak
        rows = []
        for i, name in enumerate(self.layers):
            om = self.other_median[i]
            rows.append({"layer": name, "label_mean": self.label_mean[i], "other_median": om,
                         "peak": self.peak[i], "share_of_peak": shares[i],
                         "ratio_to_other_median": self.label_mean[i] / om if om > 0 else None})
        return {"layers": rows, "occurrences": self.occurrences, "missing": self.missing,
                "embedding_rows": self.embedding_rows, "embedding_row_median": self.embedding_row_median}


@dataclass
class NonFinite:
    """Where a NaN/inf first appeared, found by a second pass with hooks on every module."""

    forward_module: str | None = None  # first module (in completion order) with a non-finite output
    backward_module: str | None = None  # first module whose input gradient turned non-finite from finite
    in_loss: bool = False  # every module output was finite: the loss computation itself


@dataclass
class GradFlow:
    loss: float | None
    loss_source: str  # "model" (its own loss) or "cross-entropy"
    num_labels: int
    examples: int
    micro_batches: int
    total_grad_norm: float | None
    layers: list[LayerGrad]
    activations: list[ActivationStats]
    label_tokens: LabelTokenGrad | None
    trainable: int
    frozen: int
    backward_ran: bool
    loss_connected: bool  # the loss had a grad_fn
    nonfinite_loss: bool = False
    nonfinite: NonFinite | None = None
    dropout_modules: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    # extra loss terms the model returns (e.g. ce_loss, supcon_loss): value and the gradient norm
    # each alone sends into the encoder, measured on the first micro-batch
    loss_components: dict[str, dict[str, float | None]] = field(default_factory=dict)


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


def _short_stack_names(keys: list[str]) -> dict[str, str]:
    """`bert.encoder.layer.3` -> `layer 3` when there is a single stack; keep the prefix otherwise."""
    stacks = {k.rsplit(".", 1)[0] for k in keys}
    if len(stacks) == 1:
        return {k: f"layer {k.rsplit('.', 1)[1]}" for k in keys}
    return {k: k for k in keys}


# --- hooks -----------------------------------------------------------------------------------

def find_layer_stack(model: Any) -> tuple[str | None, list[Any]]:
    """The encoder blocks: children of the first ModuleList whose name ends in 'layer' or 'layers'."""
    import torch

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and name.split(".")[-1] in ("layer", "layers") and len(module):
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


# --- the measurement -------------------------------------------------------------------------

def _loss_of(output: Any, labels, batch_size: int, accepts_labels: bool) -> tuple[Any, str]:
    import torch

    loss = extract_loss(output) if accepts_labels else None
    if loss is not None:
        return loss.float().reshape(()) if loss.numel() == 1 else loss.float().mean(), "model"
    logits = logits_tensor(output, batch_size)
    if logits is None:  # numpy or list logits: a loss on them has no gradient path
        arr = extract_logits(output, batch_size)
        logits = torch.from_numpy(arr).to(labels.device)
    if logits.shape[1] < 2:
        raise UsageError("grad-flow needs a classifier with at least 2 logits (or a model that returns its own "
                         f"loss); this one returns {logits.shape[1]}")
    if int(labels.max()) >= logits.shape[1]:
        raise UsageError(f"labels go up to {int(labels.max())} but the model returns {logits.shape[1]} logits; "
                         "check --label-field and the model's num_labels")
    return torch.nn.functional.cross_entropy(logits.float(), labels), "cross-entropy"


def measure_grad_flow(model: Any, enc: Encoded, labels: np.ndarray, runtime: Runtime, batch_size: int, lr: float, *,
                      num_labels: int, base_prefix: str | None = None, label_token_ids: list[int] | None = None,
                      label_words: list[str] | None = None,
                      label_positions: list[int] | None = None) -> GradFlow:
    """Forward + backward over all examples (micro-batches accumulate), dropout off, grads left on the model.

    The caller owns the model; its parameters are not changed, only their .grad.
    """
    import torch

    start = time.perf_counter()
    n = len(enc.ids)
    params = forward_params(model)
    accepts_labels = params[1] or "labels" in params[0]
    all_params = list(model.named_parameters())
    for _, p in all_params:
        p.grad = None
    trainable = sum(p.numel() for _, p in all_params if p.requires_grad)
    frozen = sum(p.numel() for _, p in all_params if not p.requires_grad)
    batches = make_batches(enc, batch_size)
    want_labels = label_token_ids is not None or label_positions is not None
    order = CallOrder(model)
    watch = ActivationWatch(model)
    tap = HiddenGradTap(model) if want_labels else None
    label_acc = _LabelAccumulator(tap.names if tap else [], label_token_ids, label_positions) if tap else None
    total_loss = 0.0
    loss_source = "cross-entropy"
    components: dict[str, dict[str, float | None]] = {}
    connected = True
    nonfinite_loss = False
    bad_batch: np.ndarray | None = None
    backward_ran = False
    notes: list[str] = []
    with dropout_disabled(model) as dropout_count:
        try:
            for idx in batches:
                share = len(idx) / n  # micro-batch losses are means: weight by batch share
                batch = filter_inputs(collate(enc, idx, runtime.device), params)
                y = torch.as_tensor(labels[idx], dtype=torch.long, device=runtime.device)
                if accepts_labels:
                    batch["labels"] = y
                if tap is not None:
                    tap.reset()
                with runtime.autocast():
                    output = call_model(model, batch)
                    loss, loss_source = _loss_of(output, y, len(idx), accepts_labels)
                value = float(loss.detach())
                total_loss += share * value
                if idx is batches[0] and trainable:
                    components = _loss_components(output, model, base_prefix)
                if not math.isfinite(value):
                    nonfinite_loss = True
                    bad_batch = idx
                    break
                if not loss.requires_grad:
                    connected = False
                    continue
                if trainable:
                    try:
                        (loss * share).backward()
                    except Exception as exc:
                        raise ModelCodeError(f"the backward pass raised {type(exc).__name__}: "
                                             f"{' '.join(str(exc).split())[:200]}; fix the model code") from exc
                    backward_ran = True
                if label_acc is not None:
                    label_acc.add(tap.grads, batch["input_ids"], batch["attention_mask"], share / len(idx))
        finally:
            order.close()
            watch.close()
            if tap is not None:
                tap.close()
        layers = _layer_stats(all_params, lr, base_prefix, order.order, skip_grads=nonfinite_loss)
        label_grad = None
        if label_acc is not None and backward_ran:
            label_grad = label_acc.result(model, label_token_ids, label_words)
        nonfinite = None
        if nonfinite_loss or any(lg.nonfinite_names for lg in layers):
            nonfinite = _locate_nonfinite(model, enc, labels, bad_batch if bad_batch is not None else batches[0],
                                          runtime, params, accepts_labels)
            for _, p in all_params:  # the diagnostic pass must not leave its gradients behind
                p.grad = None
    total = None
    if backward_ran and not nonfinite_loss:
        sq = sum((lg.grad_norm or 0.0) ** 2 for lg in layers)
        total = math.sqrt(sq) if math.isfinite(sq) else float("inf")
    return GradFlow(loss=total_loss if not nonfinite_loss else float("nan"), loss_source=loss_source,
                    num_labels=num_labels, examples=n, micro_batches=len(batches), total_grad_norm=total,
                    layers=layers, activations=watch.results(), label_tokens=label_grad, trainable=trainable,
                    frozen=frozen, backward_ran=backward_ran, loss_connected=connected,
                    nonfinite_loss=nonfinite_loss, nonfinite=nonfinite, dropout_modules=dropout_count,
                    seconds=time.perf_counter() - start, notes=notes, loss_components=components)


def _loss_components(output: Any, model: Any, base_prefix: str | None) -> dict[str, dict[str, float | None]]:
    """Scalar *_loss fields beside .loss, each with the gradient norm it alone sends into the encoder."""
    import torch

    fields: dict[str, Any] = {}
    if isinstance(output, dict):
        fields = {k: v for k, v in output.items()}
    elif hasattr(output, "__dataclass_fields__"):
        fields = {k: getattr(output, k, None) for k in output.__dataclass_fields__}
    terms = {k: v for k, v in fields.items() if k != "loss" and k.endswith("loss") and isinstance(v, torch.Tensor)
             and v.numel() == 1}
    if not terms:
        return {}
    encoder = [p for n, p in model.named_parameters() if p.requires_grad and
               (base_prefix is None or n.startswith(base_prefix + "."))]
    out: dict[str, dict[str, float | None]] = {}
    for name, term in terms.items():
        grad_norm = None
        if term.requires_grad and encoder:
            grads = torch.autograd.grad(term.float().sum(), encoder, retain_graph=True, allow_unused=True)
            sq = sum(float(g.float().pow(2).sum()) for g in grads if g is not None)
            grad_norm = math.sqrt(sq)
        out[name] = {"value": float(term.detach().float().sum()), "encoder_grad_norm": grad_norm}
    return out


def _layer_stats(named: list, lr: float, base_prefix: str | None, call_order: dict[str, int], *,
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
    short = _short_stack_names(stack_keys)
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


def _locate_nonfinite(model, enc, labels, idx, runtime, params, accepts_labels) -> NonFinite:
    """Rerun one micro-batch with hooks on every module to name where NaN/inf first appeared."""
    import torch

    watch = NonFiniteWatch(model)
    result = NonFinite()
    try:
        batch = filter_inputs(collate(enc, idx, runtime.device), params)
        y = torch.as_tensor(labels[idx], dtype=torch.long, device=runtime.device)
        if accepts_labels:
            batch["labels"] = y
        with runtime.autocast():
            output = call_model(model, batch)
            loss, _ = _loss_of(output, y, len(idx), accepts_labels)
        result.forward_module = watch.forward_first
        if math.isfinite(float(loss.detach())):
            if loss.requires_grad:
                try:
                    loss.backward()
                except Exception:
                    pass
                result.backward_module = watch.backward_first
        elif watch.forward_first is None:
            result.in_loss = True
    finally:
        watch.close()
    return result


class _LabelAccumulator:
    """Collects per-position hidden-state gradient norms across micro-batches."""

    def __init__(self, names: list[str], token_ids: list[int] | None, positions: list[int] | None):
        self.names = names
        self.token_ids = token_ids
        self.positions = positions
        self.label: list[list[np.ndarray]] = [[] for _ in names]
        self.other: list[list[np.ndarray]] = [[] for _ in names]
        self.peaks: list[list[np.ndarray]] = [[] for _ in names]
        self.heat_sum = np.zeros((len(names), T.GRAD_HEATMAP_MAX_POSITIONS))
        self.heat_count = np.zeros(T.GRAD_HEATMAP_MAX_POSITIONS)
        self.found: set[int] = set()

    def add(self, grads: dict, input_ids, attention_mask, per_example_weight: float) -> None:
        import torch

        ids = input_ids.detach().cpu().numpy()
        mask = attention_mask.detach().cpu().numpy().astype(bool)
        label_mask = np.zeros_like(mask)
        if self.token_ids is not None:
            for k, tid in enumerate(self.token_ids):
                hit = (ids == tid) & mask
                if hit.any():
                    self.found.add(k)
                label_mask |= hit
        else:
            for k, pos in enumerate(self.positions or []):
                if pos < ids.shape[1]:
                    hit = mask[:, pos]
                    if hit.any():
                        self.found.add(k)
                    label_mask[:, pos] |= hit
        other_mask = mask & ~label_mask
        width = min(ids.shape[1], T.GRAD_HEATMAP_MAX_POSITIONS)
        self.heat_count[:width] += mask[:, :width].sum(0)
        for i in range(len(self.names)):
            g = grads.get(i)
            if g is None:
                norms = np.zeros(mask.shape)
            else:
                # undo the batch-share weighting so micro-batches of different sizes compare
                norms = torch.linalg.vector_norm(g.float(), dim=-1).cpu().numpy() / per_example_weight
                if norms.shape != mask.shape:
                    continue
            self.label[i].append(norms[label_mask])
            self.other[i].append(norms[other_mask])
            self.peaks[i].append(np.where(mask, norms, 0.0).max(1))
            self.heat_sum[i, :width] += np.where(mask, norms, 0.0)[:, :width].sum(0)

    def result(self, model: Any, token_ids: list[int] | None, words: list[str] | None) -> LabelTokenGrad:
        def cat(parts):
            return np.concatenate(parts) if parts else np.zeros(0)

        label_mean, other_median, peak = [], [], []
        for i in range(len(self.names)):
            lab, oth, pk = cat(self.label[i]), cat(self.other[i]), cat(self.peaks[i])
            label_mean.append(float(lab.mean()) if lab.size else 0.0)
            other_median.append(float(np.median(oth)) if oth.size else 0.0)
            peak.append(float(pk.mean()) if pk.size else 0.0)
        occurrences = int(cat(self.label[0]).size) if self.names else 0
        count = len(token_ids) if token_ids is not None else len(self.positions or [])
        described = words if words is not None else [str(p) for p in (self.positions or [])]
        missing = [described[k] if k < len(described) else str(k) for k in range(count) if k not in self.found]
        used = self.heat_count > 0
        last = int(np.nonzero(used)[0].max()) + 1 if used.any() else 0
        heat = (self.heat_sum[:, :last] / np.maximum(self.heat_count[:last], 1)).tolist()
        rows, row_median = None, None
        if token_ids is not None:
            rows, row_median = _embedding_rows(model, token_ids, words or [str(t) for t in token_ids])
        return LabelTokenGrad(layers=list(self.names), label_mean=label_mean, other_median=other_median,
                              peak=peak, occurrences=occurrences, missing=missing, heat=heat,
                              embedding_rows=rows, embedding_row_median=row_median)


def _embedding_rows(model: Any, token_ids: list[int], words: list[str]) -> tuple[dict | None, float | None]:
    import torch

    try:
        emb = model.get_input_embeddings()
    except Exception:
        return None, None
    weight = getattr(emb, "weight", None)
    if weight is None or weight.grad is None:
        return None, None
    with torch.no_grad():
        norms = torch.linalg.vector_norm(weight.grad.float(), dim=1)
        got = norms[norms > 0]
        median = float(got.median()) if got.numel() else 0.0
        rows = {w: float(norms[t]) for w, t in zip(words, token_ids) if 0 <= t < norms.shape[0]}
    return rows, median
