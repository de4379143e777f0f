"""What the Trainer callback measures itself: one probe step at train begin, and the training losses
it recomputes from the logits the Trainer's own forward passes return.

Torch work only; the results are plain-number records that checks/learning_rate.py and
checks/training_run.py judge.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from labeldiag.measure.learning_rate import update_ratios
from labeldiag.records import LossScaleRecord, ParameterCensus, UpdateRatios


@dataclass
class ProbeStep:
    """One forward + backward on the first training batch (dropout off), before any optimizer step."""

    loss: float | None
    census: ParameterCensus | None  # None when nothing is trainable or the loss has no gradient
    updates: UpdateRatios | None  # None when the optimizer is not Adam-like (the ratio assumes Adam's first step)


def checkpointing_on(model: Any) -> bool:
    """Gradient (activation) checkpointing enabled on the model or any of its modules."""
    flag = getattr(model, "is_gradient_checkpointing", None)
    if isinstance(flag, bool):
        return flag
    return any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())


def adam_like(optimizer: Any) -> bool:
    """AdamW and its kin (the update/weight ratio assumes Adam's first step); accelerate wraps the optimizer."""
    inner = getattr(optimizer, "optimizer", optimizer)
    return inner is not None and "adam" in type(inner).__name__.lower()


def peak_learning_rate(optimizer: Any, fallback: float) -> float:
    """The scheduler's starting rate of the largest parameter group (warm-up makes the current one 0)."""
    groups = getattr(optimizer, "param_groups", None) or []
    if not groups:
        return fallback
    group = max(groups, key=lambda g: sum(p.numel() for p in g.get("params", [])))
    return float(group.get("initial_lr", group.get("lr", fallback)))


def probe_step(model: Any, batch: dict, lr: float, with_updates: bool, backward: bool = True) -> ProbeStep:
    """Forward and backward on `batch` in train mode with dropout off; the caller restores the model
    (labeldiag.isolation.isolated puts back .grad, modes and dropout). `backward=False` (a sharded or
    distributed run, whose backward would start collectives) measures the loss only."""
    import torch

    from labeldiag.measure.hooks import dropout_disabled
    from labeldiag.measure.layers import layer_of, layer_stats, short_stack_names
    from labeldiag.measure.parameters import census

    named = list(model.named_parameters())
    for _, p in named:
        p.grad = None
    device = named[0][1].device if named else torch.device("cpu")
    inputs = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
    prefix = getattr(model, "base_model_prefix", None)
    with dropout_disabled(model):
        with torch.set_grad_enabled(backward):
            out = model(**inputs)
            loss = getattr(out, "loss", None)
            if loss is None and isinstance(out, dict):
                loss = out.get("loss")
            value = float(loss.detach().float().mean()) if loss is not None else None
            if not backward or loss is None or value is None or not math.isfinite(value) or not loss.requires_grad:
                return ProbeStep(value, None, None)
            loss.float().mean().backward()
    layers = {n: layer_of(n, prefix) for n, _ in named}
    short = short_stack_names([key for key, is_stack in layers.values() if is_stack])  # 'layer 0', as grad-flow
    reach = census(named, checkpointing=checkpointing_on(model), layer_of=lambda n: short.get(*[layers[n][0]] * 2))
    updates = update_ratios(layer_stats(named, lr, prefix, {}), lr) if with_updates else None
    return ProbeStep(value, reach, updates)


@dataclass
class TrainingLosses:
    """Cross-entropy of each training micro-batch, recomputed from the logits and labels it returned.

    Kept as tensors on the model's device and read once per Trainer log, so the training loop gets no
    extra device synchronisation per step."""

    values: list[Any] = field(default_factory=list)  # 0-d tensors
    counts: list[Any] = field(default_factory=list)  # labelled examples per micro-batch, 0-d tensors

    def add(self, logits: Any, labels: Any) -> None:
        """Single-label classification only: [batch, classes] logits and integer class labels."""
        import torch

        if logits is None or labels is None or logits.dim() != 2 or labels.dim() != 1 or logits.shape[1] < 2:
            return
        if labels.dtype not in (torch.int64, torch.int32) or labels.shape[0] != logits.shape[0]:
            return
        with torch.no_grad():
            keep = labels != -100
            per_example = torch.nn.functional.cross_entropy(logits.detach().float(), labels.long().clamp(min=0),
                                                            reduction="none")
            count = keep.sum()
            self.values.append((per_example * keep).sum() / count.clamp(min=1))
            self.counts.append(count)

    def record(self, logged_loss: float, accumulation_steps: int) -> LossScaleRecord | None:
        counts = [int(c) for c in self.counts]
        values = [float(v) for v, c in zip(self.values, counts) if c > 0]
        values = [v for v in values if math.isfinite(v)]
        if not values:
            return None
        return LossScaleRecord(logged_loss=logged_loss, recomputed_loss=sum(values) / len(values),
                               micro_batches=len(values), accumulation_steps=accumulation_steps,
                               examples=sum(counts))
