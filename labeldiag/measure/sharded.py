"""FSDP2 (torch.distributed.fsdp.fully_shard) for smoke-train and grad-flow (what only a sharded run measures,
the ranks' agreement, is in measure.shard_agreement).

Under FSDP2 a parameter is a DTensor: each rank holds one slice of dim 0. Every statistic that reads
parameters or gradients here reads the whole tensor (DTensor.full_tensor(), an all-gather, one tensor at
a time) or reduces the ranks' slices, never rank 0's slice alone. Every function that gathers is a
collective: all ranks call it, in the same order.
"""
from __future__ import annotations

import copy
from typing import Any

from labeldiag.distributed import Dist
from labeldiag.measure.dtensor import full, is_dtensor, local


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
