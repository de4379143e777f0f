"""One forward and backward pass: per-layer gradient statistics, activations, label-token gradients.

Torch work only; the results are small dataclasses of plain numbers that checks/gradients.py
judges and render/grad_flow.py draws. torch is imported inside functions so the checks can import
these record types without it.
"""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from labeldiag.errors import ModelCodeError, UsageError
from labeldiag.measure.encode import Encoded
from labeldiag.measure.forward import collate, make_batches
from labeldiag.measure.parameters import census
from labeldiag.measure.sharded import any_sharded, gathered
from labeldiag.measure.runtime import (Runtime, call_model, extract_logits, extract_loss, filter_inputs,
                                     forward_params, logits_tensor)
from labeldiag.measure.hooks import ActivationWatch, CallOrder, HiddenGradTap, NonFiniteWatch, dropout_disabled
from labeldiag.measure.label_tokens import LabelAccumulator
from labeldiag.measure.layers import layer_stats
from labeldiag.measure.train_probe import checkpointing_on
from labeldiag.records import GradFlow, NonFinite


# --- the measurement -------------------------------------------------------------------------

def _loss_of(output: Any, labels, batch_size: int, accepts_labels: bool) -> tuple[Any, str]:
    import torch

    loss = extract_loss(output) if accepts_labels else None
    if loss is not None:
        return loss.float().reshape(()) if loss.numel() == 1 else loss.float().mean(), "model"
    if labels.dim() == 2 and not labels.is_floating_point():  # per-token tags (issue 22), -100 ignored
        from labeldiag.measure.token_data import per_position_logits

        logits = per_position_logits(output, batch_size).float()
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)), \
            "cross-entropy per token"
    logits = logits_tensor(output, batch_size)
    if logits is None:  # numpy or list logits: a loss on them has no gradient path
        arr = extract_logits(output, batch_size)
        logits = torch.from_numpy(arr).to(labels.device)
    labels = labels.to(logits.device)  # a dispatched model's logits come off its last device
    if labels.is_floating_point():  # multi-hot [B, K] (BCE) or real targets [B] (MSE) of the other task shapes
        if labels.dim() == 2:
            return torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels), "BCE"
        return torch.nn.functional.mse_loss(logits.float()[:, 0], labels), "MSE"
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
    trainable = any(p.requires_grad for _, p in all_params)
    batches = make_batches(enc, batch_size)
    want_labels = label_token_ids is not None or label_positions is not None
    order = CallOrder(model)
    watch = ActivationWatch(model)
    tap = HiddenGradTap(model) if want_labels else None
    label_acc = LabelAccumulator(tap.names if tap else [], label_token_ids, label_positions) if tap else None
    total_loss = 0.0
    loss_source = "cross-entropy"
    components: dict[str, dict[str, float | None]] = {}
    connected = True
    nonfinite_loss = False
    bad_batch: np.ndarray | None = None
    backward_ran = False
    with dropout_disabled(model) as dropout_count:
        try:
            for idx in batches:
                share = len(idx) / n  # micro-batch losses are means: weight by batch share
                batch = filter_inputs(collate(enc, idx, runtime.device), params)
                y = torch.as_tensor(labels[idx], device=runtime.device,
                                    dtype=torch.float32 if labels.dtype.kind == "f" else torch.long)
                if y.dim() == 2 and labels.dtype.kind != "f":  # per-token tags (issue 22): the batch's width
                    y = y[:, :batch["input_ids"].shape[1]].contiguous()
                if accepts_labels:
                    batch["labels"] = y
                if tap is not None:
                    tap.reset()
                with runtime.autocast():
                    output = call_model(model, batch)
                    loss, loss_source = _loss_of(output, y, len(idx), accepts_labels)
                value = float(loss.detach())
                total_loss += share * value
                if idx is batches[0] and trainable and not any_sharded(all_params):  # autograd.grad cannot reach FSDP2's sharded parameters
                    components = _loss_components(output, model, base_prefix)
                if not math.isfinite(value):
                    nonfinite_loss = True
                    bad_batch = idx
                    break
                if not loss.requires_grad:
                    connected = False
                    continue
                try:  # through the parameters, or only the hidden states (activation mode: none trainable)
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
        layers = layer_stats(gathered(all_params), lr, base_prefix, order.order, skip_grads=nonfinite_loss)
        table_name = {n: lg.name for lg in layers for n in lg.no_grad_names + lg.frozen_names}
        reach = census(all_params, loss_connected=connected, backward_ran=not nonfinite_loss,
                       layer_of=lambda n: table_name.get(n, n), checkpointing=checkpointing_on(model))
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
                    layers=layers, activations=watch.results(), label_tokens=label_grad, census=reach,
                    nonfinite_loss=nonfinite_loss, nonfinite=nonfinite, dropout_modules=dropout_count,
                    seconds=time.perf_counter() - start, loss_components=components)


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
