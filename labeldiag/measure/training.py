"""smoke-train's torch work: the fixed batch, the pre-flight gradient pass and the training loop.

The loop does what a plain PyTorch loop does (forward, loss, backward, AdamW step) plus a few
on-device reductions of the same forward's logits; the only host sync per step is one small
`.tolist()` of those numbers, which early stopping needs anyway.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from labeldiag import thresholds as T
from labeldiag.distributed import Dist, all_reduce_sum, parameter_divergence
from labeldiag.errors import ModelCodeError, UsageError
from labeldiag.measure.encode import Encoded
from labeldiag.measure.forward import collate
from labeldiag.measure.parameters import census, head_parameter_names
from labeldiag.measure.sharded import grad_norm, local_snapshot, sharded_copy, unchanged
from labeldiag.measure.runtime import (Runtime, call_model, extract_logits, extract_loss, filter_inputs,
                                     forward_params, logits_tensor)
from labeldiag.options import TrainSettings
from labeldiag.records import TrainingTrace

# output fields that hold the classification part of a composite loss (CE + SupCon, CE + aux terms)
CLASSIFICATION_LOSS_FIELDS = ("ce_loss", "classification_loss", "cls_loss", "clf_loss")


@dataclass
class Batch:
    inputs: dict  # on the device, filtered to what forward accepts (labels included when it takes them)
    labels: Any  # int64 tensor on the device
    rows: int  # this rank's rows
    tokens: int  # this rank's non-pad tokens
    global_rows: int  # rows over all ranks
    own_loss: bool  # labels were passed, so the model may return its own loss


@dataclass
class Throughput:
    seconds: float = 0.0
    steps_per_second: float | None = None
    examples_per_second: float | None = None
    tokens_per_second: float | None = None
    peak_memory_bytes: int | None = None
    peak_memory_kind: str | None = None
    rank: int = 0


@dataclass
class RunResult:
    trace: TrainingTrace
    speed: Throughput = field(default_factory=Throughput)
    rank_divergence: float | None = None
    stopped_early: str | None = None  # why the give-up rule ended the run before its budget


# --- the batch ----------------------------------------------------------------------------------

def stratified_rows(gold: np.ndarray, size: int, seed: int) -> np.ndarray:
    """`size` row indices of usable labels (>= 0), classes taken in turn so every class present is in."""
    rng = np.random.default_rng(seed)
    by_class = [rng.permutation(np.flatnonzero(gold == c)) for c in np.unique(gold[gold >= 0])]
    picked: list[int] = []
    depth = 0
    while len(picked) < size and any(depth < len(rows) for rows in by_class):
        for rows in by_class:
            if depth < len(rows) and len(picked) < size:
                picked.append(int(rows[depth]))
        depth += 1
    return np.asarray(picked, dtype=np.int64)


def make_batch(model: Any, enc: Encoded, rows: np.ndarray, labels: np.ndarray, device: Any,
               global_rows: int) -> Batch:
    import torch

    params = forward_params(model)
    inputs = filter_inputs(collate(enc, rows, device), params)
    y = torch.as_tensor(labels, dtype=torch.long, device=device)
    own = "labels" in params[0] or params[1]
    if own:
        inputs["labels"] = y
    tokens = int(sum(len(enc.ids[i]) for i in rows))
    return Batch(inputs=inputs, labels=y, rows=len(rows), tokens=tokens, global_rows=global_rows, own_loss=own)


# --- forward + loss -----------------------------------------------------------------------------

def forward_loss(net: Any, batch: Batch) -> tuple[Any, Any, Any, str]:
    """(loss, logits, classification loss, its source): the model's own loss when it returns one, else
    cross-entropy on the logits; the classification loss (detached) is the component the model reports
    (e.g. ce_loss beside supcon_loss) or the cross-entropy of the logits."""
    import torch
    import torch.nn.functional as F

    out = call_model(net, batch.inputs)
    logits = logits_tensor(out, batch.rows)
    if logits is None:
        extract_logits(out, batch.rows)  # raises the precise error for odd shapes
        raise ModelCodeError("the model's logits are not a torch tensor; smoke-train needs them to backpropagate")
    if logits.shape[1] < 2:
        raise UsageError(f"the head has {logits.shape[1]} output(s); smoke-train needs a classifier with at "
                         "least 2 logits (see problem-type-mismatch)")
    loss = extract_loss(out) if batch.own_loss else None
    if loss is None:
        loss = F.cross_entropy(logits.float(), batch.labels)
    elif loss.dim() > 0:
        loss = loss.mean()
    for name in CLASSIFICATION_LOSS_FIELDS:
        part = out.get(name) if isinstance(out, dict) else getattr(out, name, None)
        if isinstance(part, torch.Tensor) and part.numel() == 1 and part.is_floating_point():
            return loss, logits, part.detach().float().reshape(()), f"the model's {name}"
    with torch.no_grad():
        ce = F.cross_entropy(logits.detach().float(), batch.labels)
    return loss, logits, ce, "cross-entropy of the logits"


def _step_stats(loss: Any, logits: Any, batch: Batch, classes: Any, class_loss: Any) -> Any:
    """[loss * rows, correct, max |logit|, classification loss * rows, histogram of predictions...] on the
    device, no sync."""
    import torch

    with torch.no_grad():
        lg = logits.detach().float()
        pred = lg.argmax(1)
        hist = (pred[:, None] == classes[None, :]).sum(0).float()  # no bincount: it syncs on CUDA
        return torch.cat([(loss.detach().float() * batch.rows).reshape(1), (pred == batch.labels).sum().float()
                          .reshape(1), lg.abs().max().reshape(1), (class_loss * batch.rows).reshape(1), hist])


def _grad_norm(params: list) -> Any:
    import torch

    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros((), device=params[0].device if params else "cpu")
    foreach = getattr(torch, "_foreach_norm", None)
    norms = foreach(grads) if foreach is not None else [g.norm() for g in grads]
    return torch.linalg.vector_norm(torch.stack([n.float() for n in norms]))


# --- pre-flight ---------------------------------------------------------------------------------

def preflight(model: Any, batch: Batch, runtime: Runtime, trace: TrainingTrace, d: Dist) -> list[float]:
    """One forward/backward on the batch: frozen and disconnected parameters, loss at init.

    Returns the step-1-like stats [loss, accuracy, max |logit|, distinct predicted classes].
    """
    import torch

    model.train()
    named = list(model.named_parameters())
    with runtime.autocast():
        loss, logits, class_loss, trace.classification_source = forward_loss(model, batch)
    _check_width(logits, trace)
    classes = torch.arange(trace.num_classes, device=logits.device)
    stats = all_reduce_sum(_step_stats(loss, logits, batch, classes, class_loss), d)
    if loss.requires_grad:
        try:
            loss.backward()
        except RuntimeError as exc:
            raise ModelCodeError(f"backward through the model failed ({exc}); fix the model code") from None
    trace.census = census(named, loss_connected=bool(loss.requires_grad))
    model.zero_grad(set_to_none=True)
    host = stats.tolist()
    loss0 = host[0] / batch.global_rows
    trace.initial_loss = loss0
    return [loss0, host[1] / batch.global_rows, host[2] / max(d.world, 1), sum(1 for v in host[4:] if v > 0)]


def _check_width(logits: Any, trace: TrainingTrace) -> None:
    width = int(logits.shape[1])
    if width != trace.num_classes:
        if width < 2:
            raise UsageError(f"the head has {width} output(s); smoke-train needs a classifier with at least 2 "
                             "logits (see problem-type-mismatch)")
        trace.num_classes = width  # the head decides; the label map is check-logits' business


# --- the training loop --------------------------------------------------------------------------

FitRule = Callable[[TrainingTrace], "str | None"]
# (trace, steps left) -> why the run cannot fit in those steps, or None to keep training
GiveUpRule = Callable[[TrainingTrace, int], "str | None"]


def cannot_reach_target(losses: list[float], accuracies: list[float], target: float, steps_left: int) -> str | None:
    """Why this run cannot be fitted in `steps_left` more steps, or None (keep training).

    A fit needs 100% batch accuracy (with the loss under `target`, or for SMOKE_PLATEAU_STEPS steps with
    the loss stopped falling), so both must be out of reach. Conservative by construction: only after
    SMOKE_GIVE_UP_MIN_STEPS steps; the loss: even SMOKE_GIVE_UP_SPEEDUP x the steepest fall of log(loss)
    over any SMOKE_GIVE_UP_WINDOW steps so far, kept up for every step left, ends above log(target); the
    accuracy: SMOKE_GIVE_UP_SPEEDUP x its average rise so far (means of the first and the last
    SMOKE_GIVE_UP_WINDOW steps), kept up for every step left, ends below 100%.
    """
    n, w, k = len(losses), T.SMOKE_GIVE_UP_WINDOW, T.SMOKE_GIVE_UP_SPEEDUP
    if n < max(T.SMOKE_GIVE_UP_MIN_STEPS, 2 * w) or len(accuracies) != n or steps_left <= 0 or target <= 0:
        return None
    if not all(math.isfinite(x) and x > 0 for x in losses):
        return None
    logs = [math.log(x) for x in losses]
    steepest = max(0.0, max((logs[i - w] - logs[i]) / w for i in range(w, n)))
    lowest = logs[-1] - k * steepest * steps_left
    now, then = sum(accuracies[-w:]) / w, sum(accuracies[:w]) / w
    highest = now + k * max(0.0, now - then) / (n - w) * steps_left
    if lowest <= math.log(target) or highest >= 1.0 or max(accuracies[-w:]) >= 1.0:
        return None
    return (f"after {n} steps neither the loss ({losses[-1]:.3g}) can reach {target:g} nor the accuracy "
            f"({now:.0%} over the last {w} steps) 100% in the {steps_left} steps left: at {k:g}x their best pace "
            f"so far they end at {math.exp(lowest):.3g} and {highest:.0%}")


def fit_settled(losses: list[float], accuracies: list[float]) -> str | None:
    """doctor's settled fit: 100% batch accuracy on each of the last SMOKE_SETTLED_FIT_STEPS steps with the loss
    still falling over them. From there smoke-train's run ends fitted (under --target-loss, or at 100% with the
    loss stopped falling) unless it breaks down later; only the step of the fit is left to measure."""
    k = T.SMOKE_SETTLED_FIT_STEPS
    if len(losses) <= k or any(a < 1.0 for a in accuracies[-k:]) or not losses[-1] < losses[-k - 1]:
        return None
    return (f"accuracy 100% for the last {k} steps with the loss still falling ({losses[-k - 1]:.3g} -> "
            f"{losses[-1]:.3g}): settled, doctor stops here (smoke-train trains on to --target-loss)")


GIVE_UP_RULE = (f"after at least {T.SMOKE_GIVE_UP_MIN_STEPS} steps, stop when {T.SMOKE_GIVE_UP_SPEEDUP:g}x the steepest "
                f"fall of log(loss) over {T.SMOKE_GIVE_UP_WINDOW} steps seen so far still ends above --target-loss "
                f"and {T.SMOKE_GIVE_UP_SPEEDUP:g}x the batch accuracy's average rise so far still ends below 100%, "
                "both kept up for every step left")


def give_up_rule(target: float) -> GiveUpRule:
    """cannot_reach_target on the loss a fit is judged on (the classification loss) and the batch accuracy."""
    return lambda t, steps_left: cannot_reach_target(t.classification_losses, t.accuracies, target, steps_left)


def stop_at(step: int, loss: float, limit: float, trace: TrainingTrace, fitted: FitRule, start: float) -> bool:
    """Record a divergence or a fit at `step` in `trace`; True when the run should stop there."""
    if not math.isfinite(loss) or loss > limit:
        trace.diverged_step = step
        return True
    trace.fit_rule = fitted(trace)
    if trace.fit_rule is None:
        return False
    trace.fit_step = step
    trace.fit_seconds = time.perf_counter() - start
    return True


def train_on_batch(model: Any, batch: Batch, runtime: Runtime, trace: TrainingTrace, settings: TrainSettings,
                   d: Dist, fitted: FitRule, *,
                   on_step: Callable[[int, float, float, float], None] | None = None,
                   give_up: GiveUpRule | None = None) -> RunResult:
    """Train `model` (a copy: it is changed) on the fixed batch until `fitted` names a rule, it diverges,
    `give_up` says it cannot fit in the steps left (result.stopped_early), or it runs out of steps."""
    import torch

    result = RunResult(trace=trace)
    device = runtime.device
    params = [p for p in model.parameters() if p.requires_grad]
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    sharded = d.shard == "fsdp"
    # snapshot on the CPU: parameters-unchanged needs the start, the GPU's memory is for training;
    # under FSDP2 each rank keeps its own slice, and unchanged() asks every rank
    snapshot = local_snapshot(params)
    # fused kernels on CUDA; elsewhere the multi-tensor path, which torch takes by default only on CUDA
    # (a per-parameter Python loop otherwise; measured ~4 % more steps/s for MiniLM on a CPU)
    kw = {"fused": True} if device.type == "cuda" else {"foreach": True}
    # no weight decay: a parameter without gradient must stay bitwise equal (parameters-unchanged)
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0, **kw)
    # fp16 needs loss scaling against underflow; CUDA is where GradScaler is supported on torch 2.4
    scaler = torch.amp.GradScaler("cuda") if runtime.precision == "fp16" and device.type == "cuda" else None
    net = model
    if d.active and not sharded:  # FSDP2: the copy is already sharded (training_copy)
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
                  find_unused_parameters=bool(trace.disconnected))
    classes = torch.arange(trace.num_classes, device=device)
    start = trace.initial_loss if trace.initial_loss is not None and math.isfinite(trace.initial_loss) else trace.ln_c
    limit = T.SMOKE_DIVERGED_FACTOR * max(start, trace.ln_c)
    model.train()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for step in range(1, settings.steps + 1):
        with runtime.autocast():
            loss, logits, class_loss, _ = forward_loss(net, batch)
        stats = _step_stats(loss, logits, batch, classes, class_loss)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)  # the norm of the true gradient
        else:
            loss.backward()
        gnorm = grad_norm(params, d) if sharded else _grad_norm(params)
        stats = all_reduce_sum(stats, d)  # gradients are already averaged by DDP's / FSDP's backward hooks
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)
        host = torch.cat([stats, gnorm.reshape(1).float()]).tolist()  # the one sync of the step
        loss_v, acc = host[0] / batch.global_rows, host[1] / batch.global_rows
        trace.losses.append(loss_v)
        trace.accuracies.append(acc)
        trace.max_abs_logits.append(host[2] / d.world)
        trace.classification_losses.append(host[3] / batch.global_rows)
        trace.distinct_predictions.append(sum(1 for v in host[4:-1] if v > 0))
        trace.grad_norms.append(host[-1])
        if on_step is not None:
            on_step(step, loss_v, acc, host[-1])
        if stop_at(step, loss_v, limit, trace, fitted, t0):
            break
        if give_up is not None:  # every rank holds the same reduced losses, so all stop together
            result.stopped_early = give_up(trace, settings.steps - step)
            if result.stopped_early:
                break
    _sync(device)
    seconds = time.perf_counter() - t0
    result.speed = _throughput(device, batch, len(trace.losses), seconds, d)
    trace.unchanged = unchanged(names, params, snapshot, d)
    result.rank_divergence = parameter_divergence(model, d)
    return result


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.synchronize()


def _throughput(device: Any, batch: Batch, steps: int, seconds: float, d: Dist) -> Throughput:
    import torch

    sp = Throughput(seconds=seconds, rank=d.rank)
    if steps and seconds > 0:
        sp.steps_per_second = steps / seconds
        sp.examples_per_second = steps * batch.rows / seconds
        sp.tokens_per_second = steps * batch.tokens / seconds
    if device.type == "cuda":
        sp.peak_memory_bytes = int(torch.cuda.max_memory_allocated(device))
        sp.peak_memory_kind = "cuda_max_allocated"
    elif device.type == "mps" and hasattr(torch, "mps"):
        sp.peak_memory_bytes = int(torch.mps.driver_allocated_memory())
        sp.peak_memory_kind = "mps_driver_allocated"
    else:
        import resource  # POSIX only; imported here so the module loads elsewhere

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        sp.peak_memory_bytes = int(rss if sys.platform == "darwin" else rss * 1024)  # macOS: bytes, Linux: KiB
        sp.peak_memory_kind = "process_peak_rss"
    return sp


# --- model copies for triage --------------------------------------------------------------------



def training_copy(model: Any, device: Any, head_only: bool = False, d: Dist | None = None, lora: int = 0) -> Any:
    """A deep copy in fp32 (autocast does the low precision; AdamW wants fp32 master weights), FSDP2-sharded
    when d.shard is "fsdp"; with `lora` > 0 (and not head_only) a LoRA adapter of that rank on the copy."""
    import copy

    import torch

    fsdp = d is not None and d.shard == "fsdp"
    if lora and not head_only:
        from labeldiag.measure.lora import LoraPlan, lora_copy

        adapted, _ = lora_copy(model, LoraPlan(lora, ""))
        # under FSDP2 the adapted whole copy is filled into the shards, then dropped
        return sharded_copy(adapted, device, torch.float32) if fsdp else _fp32_on(adapted, device)
    if fsdp:  # no second whole copy: filled slice by slice after sharding
        return sharded_copy(model, device, torch.float32, head_parameter_names(model) if head_only else None)
    net = copy.deepcopy(model)
    net.zero_grad(set_to_none=True)  # the caller's .grad must not count as reached by our backward
    if head_only:
        head = head_parameter_names(net)
        for n, p in net.named_parameters():
            p.requires_grad_(n in head)
    return _fp32_on(net, device)


def _fp32_on(net: Any, device: Any) -> Any:
    import torch

    if any(p.is_floating_point() and p.dtype != torch.float32 for p in net.parameters()):
        net.float()
    return net.to(device)
