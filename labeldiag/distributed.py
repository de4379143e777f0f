"""Data-parallel helpers for smoke-train under torchrun: one process per device, rank 0 reports.

Every helper is a no-op (or the identity) in a single process, so the training code calls them
unconditionally.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

from labeldiag import thresholds as T
from labeldiag.errors import ModelCodeError, UsageError


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None
    shard: str | None = None  # "ddp" or "fsdp" under a launcher; None in a single process

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


def joined() -> Dist:
    """The process group this process already belongs to (a Trainer's, accelerate's, DeepSpeed's), else one
    process: for code that runs inside someone else's distributed run rather than starting one."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return Dist()
    return Dist(rank=dist.get_rank(), world=dist.get_world_size(), backend=str(dist.get_backend()))


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
    """Join the process group; every collective after this gives up after collective_timeout() seconds."""
    if not d.active:
        return
    from datetime import timedelta

    import torch.distributed as dist

    d.backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        kw = {"device_id": device} if device.type == "cuda" and _accepts_device_id() else {}
        dist.init_process_group(backend=d.backend, timeout=timedelta(seconds=collective_timeout()), **kw)


def collective_timeout() -> float:
    """Seconds a rank waits in one collective for the others (LABELDIAG_DIST_TIMEOUT, default 600 s)."""
    text = os.environ.get("LABELDIAG_DIST_TIMEOUT", "")
    try:
        value = float(text) if text else T.DIST_TIMEOUT_SECONDS
    except ValueError:
        raise UsageError(f"LABELDIAG_DIST_TIMEOUT '{text}' must be a number of seconds") from None
    if not value > 0:
        raise UsageError(f"LABELDIAG_DIST_TIMEOUT must be a positive number of seconds, got {text}")
    return value


def choose_shard(d: Dist, requested: str | None, parameters: int, device: Any) -> tuple[str | None, str]:
    """("ddp" | "fsdp" | None, why): the flag when given, else what fits the device under a launcher."""
    if not d.active:
        if requested == "fsdp":
            raise UsageError("--shard fsdp needs one process per device: launch with torchrun --nproc-per-node N "
                             "or accelerate launch")
        return None, "one process"
    if requested in ("ddp", "fsdp"):
        return requested, f"--shard {requested}"
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true", "yes"):
        return "fsdp", "accelerate launch with an FSDP config"
    need = parameters * T.SHARD_TRAINING_BYTES_PER_PARAMETER
    have = device_memory(device, d)
    if have is None or need <= T.SHARD_DDP_MAX_SHARE * have:
        return "ddp", (f"picked: a full copy's training state, ~{need / 2**30:.2g} GiB, fits in "
                       f"{T.SHARD_DDP_MAX_SHARE:.0%} of each rank's {have / 2**30:.3g} GiB" if have else
                       "picked: the device's memory is unknown")
    return "fsdp", (f"picked: a full copy's training state, ~{need / 2**30:.2g} GiB, exceeds "
                    f"{T.SHARD_DDP_MAX_SHARE:.0%} of each rank's {have / 2**30:.3g} GiB")


def device_memory(device: Any, d: Dist) -> float | None:
    """Bytes one rank may use: its GPU's memory, or the host's memory split over the ranks on it."""
    import torch

    if device.type == "cuda":
        return float(torch.cuda.get_device_properties(device).total_memory)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    per_host = int(os.environ.get("LOCAL_WORLD_SIZE", d.world) or d.world)
    return total / max(per_host, 1)


def check_batch_split(rows: int, d: Dist) -> None:
    """Equal shards: the ranks' averaged gradient is then the whole batch's mean gradient."""
    if d.active and rows % d.world:
        raise UsageError(f"the batch holds {rows} examples, which {d.world} ranks cannot split evenly; give "
                         f"--max-examples a multiple of {d.world}")


class RankFailure(UsageError):
    """Another rank died, stalled or failed: this rank stops too, with one line saying why."""


def collective_failure(exc: BaseException, d: Dist) -> RankFailure | None:
    """A RankFailure when `exc`, or an error it was raised from, is a collective that lost a peer or timed
    out (gloo / NCCL); None for any other error."""
    seen = exc
    while seen is not None:
        failure = _peer_failure(seen, d)
        if failure is not None:
            return failure
        seen = seen.__cause__
    return None


PEER_GONE = ("connection closed by peer", "connection reset by peer", "broken pipe", "connection refused",
             "nccl communicator was aborted", "remote process exited")


def _peer_failure(exc: BaseException, d: Dist) -> RankFailure | None:
    if not isinstance(exc, RuntimeError):  # torch's DistBackendError and gloo's errors are RuntimeErrors
        return None
    text = " ".join(str(exc).split())
    low = text.lower()
    if "timed out" in low or "timeout" in low:
        cause = (f"the other ranks did not reach the same collective within {collective_timeout():g} s "
                 "(a rank stalled, hung or was stopped)")
    elif any(k in low for k in PEER_GONE):
        cause = "another rank closed its connection (it died, was killed or ran out of memory)"
    else:
        return None
    return RankFailure(f"rank {d.rank} of {d.world}: {cause}; every rank stops (torchrun names the failed rank) "
                       f"[{text[:160]}]")


def rank_zero_errors(body: Callable[[], int]) -> Callable[[], int]:
    """The same usage error on every rank is printed once, by rank 0; a collective that failed, by each rank,
    as one line naming it (RankFailure)."""
    def wrapped() -> int:
        d = from_env()
        if d.active:
            _stop_on_sigterm()
        try:
            code = body()
            # findings at --fail-on are rank 0's exit code: a launcher stops every rank when one exits nonzero,
            # which would kill rank 0 before it writes the report
            return 0 if d.active and not d.main and code == 1 else code
        except RankFailure:
            raise
        except _Stopped:
            if not d.main:  # one line per run: rank 0's, or the failing rank's own
                raise SystemExit(143) from None
            raise RankFailure(f"rank {d.rank} of {d.world}: stopped by the launcher (SIGTERM), which stops every rank "
                              "once one has failed; its summary names the failed rank and exit code") from None
        except KeyboardInterrupt:  # Ctrl-C reaches every rank of the launcher's process group: rank 0 says so
            if d.active and not d.main:
                raise SystemExit(130) from None
            raise
        except UsageError as exc:  # a collective that failed inside the model's backward arrives wrapped
            failure = collective_failure(exc, d) if d.active else None
            if failure is not None:
                raise failure from exc
            if d.active and isinstance(exc, ModelCodeError):  # the model raised here, perhaps on this rank alone
                raise RankFailure(f"rank {d.rank} of {d.world}: {exc}; every rank stops (the launcher ends the "
                                  "others at once)") from exc
            if d.active and not d.main:
                raise SystemExit(2) from None
            raise
        except Exception as exc:
            if d.active and (isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"):
                raise RankFailure(f"rank {d.rank} of {d.world}: out of memory; lower --max-examples or --batch-size, "
                                  "or shard with --shard fsdp over more ranks") from exc
            failure = collective_failure(exc, d) if d.active else None
            if failure is None:
                raise
            raise failure from exc
    return wrapped


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


def gather_to_main(obj: Any, d: Dist) -> list[Any] | None:
    """Every rank's `obj` on rank 0, in rank order (None on the other ranks); [obj] in one process."""
    if not d.active:
        return [obj]
    import torch.distributed as dist

    out: list[Any] | None = [None] * d.world if d.main else None
    dist.gather_object(obj, out, dst=0)
    return out


def parameter_divergence(model: Any, d: Dist) -> float | None:
    """Max |p_rank - p_rank0| / max |p| over all parameters (gathered when sharded), the same on every rank;
    None alone."""
    if not d.active:
        return None
    import torch
    import torch.distributed as dist

    from labeldiag.measure.dtensor import full

    worst = None
    scale = None
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() == 0:
                continue
            p = full(p.detach())  # a sharded parameter: every rank's gathered view of the whole tensor
            ref = p.clone()
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


class _Stopped(BaseException):
    """SIGTERM arrived (a launcher stopping the ranks); a BaseException so no `except Exception` swallows it."""


def _stop_on_sigterm() -> None:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def stop(signum, frame):
        raise _Stopped()

    signal.signal(signal.SIGTERM, stop)

