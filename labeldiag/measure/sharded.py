"""FSDP2 (torch.distributed.fsdp.fully_shard) for smoke-train and grad-flow, and the checks only a sharded run needs.

Under FSDP2 a parameter is a DTensor: each rank holds one slice of dim 0. Every statistic that reads
parameters or gradients here reads the whole tensor (DTensor.full_tensor(), an all-gather, one tensor at
a time) or reduces the ranks' slices, never rank 0's slice alone. Every function that gathers is a
collective: all ranks call it, in the same order.
"""
from __future__ import annotations

import copy
import hashlib
from typing import Any

import numpy as np

from labeldiag import thresholds as T
from labeldiag.distributed import Dist, gather
from labeldiag.records import HeadAcrossRanks, ShardedForward


def is_dtensor(t: Any) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def full(t: Any) -> Any:
    """The whole tensor: gathered from every rank for a DTensor (a collective), the tensor itself otherwise."""
    return t.full_tensor() if t is not None and is_dtensor(t) else t


def local(t: Any) -> Any:
    """This rank's slice of a DTensor, or the tensor itself."""
    return t.to_local() if is_dtensor(t) else t


def any_sharded(named: list[tuple[str, Any]]) -> bool:
    return any(is_dtensor(p) for _, p in named)


# --- wrapping -----------------------------------------------------------------------------------

def shard_model(model: Any, device: Any) -> int:
    """fully_shard every transformer block, then the root (embeddings, norm, head); returns the blocks sharded.

    Blocks are the classes the model names in _no_split_modules (transformers' own unit of placement),
    else the items of its layer stack. The head joins the root's group: gathered in the root's forward,
    so every rank reads the whole head there and through full(). A model still on the CPU moves to
    `device` one group at a time as it is sharded, so a GPU never holds more than one whole block.
    """
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from labeldiag.measure.hooks import find_layer_stack

    names = set(getattr(model, "_no_split_modules", None) or ())
    blocks = [m for m in model.modules() if m is not model and type(m).__name__ in names]
    if not blocks:
        blocks = find_layer_stack(model)[1]
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))  # the run's device, not the host's GPU
    for block in blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return len(blocks)


def sharded_copy(model: Any, device: Any, dtype: Any = None, trainable: set[str] | None = None) -> Any:
    """An FSDP2-sharded copy on `device` that never holds a second whole model: the copy is made on the meta
    device, sharded, then each rank fills its own slices from `model` one tensor at a time.

    `dtype` casts floating tensors (None keeps them); `trainable` names the parameters that keep
    requires_grad (None: as in `model`). The caller's model is left as it was.
    """
    import torch
    from torch.distributed.tensor import distribute_tensor

    def meta(t: Any) -> Any:
        cast = dtype if dtype is not None and t.is_floating_point() else t.dtype
        return torch.empty_like(t, device="meta", dtype=cast)

    memo: dict[int, Any] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) not in memo:  # tied weights stay tied
            grad = p.requires_grad if trainable is None else name in trainable
            memo[id(p)] = torch.nn.Parameter(meta(p), requires_grad=grad)
    for b in model.buffers():
        memo.setdefault(id(b), meta(b))
    net = copy.deepcopy(model, memo)
    shard_model(net, device)
    net.to_empty(device=device)
    source = dict(model.named_parameters(remove_duplicate=False))
    buffers = dict(model.named_buffers(remove_duplicate=False))
    with torch.no_grad():
        for name, p in net.named_parameters():
            whole = source[name].detach().to(device, p.dtype)
            piece = distribute_tensor(whole, p.device_mesh, p.placements, src_data_rank=None)  # no traffic
            local(p).copy_(piece.to_local())
            del whole, piece
        for name, b in net.named_buffers():
            b.copy_(buffers[name])
    return net


# --- whole-tensor views -------------------------------------------------------------------------

class Gathered:
    """A parameter as the statistics read it (requires_grad, numel, detach, grad), each read gathered."""

    def __init__(self, parameter: Any):
        self._p = parameter
        self.requires_grad = parameter.requires_grad

    def numel(self) -> int:
        return self._p.numel()  # a DTensor's numel is the whole tensor's

    def detach(self) -> Any:
        return full(self._p.detach())

    @property
    def grad(self) -> Any:
        return full(self._p.grad)


