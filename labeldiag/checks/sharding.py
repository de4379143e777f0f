"""Verdicts only a sharded run needs: heads that differ between ranks, sharding that changes the forward."""
from __future__ import annotations

import math
from typing import Iterator

from labeldiag.findings import Finding
from labeldiag.records import HeadAcrossRanks, ShardedForward, ShardedStart
from labeldiag.catalogue import HEAD_DIFFERS_ACROSS_RANKS, SHARDED_FORWARD_MISMATCH


def head_differs_across_ranks(h: HeadAcrossRanks | None) -> list[Finding]:
    """Every rank must start from the same head: a byte-for-byte fingerprint per rank, compared to rank 0's."""
    if h is None or not h.digests:
        return []
    differing = [r for r, digest in enumerate(h.digests) if digest != h.digests[0]]
    if not differing:
        return []
    diff = h.max_relative_difference
    return [Finding(
        HEAD_DIFFERS_ACROSS_RANKS,
        f"the head ({len(h.head_parameters)} tensor(s)) differs between ranks after loading: rank(s) "
        f"{', '.join(map(str, differing))} of {h.world} hold other values than rank 0 (max relative difference "
        f"{diff:.3g}); FSDP stitches the ranks' slices into a head no rank initialised" if diff is not None
        else f"the head differs between ranks after loading: rank(s) {', '.join(map(str, differing))}",
        {"test": "SHA-256 of each rank's head bytes, gathered from every rank", "world_size": h.world,
         "differing_ranks": differing, "digests": h.digests, "head_norms": [round(v, 6) for v in h.norms],
         "head_parameters": h.head_parameters[:8],
         "max_relative_difference": diff if diff is None or math.isfinite(diff) else None},
    )]


def sharded_forward_mismatch(s: ShardedForward | None) -> list[Finding]:
    """The sharded model must compute what the whole one does, within the precision's rounding."""
    if s is None or s.skipped or s.logits_relative_difference is None:
        return []
    worst = max(s.logits_relative_difference, s.head_grad_relative_difference or 0.0)
    if math.isfinite(worst) and worst <= s.tolerance:
        return []
    parts = []
    for what, value in (("logits", s.logits_relative_difference), ("head gradients", s.head_grad_relative_difference)):
        if value is not None and not (math.isfinite(value) and value <= s.tolerance):
            parts.append(f"{what} by {value:.3g}" if math.isfinite(value) else f"{what} (one side missing)")
    return [Finding(
        SHARDED_FORWARD_MISMATCH,
        f"sharded over {s.world} ranks with FSDP2, a {s.layers}-layer copy of the model's config gives other "
        f"results than unsharded on the same {s.examples} examples: {' and '.join(parts)} (relative to the "
        f"largest value; {s.precision} allows {s.tolerance:g})",
        {"test": "max |sharded - unsharded| / max |unsharded| over every rank, same batch and weights seed",
         "world_size": s.world, "layers": s.layers, "examples": s.examples, "precision": s.precision,
         "tolerance": s.tolerance,
         "logits_relative_difference": _finite(s.logits_relative_difference),
         "head_grad_relative_difference": _finite(s.head_grad_relative_difference),
         "head_parameters": s.head_parameters[:8]},
    )]


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def sharding_checks(start: ShardedStart) -> Iterator[tuple]:
    """A launched run's own checks, judged before the command's: the head on every rank, the sharded forward."""
    yield head_differs_across_ranks, start.head
    yield sharded_forward_mismatch, start.forward
