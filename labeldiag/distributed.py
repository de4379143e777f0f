"""Data-parallel helpers for smoke-train under torchrun: one process per device, rank 0 reports.

Every helper is a no-op (or the identity) in a single process, so the training code calls them
unconditionally.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from labeldiag.errors import UsageError


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def from_env() -> Dist:
    """torchrun sets WORLD_SIZE, RANK and LOCAL_RANK; anything else is a single process."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        rank = int(os.environ.get("RANK", "0") or 0)
        local = int(os.environ.get("LOCAL_RANK", str(rank)) or 0)
    except ValueError:
        raise UsageError("WORLD_SIZE / RANK / LOCAL_RANK must be integers; launch with torchrun") from None
    return Dist(rank=rank, world=max(world, 1), local_rank=local)


def local_device(d: Dist, requested: str) -> str:
    """Each rank takes the CUDA device of its LOCAL_RANK unless the user named one."""
    if not d.active:
        return requested
    import torch

    if requested in ("auto", "cuda") and torch.cuda.is_available():
        if d.local_rank >= torch.cuda.device_count():
            raise UsageError(f"LOCAL_RANK {d.local_rank} but only {torch.cuda.device_count()} CUDA device(s); "
                             "lower --nproc-per-node")
        torch.cuda.set_device(d.local_rank)
        return f"cuda:{d.local_rank}"
    return requested


def init(d: Dist, device: Any) -> None:
    if not d.active:
        return
    import torch.distributed as dist

    d.backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        kw = {"device_id": device} if device.type == "cuda" and _accepts_device_id() else {}
        dist.init_process_group(backend=d.backend, **kw)


def _accepts_device_id() -> bool:
    import inspect

    import torch.distributed as dist

    try:
        return "device_id" in inspect.signature(dist.init_process_group).parameters
    except (TypeError, ValueError):
        return False


def shutdown(d: Dist) -> None:
    if not d.active:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def shard(rows: Any, d: Dist) -> Any:
    """Rank r takes rows r, r+N, ...: the stratified order keeps every shard close to balanced."""
    return rows[d.rank::d.world] if d.active else rows


def all_reduce_sum(t: Any, d: Dist) -> Any:
    if d.active:
        import torch.distributed as dist

        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def gather(obj: Any, d: Dist) -> list[Any]:
    if not d.active:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def parameter_divergence(model: Any, d: Dist) -> float | None:
    """Max |p_rank - p_rank0| / max |p| over all parameters, the same on every rank; None alone."""
    if not d.active:
        return None
    import torch
    import torch.distributed as dist

    worst = None
    scale = None
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() == 0:
                continue
            ref = p.detach().clone()
            dist.broadcast(ref, src=0)  # rank 0's copy, one tensor at a time (no full model copy)
            a, b = p.detach().float(), ref.float()
            same = (a == b) | (a.isnan() & b.isnan())  # a NaN on every rank is a divergence of the loss, not of ranks
            diff = torch.where(same, torch.zeros_like(a), (a - b).abs()).max()
            big = torch.nan_to_num(a.abs(), nan=0.0, posinf=0.0).max()
            worst = diff if worst is None else torch.maximum(worst, diff)
            scale = big if scale is None else torch.maximum(scale, big)
        if worst is None:
            return 0.0
        both = torch.stack([worst, scale])
        dist.all_reduce(both, op=dist.ReduceOp.MAX)
        w, s = both.tolist()
    return w / s if s > 0 else w