def gathered(named: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """(name, parameter) pairs whose reads see whole tensors; the same list when nothing is sharded."""
    if not any_sharded(named):
        return named
    return [(n, Gathered(p)) for n, p in named]


def grad_norm(params: list, d: Dist) -> Any:
    """The L2 norm of the whole gradient: each rank's slices squared and summed, then summed over ranks."""
    import torch
    import torch.distributed as dist

    device = local(params[0]).device if params else torch.device("cpu")
    square = torch.zeros((), device=device)
    for p in params:
        if p.grad is not None:
            square = square + local(p.grad).float().pow(2).sum()
    if d.active:
        dist.all_reduce(square, op=dist.ReduceOp.SUM)
    return square.sqrt()


def local_snapshot(params: list) -> list:
    """This rank's slice of each parameter, on the CPU (parameters-unchanged compares against it)."""
    return [local(p).detach().to("cpu", copy=True) for p in params]


def unchanged(names: list[str], params: list, snapshot: list, d: Dist) -> list[str]:
    """Parameters bitwise equal to their snapshot on every rank's slice, i.e. over the whole tensor."""
    import torch
    import torch.distributed as dist

    with torch.no_grad():
        moved = torch.tensor([0.0 if torch.equal(local(p).detach().cpu(), old) else 1.0
                              for p, old in zip(params, snapshot)])
    if d.active and moved.numel():
        dist.all_reduce(moved, op=dist.ReduceOp.MAX)
    return [n for n, m in zip(names, moved.tolist()) if m == 0.0]


# --- head-differs-across-ranks ------------------------------------------------------------------

def head_across_ranks(model: Any, d: Dist) -> HeadAcrossRanks | None:
    """Each rank's fingerprint (SHA-256 of the bytes) of the head as loaded, gathered from every rank."""
    import torch

    from labeldiag.distributed import parameter_divergence
    from labeldiag.measure.training import head_parameter_names

    if not d.active:
        return None
    head = sorted(head_parameter_names(model))
    if not head:
        return HeadAcrossRanks(world=d.world, head_parameters=[], digests=[], norms=[], max_relative_difference=None)
    params = dict(model.named_parameters())
    digest = hashlib.sha256()
    square = 0.0
    with torch.no_grad():
        for name in head:
            t = full(params[name].detach()).contiguous().cpu()
            digest.update(name.encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
            square += float(t.float().pow(2).sum())
    rows = gather((digest.hexdigest()[:16], square ** 0.5), d)
    diff = parameter_divergence(_HeadOnly([params[n] for n in head]), d)
    return HeadAcrossRanks(world=d.world, head_parameters=head, digests=[r[0] for r in rows],
                           norms=[r[1] for r in rows], max_relative_difference=diff)


class _HeadOnly:
    """parameter_divergence's view of a few parameters."""

    def __init__(self, params: list):
        self._params = params

    def parameters(self):
        return iter(self._params)


# --- sharded-forward-mismatch -------------------------------------------------------------------

def cut_to_layers(model: Any, layers: int, seed: int) -> Any:
    """A fresh model of the same class from a copy of its config with `layers` blocks (same seed on every rank)."""
    import torch

    config = copy.deepcopy(model.config)
    for attr in ("num_hidden_layers", "n_layer", "num_layers", "n_layers"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > layers:
            setattr(config, attr, layers)
    kinds = getattr(config, "layer_types", None)
    if isinstance(kinds, list) and len(kinds) > layers:
        config.layer_types = kinds[:layers]
    torch.manual_seed(seed)
    return type(model)(config)


def sharded_forward(model: Any, enc: Any, rows: np.ndarray, labels: np.ndarray, runtime: Any, d: Dist,
                    seed: int) -> ShardedForward:
    """The same batch through a 2-layer copy of the model's config, whole on each rank and FSDP2-sharded:
    the largest relative difference of the logits and of the head's gradients, over all ranks."""
    import torch
    import torch.distributed as dist

    from labeldiag.measure.training import head_parameter_names, make_batch, training_copy

    layers = 2
    out = ShardedForward(world=d.world, layers=layers, examples=int(len(rows)), precision=runtime.precision,
                         tolerance=T.SHARDED_FORWARD_TOLERANCE.get(runtime.precision,
                                                                   T.SHARDED_FORWARD_TOLERANCE["fp32"]))
    try:
        whole = training_copy(cut_to_layers(model, layers, seed), runtime.device)
    except Exception as exc:  # a class that cannot be built from its config alone (a wrapper, custom code)
        out.skipped = f"a {layers}-layer copy could not be built from the config ({type(exc).__name__})"
        gather(None, d)  # keep the ranks' collectives in step
        return out
    whole.eval()  # no dropout: both passes must be the same function
    head = sorted(head_parameter_names(whole))
    batch = make_batch(whole, enc, rows, labels, runtime.device, global_rows=int(len(rows)))
    sharded = sharded_copy(whole, runtime.device)
    ref_logits, ref_grads = _pass(whole, batch, runtime, head)
    logits, grads = _pass(sharded, batch, runtime, head)
    worst = torch.tensor([_relative(logits, ref_logits),
                          max((_relative(g, r) for g, r in zip(grads, ref_grads)), default=0.0)])
    if d.active:
        dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    out.logits_relative_difference, out.head_grad_relative_difference = (float(v) for v in worst.tolist())
    out.head_parameters = head
    return out


def _pass(net: Any, batch: Any, runtime: Any, head: list[str]) -> tuple[Any, list]:
    """Logits and the head's whole gradients of one forward/backward."""
    from labeldiag.measure.training import forward_loss

    with runtime.autocast():
        loss, logits, _, _ = forward_loss(net, batch)
    loss.backward()
    params = dict(net.named_parameters())
    grads = [full(params[n].grad).detach().float().cpu() if params[n].grad is not None else None for n in head]
    return logits.detach().float().cpu(), grads


def _relative(a: Any, b: Any) -> float:
    """max |a - b| / max |b|; inf when exactly one is missing or the shapes differ."""
    if a is None and b is None:
        return 0.0
    if a is None or b is None or a.shape != b.shape:
        return float("inf")
    scale = float(b.abs().max()) if b.numel() else 0.0
    diff = float((a - b).abs().max()) if b.numel() else 0.0
    return diff / scale if scale > 0 else diff
