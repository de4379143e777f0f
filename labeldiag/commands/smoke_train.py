"""smoke-train: can a copy of the model overfit one small, fixed, stratified batch?

The batch is drawn from up to SMOKE_POOL_FACTOR x --max-examples rows of DATA (prepare() reads
that many), taking classes in turn, so every class the rows hold is in the batch even when DATA
is sorted by class. The checkpoint is never written: a deep copy trains, in memory.

Under torchrun (WORLD_SIZE > 1) each rank trains on its shard of the one batch (rows r, r+N, ...)
with DistributedDataParallel; per-step loss and accuracy are summed over ranks, so every rank
takes the same early-stopping decision, and DDP's averaged gradients make the run the same
full-batch optimisation as in one process.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from labeldiag import thresholds as T
from labeldiag.commands.common import CommonOptions, finish, prepare, seed_everything
from labeldiag.errors import UsageError
from labeldiag.findings import Finding


def run(opts: CommonOptions, steps: int = 100, lr: float = 1e-4, target_loss: float = 0.05,
        triage: bool = False) -> int:
    if steps < 1:
        raise UsageError(f"--steps must be at least 1, got {steps}")
    if not (math.isfinite(lr) and lr > 0):
        raise UsageError(f"--lr must be a positive number, got {lr}")
    if not (math.isfinite(target_loss) and target_loss > 0):
        raise UsageError(f"--target-loss must be a positive number, got {target_loss}")
    from labeldiag.distributed import from_env, init, local_device, shutdown

    d = from_env()
    if d.active and opts.max_examples < d.world:
        raise UsageError(f"--max-examples {opts.max_examples} is fewer than the {d.world} ranks; each rank needs "
                         "at least one example")
    pool = dataclasses.replace(opts, max_examples=opts.max_examples * T.SMOKE_POOL_FACTOR,
                               device=local_device(d, opts.device), progress=opts.progress and d.main)
    s = prepare(pool, "smoke-train", fresh_head_expected=True)
    init(d, s.runtime.device)
    try:
        return _run(s, opts, d, steps, lr, target_loss, triage)
    finally:
        shutdown(d)


def _run(s, opts: CommonOptions, d, steps: int, lr: float, target_loss: float, triage: bool) -> int:
    import labeldiag.render.smoke_train  # noqa: F401  (registers the report section)
    from labeldiag.checks.tokens import check_tokenizer
    from labeldiag.checks.training import TrainingTrace, check_preflight, check_ranks, check_training
    from labeldiag.distributed import gather, shard
    from labeldiag.measure.training import make_batch, preflight, stratified_rows, training_copy
    from labeldiag.render.smoke_train import plot_training

    report, runtime = s.report, s.runtime
    plot = plot_training if opts.plot_path else None
    report.metrics.update({"device_name": runtime.device_name, "lr": lr, "target_loss": target_loss,
                           "steps_budget": steps})
    if s.gold is None:
        raise UsageError(f"DATA '{opts.data}' has no labels; smoke-train needs labelled examples "
                         "(name the column with --label-field)")
    gold = s.gold.indices
    rows = stratified_rows(gold, opts.max_examples, opts.seed)
    present = np.unique(gold[gold >= 0])
    if not rows.size:
        report.notes.append("training skipped: no example has a label the model knows (see the label findings)")
        return _finish(s, opts, d, plot)
    if present.size == 1:
        report.add(Finding(
            "single-class-batch",
            f"all {int((gold >= 0).sum())} labelled examples read are '{s.names[present[0]]}': fitting one class "
            "proves nothing (predicting it always fits)",
            {"examples": int((gold >= 0).sum()), "class": s.names[present[0]]},
        ))
    if present.size > opts.max_examples:
        report.notes.append(f"the data holds {present.size} classes but --max-examples is {opts.max_examples}: "
                            "not every class is in the batch")
    if d.active and rows.size < d.world:
        raise UsageError(f"only {rows.size} labelled examples for {d.world} ranks; each rank needs at least one")
    stats = s.encoded.stats
    batch_max_id = max(int(s.encoded.ids[i].max()) for i in rows if len(s.encoded.ids[i]))
    if stats.embedding_rows and batch_max_id >= stats.embedding_rows:
        report.add(check_tokenizer(stats))
        report.notes.append("training skipped: token ids beyond the embedding table would crash it")
        return _finish(s, opts, d, plot)
    counts = np.bincount(gold[rows], minlength=s.num_classes)
    report.data.update({"pool_examples": len(gold), "batch_examples": int(rows.size)})
    report.metrics["batch"] = {
        "examples": int(rows.size), "classes": int(np.count_nonzero(counts)),
        "label_counts": {s.names[i] if i < len(s.names) else str(i): int(v) for i, v in enumerate(counts) if v},
        "tokens": int(sum(len(s.encoded.ids[i]) for i in rows))}
    report.metrics["world_size"] = d.world
    if opts.batch_size < rows.size:
        report.notes.append(f"smoke-train trains on one batch of {rows.size} examples (--max-examples); "
                            "--batch-size is not used")
    local = shard(rows, d)
    device = runtime.device

    def fresh_trace(rate: float) -> TrainingTrace:
        return TrainingTrace(steps_budget=steps, target_loss=target_loss, num_classes=s.num_classes,
                             batch_classes=int(np.count_nonzero(counts)), lr=rate,
                             head_fresh=bool(s.loaded.audit.missing_head))

    model = training_copy(s.loaded.model, device)
    batch = make_batch(model, s.encoded, local, gold[local], device, global_rows=int(rows.size))
    trace = fresh_trace(lr)
    first = preflight(model, batch, runtime, trace, d)
    report.add(check_preflight(trace))
    result = _train(model, batch, runtime, trace, d, first, opts, "smoke-train")
    del model
    found = check_training(trace)
    tri = None
    if triage and not trace.fitted:
        tri = _triage(s, opts, d, batch, fresh_trace, lr)
        found = check_training(trace, tri)
    report.add(found)
    if result is not None:
        report.add(check_ranks(result.rank_divergence, d.world))
    speeds = gather(dataclasses.asdict(result.speed), d) if result is not None else []
    report.metrics.update(_metrics(trace, speeds, runtime, first))
    if tri is not None:
        report.metrics["triage"] = tri
    if result is not None and result.rank_divergence is not None:
        report.metrics["ranks_max_relative_difference"] = result.rank_divergence
    return _finish(s, opts, d, plot)


def _train(model, batch, runtime, trace, d, first, opts, title):
    """Train unless it cannot start; None when it could not."""
    from labeldiag.measure.training import train_on_batch
    from labeldiag.render.smoke_train import live_view

    if not trace.trainable:
        trace.skipped = "no parameter is trainable"
    elif not trace.loss_has_grad:
        trace.skipped = "the loss does not depend on any trainable parameter"
    if trace.skipped:
        return None
    with live_view(trace.steps_budget, title, opts.progress and d.main) as on_step:
        return train_on_batch(model, batch, runtime, trace, d, on_step=on_step)


def _triage(s, opts, d, batch, fresh_trace, lr: float) -> list[dict]:
    """Rerun from the original weights changing one thing at a time: head alone, lr / 10, lr x 10, fp32."""
    import torch

    from labeldiag.measure.training import head_parameter_names, preflight, training_copy

    runtime = s.runtime
    variants = [("head only", lr, True, runtime), (f"lr {lr / 10:g}", lr / 10, False, runtime),
                (f"lr {lr * 10:g}", lr * 10, False, runtime)]
    if runtime.precision != "fp32":
        variants.append(("fp32", lr, False, dataclasses.replace(runtime, precision="fp32")))
    out = []
    for name, rate, head_only, rt in variants:
        row = {"variant": name, "lr": rate, "fitted": False, "fit_step": None, "final_loss": None,
               "final_accuracy": None, "steps_run": 0}
        if head_only and not head_parameter_names(s.loaded.model):
            row["skipped"] = "no head found"
            out.append(row)
            continue
        seed_everything(opts.seed)  # every variant starts from the same randomness
        model = training_copy(s.loaded.model, rt.device, head_only=head_only)
        trace = fresh_trace(rate)
        first = preflight(model, batch, rt, trace, d)
        _train(model, batch, rt, trace, d, first, opts, f"triage: {name}")
        row.update({"fitted": trace.fitted, "fit_step": trace.fit_step,
                    "final_loss": trace.final_loss if trace.losses else first[0],
                    "final_accuracy": trace.final_accuracy if trace.losses else first[1],
                    "steps_run": trace.steps_run, "diverged": trace.diverged_step is not None,
                    "skipped": trace.skipped})
        out.append(row)
        del model
        if rt.device.type == "cuda":
            torch.cuda.empty_cache()
    return out


def _metrics(trace, speeds: list[dict], runtime, first: list[float]) -> dict:
    main = speeds[0] if speeds else {}
    total = (lambda k: sum(x[k] for x in speeds) if speeds and all(x.get(k) is not None for x in speeds) else None)
    peaks = [x["peak_memory_bytes"] for x in speeds if x.get("peak_memory_bytes") is not None]
    curve = [{"step": i + 1, "loss": l, "accuracy": a, "grad_norm": g}
             for i, (l, a, g) in enumerate(zip(trace.losses, trace.accuracies, trace.grad_norms))]
    m = {
        "steps_run": trace.steps_run, "fitted": trace.fitted, "fit_step": trace.fit_step,
        "fit_seconds": trace.fit_seconds, "diverged_step": trace.diverged_step,
        "final_loss": trace.final_loss if trace.losses else first[0],
        "final_accuracy": trace.final_accuracy if trace.losses else first[1],
        "initial_loss": trace.initial_loss, "initial_accuracy": first[1], "ln_num_labels": trace.ln_c,
        "train_seconds": main.get("seconds"),
        "steps_per_second": main.get("steps_per_second"),
        "examples_per_second": total("examples_per_second"), "tokens_per_second": total("tokens_per_second"),
        "peak_memory_bytes": max(peaks) if peaks else None, "peak_memory_kind": main.get("peak_memory_kind"),
        "device_name": runtime.device_name, "precision": runtime.precision, "curve": curve,
        "preflight": {"trainable": len(trace.trainable), "frozen": len(trace.frozen),
                      "disconnected": len(trace.disconnected), "loss_at_init": trace.initial_loss,
                      "head_fresh": trace.head_fresh},
    }
    if trace.skipped:
        m["skipped"] = trace.skipped
    if len(speeds) > 1:
        m["ranks"] = speeds
    return m


def _finish(s, opts: CommonOptions, d, plot) -> int:
    if d.main:
        return finish(s, opts, plot)
    return s.report.exit_code(opts.fail_on)  # the same findings on every rank: same exit code
