"""Do the ranks of a sharded run agree: the head as each rank loaded it, and one batch through the model
whole and FSDP2-sharded. Every function here is a collective: all ranks call it, in the same order."""
from __future__ import annotations

import copy
import hashlib
from typing import Any

import numpy as np

from labeldiag import thresholds as T
from labeldiag.distributed import Dist, gather, parameter_divergence
from labeldiag.measure.dtensor import full
from labeldiag.measure.parameters import head_parameter_names
from labeldiag.measure.sharded import sharded_copy
from labeldiag.measure.training import forward_loss, make_batch, training_copy
from labeldiag.records import HeadAcrossRanks, ShardedForward


# --- head-differs-across-ranks ------------------------------------------------------------------

def head_across_ranks(model: Any, d: Dist) -> HeadAcrossRanks | None:
    """Each rank's fingerprint (SHA-256 of the bytes) of the head as loaded, gathered from every rank."""
    import torch

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
