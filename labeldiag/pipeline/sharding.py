"""What smoke-train and grad-flow do first under torchrun / accelerate launch: pick DDP or FSDP2, say which
in the header, and run the checks only a sharded run needs (the head on every rank, the sharded forward)."""
from __future__ import annotations

import numpy as np

from labeldiag import thresholds as T
from labeldiag.distributed import Dist, choose_shard
from labeldiag.progress import SILENT
from labeldiag.records import ShardedAgreement, ShardedStart, ShardMode


def start(s, opts, d: Dist) -> ShardedStart:
    """Set d.shard (UsageError for --shard fsdp without a launcher), say the mode in the header, and measure
    what checks.sharding.sharding_checks judges (nothing in one process)."""
    from labeldiag.measure.shard_agreement import head_across_ranks, sharded_forward

    model = s.loaded.model
    parameters = sum(p.numel() for p in model.parameters())
    d.shard, why = choose_shard(d, opts.shard, parameters, s.runtime.device)
    if not d.active:
        return ShardedStart()
    label = "FSDP2 (fully_shard per block, then the root)" if d.shard == "fsdp" else "DDP (a full copy per rank)"
    s.report.device = f"{s.report.device}, {label} over {d.world} ranks"
    s.report.attach(ShardMode(d.shard, d.world, why, _timeout()))
    s.report.notes.append(f"sharding: {d.shard} over {d.world} ranks ({why}); a rank that dies or stalls ends the "
                          f"run on every rank within {_timeout():g} s (LABELDIAG_DIST_TIMEOUT)")
    with (opts.progress if d.main else SILENT).phase("comparing the head across ranks"):
        head = head_across_ranks(model, d)
    if d.shard != "fsdp":
        return ShardedStart(head)
    rows, labels = _first_labelled(s)
    if rows is None:
        s.report.notes.append("sharded-forward check skipped: no labelled example fits the model")
        return ShardedStart(head)
    with (opts.progress if d.main else SILENT).phase("a 2-layer copy, whole and sharded, on the same batch"):
        check = sharded_forward(model, s.encoded, rows, labels, s.runtime, d, opts.seed)
    if check.skipped:
        s.report.notes.append(f"sharded-forward check skipped: {check.skipped}")
    else:
        s.report.attach(ShardedAgreement(check.layers, check.examples, check.tolerance,
                                         check.logits_relative_difference, check.head_grad_relative_difference))
    return ShardedStart(head, check)


def _timeout() -> float:
    from labeldiag.distributed import collective_timeout

    return collective_timeout()


def _first_labelled(s) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The first few examples with a label inside the head and token ids inside the embedding table."""
    if s.gold is None:
        return None, None
    rows_limit = s.encoded.stats.embedding_rows
    ok = [i for i in np.flatnonzero((s.gold.indices >= 0) & (s.gold.indices < s.num_classes))
          if len(s.encoded.ids[i]) and (rows_limit is None or int(s.encoded.ids[i].max()) < rows_limit)]
    if not ok:
        return None, None
    rows = np.asarray(ok[:T.SHARDED_FORWARD_EXAMPLES], dtype=np.int64)
    return rows, s.gold.indices[rows].astype(np.int64)
