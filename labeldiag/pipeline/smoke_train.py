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
from typing import Any, Iterator

import numpy as np

from labeldiag import thresholds as T
from labeldiag.pipeline.common import Inputs, head_options_for_data, prepare, seed_everything
from labeldiag.errors import UsageError
from labeldiag.findings import Finding, Report, plain
from labeldiag.options import Options, TrainSettings
from labeldiag.progress import SILENT
from labeldiag.catalogue import LABEL_PERMUTATION
from labeldiag.records import (
    BatchMakeup, HalfPrecisionWeights, InitialLoss, LowerRateRerun, ShardedStart, TokenStats, TrainingSummary,
    TrainingTrace,
)


@dataclasses.dataclass(frozen=True)
class Shortcuts:
    """What doctor shortens in its smoke stage; plain smoke-train takes none (a verdict may then differ:
    a collapse that would only have set in later, a rerun that would have fitted later)."""

    give_up: bool = False  # stop a run that cannot fit in the steps left (measure.training.cannot_reach_target)
    rerun_step_share: float = 1.0  # the lower-rate rerun's share of --steps
    # the pre-flight label-permutation judge (_label_permutation): doctor's check-logits stage already ran it on
    # more examples, and its label-permutation makes this stage moot
    label_check: bool = True
    settled_fit: bool = False  # stop at 100% accuracy held with the loss still falling (measure.training.fit_settled)


def run(inputs: Inputs, opts: Options, settings: TrainSettings, shortcuts: Shortcuts = Shortcuts()) -> Report:
    """The report of this process (under torchrun every rank holds the same findings; rank 0 shows them)."""
    from labeldiag.pipeline.sharding import start as start_sharding
    from labeldiag.distributed import from_env, init, local_device, shutdown
    from labeldiag.load.dispatch import refuse_training

    d = from_env()
    if d.active and opts.max_examples < d.world:
        raise UsageError(f"--max-examples {opts.max_examples} is fewer than the {d.world} ranks; each rank needs "
                         "at least one example")
    pool = dataclasses.replace(opts, max_examples=opts.max_examples * T.SMOKE_POOL_FACTOR,
                               device=local_device(d, opts.device), progress=opts.progress if d.main else SILENT)
    s = prepare(inputs, pool, "smoke-train", fresh_head_expected=True)
    refuse_training(s.loaded.model, "smoke-train")  # a dispatched model cannot be copied or moved
    init(d, s.runtime.device)
    try:
        sharded = start_sharding(s, opts, d)
        if s.task.kind != "single-label":  # the task shape's own plan judges what it measures
            from labeldiag.checks import judge
            from labeldiag.checks.sharding import sharding_checks
            from labeldiag.pipeline import shapes

            s.report.add(judge(sharding_checks(sharded)))
            return shapes.smoke_train(s, opts, settings, d)
        return _run(s, opts, settings, d, shortcuts, sharded)
    finally:
        shutdown(d)


@dataclasses.dataclass
class _Measured:
    """What the single-label run measured, stage by stage; a stage it stopped before stays None."""

    gold: np.ndarray | None  # the class index of every row read (-1: not one of the model's classes); None: no row
    # has a label the model knows, so there is no batch
    tokens_beyond: TokenStats | None = None  # token ids beyond the embedding table: training skipped
    # judged before training, since it decides whether training runs: the trained head's names are permuted
    label_permutation: tuple[Finding, ...] = ()
    batch: BatchMakeup | None = None
    half_precision: HalfPrecisionWeights | None = None  # the caller's weights, before the fp32 training copy
    lora: bool = False  # an adapter trains on a frozen base
    trace: TrainingTrace | None = None
    first: list[float] | None = None  # the pre-flight pass: loss, accuracy, max |logit|, classes predicted
    result: Any = None  # measure.training.RunResult; None when training could not start
    triage: list[dict] | None = None
    rerun: LowerRateRerun | None = None
    speeds: list[dict] = dataclasses.field(default_factory=list)  # each rank's Throughput

    @property
    def trainable(self) -> bool:
        """A batch, and nothing that stops training before it starts."""
        return self.gold is not None and self.tokens_beyond is None and not self.label_permutation


def _run(s, opts: Options, settings: TrainSettings, d, shortcuts: Shortcuts, sharded: ShardedStart) -> Report:
    """The single-label plan: the batch -> what stops training before it starts -> pre-flight, training, triage
    and the lower-rate rerun -> one judging pass over the checks that apply -> the summary."""
    from labeldiag.checks import judge

    settings = _rate_for(s, opts, settings)
    rows = _choose_rows(s, opts, settings, d)
    m = _Measured(gold=None) if rows is None else _before_training(s, opts, rows, d, shortcuts)
    if m.trainable:
        _train_and_rerun(s, opts, settings, d, rows, shortcuts, m)
    s.report.add(_say_stopped(judge(_checks(sharded, m, settings, s.names, d.world)), m, settings.steps))
    if m.trace is not None:
        s.report.notes += _outcome(m.trace, m.result, settings.steps)
        s.report.attach(_summary(m, settings, s.runtime))  # report.training; its keys fill report.metrics
    return s.report


def _checks(sharded: ShardedStart, m: _Measured, settings: TrainSettings, names: list[str],
            world: int) -> Iterator[tuple]:
    """The checks that apply to what the run measured, each with the records it judges, in reading order."""
    from labeldiag.checks.learning_rate import learning_rate_too_high
    from labeldiag.checks.logits import batch_single_class
    from labeldiag.checks.parameters import loss_at_init, nothing_trainable, parameters_disconnected, parameters_frozen
    from labeldiag.checks.precision import half_precision_weights
    from labeldiag.checks.sharding import sharding_checks
    from labeldiag.checks.tokens import check_tokenizer
    from labeldiag.checks.training import check_ranks, training_checks

    yield from sharding_checks(sharded)
    if m.gold is None:
        return
    yield batch_single_class, m.gold, names
    if m.tokens_beyond is not None:
        yield check_tokenizer, m.tokens_beyond
    yield list, m.label_permutation
    t = m.trace
    if t is None:
        return
    yield half_precision_weights, m.half_precision
    yield nothing_trainable, t.census
    if not m.lora:  # the frozen base is LoRA's design, said in the header, not a frozen-parameters finding
        yield parameters_frozen, t.census
    yield parameters_disconnected, t.census
    yield loss_at_init, InitialLoss(t.initial_loss, t.num_classes, t.head_fresh)
    yield from training_checks(t, settings, m.triage)
    yield learning_rate_too_high, None, m.rerun  # judged from the rerun at lr / 10, not from update sizes
    if m.result is not None:
        yield check_ranks, m.result.rank_divergence, world


def _rate_for(s, opts: Options, settings: TrainSettings) -> TrainSettings:
    """Adapters learn at about 10x the full fine-tuning rate: LoRA's default lr unless --lr was given."""
    from labeldiag.measure.lora import plan_for

    if plan_for(s.loaded.model, opts.lora).rank and not settings.lr_given:
        return dataclasses.replace(settings, lr=T.LORA_DEFAULT_LR)
    return settings


def _choose_rows(s, opts: Options, settings: TrainSettings, d) -> np.ndarray | None:
    """The batch's rows, classes taken in turn; None when no example has a label the model knows (a note
    says so). What it leaves out, or cannot hold, is said in the notes."""
    from labeldiag.distributed import check_batch_split
    from labeldiag.measure.training import stratified_rows

    report = s.report
    report.metrics.update({"device_name": s.runtime.device_name, "lr": settings.lr,
                           "target_loss": settings.target_loss, "steps_budget": settings.steps})
    if s.gold is None:
        raise UsageError(f"DATA '{report.data.get('path')}' has no labels; smoke-train needs labelled examples "
                         "(name the column with --label-field)")
    gold = s.gold.indices
    rows = stratified_rows(gold, opts.max_examples, opts.seed)
    present = np.unique(gold[gold >= 0])
    if not rows.size:
        report.notes.append("training skipped: no example has a label the model knows (see the label findings)"
                            + (f"; attach a head that fits them:{head_options_for_data(s)}"
                               if head_options_for_data(s) else ""))
        return None
    left_out = int((gold < 0).sum())
    if left_out:  # never a silent drop: the label findings say why, this says what it did to the batch
        report.notes.append(f"{left_out} of {len(gold)} examples have a label outside the model's {s.num_classes} "
                            "classes and were left out of the batch (see the label findings)"
                            + (f"; to train on every class:{head_options_for_data(s)}"
                               if head_options_for_data(s) else ""))
    if present.size > opts.max_examples:
        report.notes.append(f"the data holds {present.size} classes but --max-examples is {opts.max_examples}: "
                            "not every class is in the batch")
    if d.active and rows.size < d.world:
        raise UsageError(f"only {rows.size} labelled examples for {d.world} ranks; each rank needs at least one")
    check_batch_split(int(rows.size), d)
    return rows


def _before_training(s, opts: Options, rows: np.ndarray, d, shortcuts: Shortcuts) -> _Measured:
    """What stops training before it starts: token ids the embedding table cannot hold, or (a trained head)
    label names permuted; otherwise the batch's make-up goes into the report."""
    gold, report = s.gold.indices, s.report
    m = _Measured(gold=gold)
    stats = s.encoded.stats
    batch_max_id = max(int(s.encoded.ids[i].max()) for i in rows if len(s.encoded.ids[i]))
    if stats.embedding_rows and batch_max_id >= stats.embedding_rows:
        report.notes.append("training skipped: token ids beyond the embedding table would crash it")
        m.tokens_beyond = stats
        return m
    counts = np.bincount(gold[rows], minlength=s.num_classes)
    report.data.update({"pool_examples": len(gold), "batch_examples": int(rows.size)})
    m.batch = BatchMakeup(examples=int(rows.size), classes=int(np.count_nonzero(counts)),
                          label_counts=tuple((str(s.names[i]) if i < len(s.names) else str(i), int(v))
                                             for i, v in enumerate(counts) if v),
                          tokens=int(sum(len(s.encoded.ids[i]) for i in rows)), world_size=d.world)
    report.attach(m.batch)  # report.batch
    if opts.batch_size < rows.size:
        report.notes.append(f"smoke-train trains on one batch of {rows.size} examples (--max-examples); "
                            "--batch-size is not used")
    if shortcuts.label_check and not s.loaded.audit.missing_head:
        m.label_permutation = tuple(_label_permutation(s, opts, gold))
    return m


def _train_and_rerun(s, opts: Options, settings: TrainSettings, d, rows: np.ndarray, shortcuts: Shortcuts,
                     m: _Measured) -> None:
    """Pre-flight pass, training, --triage when it did not fit, the rerun at lr / 10 when it went wrong, and
    each rank's speed: filled into `m`."""
    from labeldiag.distributed import gather, shard
    from labeldiag.measure.lora import announce, lora_summary, plan_for
    from labeldiag.measure.precision import measure_half_precision
    from labeldiag.measure.training import make_batch, preflight, training_copy

    report, runtime, gold = s.report, s.runtime, m.gold
    lora = plan_for(s.loaded.model, opts.lora)
    local = shard(rows, d)

    def fresh_trace() -> TrainingTrace:
        return TrainingTrace(num_classes=s.num_classes, batch_classes=m.batch.classes,
                             head_fresh=bool(s.loaded.audit.missing_head))

    # before the copy: training_copy casts to fp32, which hides half-precision weights
    m.half_precision = measure_half_precision(s.loaded.model, settings.lr)
    with (opts.progress if d.main else SILENT).phase("copying the model and a pre-flight forward/backward"):
        model = training_copy(s.loaded.model, runtime.device, d=d, lora=lora.rank)
        batch = make_batch(model, s.encoded, local, gold[local], runtime.device, global_rows=int(rows.size))
        m.trace = fresh_trace()
        m.first = preflight(model, batch, runtime, m.trace, d)
    m.lora = bool(lora.rank)
    if lora.rank:
        announce(report, lora_summary(model, lora))
        if not settings.lr_given:
            report.notes.append(f"lr {settings.lr:g}: LoRA's default, about 10x full fine-tuning's (--lr sets another)")
    m.result = _train(model, batch, runtime, m.trace, settings, d, opts, "smoke-train", shortcuts)
    del model
    if settings.triage and not m.trace.fitted:
        m.triage = _triage(s, opts, settings, d, batch, fresh_trace)
    m.rerun = _lower_rate_rerun(s, opts, settings, d, batch, fresh_trace, m.trace, m.triage, shortcuts)
    m.speeds = gather(dataclasses.asdict(m.result.speed), d) if m.result is not None else []


def _outcome(trace: TrainingTrace, result, budget: int) -> list[str]:
    notes = [f"fitted at step {trace.fit_step}: {trace.fit_rule}"] if trace.fitted else []
    stopped = result.stopped_early if result is not None else None
    if stopped:
        notes.append(f"training stopped at step {trace.steps_run} of {budget}: {stopped}")
    return notes


def _summary(m: _Measured, settings: TrainSettings, runtime) -> TrainingSummary:
    """The run as the report carries it: plain numbers (NaN/inf as None)."""
    metrics = {"lr": settings.lr, "target_loss": settings.target_loss,
               **_metrics(m.trace, m.speeds, runtime, m.first)}
    if m.triage is not None:
        metrics["triage"] = m.triage
    if m.result is not None and m.result.rank_divergence is not None:
        metrics["ranks_max_relative_difference"] = m.result.rank_divergence
    return dataclasses.replace(TrainingSummary.from_metrics(plain(metrics)), steps_budget=settings.steps,
                               stopped_early=m.result.stopped_early if m.result is not None else None)


def _label_permutation(s, opts: Options, gold: np.ndarray) -> list:
    """Pre-flight on a trained head: check-logits' own judge on up to SMOKE_LABEL_CHECK_EXAMPLES labelled
    rows. A label-permutation is reported instead of training: fitting would only relearn the names."""
    from labeldiag.checks.logits import check_predictions
    from labeldiag.measure.encode import subset
    from labeldiag.measure.forward import run_forward

    labelled = np.flatnonzero(gold >= 0)
    rows = np.sort(np.random.default_rng(opts.seed).permutation(labelled)[:T.SMOKE_LABEL_CHECK_EXAMPLES])
    model = s.loaded.model.to(s.runtime.device).eval()
    with opts.progress.phase(f"pre-flight: the label mapping on {rows.size} examples"):
        logits = run_forward(model, subset(s.encoded, rows), s.runtime, opts.batch_size,
                             capture_features=False).logits
    finite = np.isfinite(logits).all(axis=1)
    permuted = [f for f in check_predictions(logits[finite], gold[rows][finite], s.names)
                if f.code == LABEL_PERMUTATION]
    if permuted:
        s.report.notes.append("training skipped: the trained head predicts the labels under other names (see "
                              "label-permutation); fitting the batch would only relearn the names, so fix "
                              "id2label first")
    return permuted


def _say_stopped(findings: list, m: _Measured, budget: int) -> list:
    """cannot-overfit of a run the give-up rule ended: the message and evidence say why and state the rule."""
    from labeldiag.catalogue import CANNOT_OVERFIT
    from labeldiag.measure.training import GIVE_UP_RULE

    stopped = m.result.stopped_early if m.result is not None else None
    for f in findings if stopped else []:
        if f.code == CANNOT_OVERFIT:
            f.message += f"; stopped at step {m.trace.steps_run} of {budget}: {stopped}"
            f.evidence.update({"stopped_early": stopped, "steps_budget": budget, "give_up_rule": GIVE_UP_RULE})
    return findings


def _train(model, batch, runtime, trace, settings, d, opts, title, shortcuts: Shortcuts = Shortcuts()):
    """Train unless it cannot start; None when it could not. Doctor's shortcuts: stop once the run cannot fit
    in the steps left (result.stopped_early says why), or once its fit is settled (the fit rule says so)."""
    from labeldiag.checks.training import fit_rule
    from labeldiag.measure.training import fit_settled, give_up_rule, train_on_batch

    if not trace.trainable:
        trace.skipped = "no parameter is trainable"
    elif not trace.loss_has_grad:
        trace.skipped = "the loss does not depend on any trainable parameter"
    if trace.skipped:
        return None
    with (opts.progress if d.main else SILENT).training(settings.steps, title) as on_step:
        return train_on_batch(model, batch, runtime, trace, settings, d,
                              lambda t: fit_rule(t, settings.target_loss)
                              or (fit_settled(t.losses, t.accuracies) if shortcuts.settled_fit else None),
                              on_step=on_step, give_up=give_up_rule(settings.target_loss) if shortcuts.give_up else None)


def _lower_rate_rerun(s, opts, settings: TrainSettings, d, batch, fresh_trace, trace, tri, shortcuts: Shortcuts):
    """When training went wrong at --lr: the same run at lr / 10 (triage's row when triage ran); doctor's
    shortcuts give it a share of --steps and the give-up rule."""
    from labeldiag.measure.learning_rate import went_wrong
    from labeldiag.measure.lora import plan_for
    from labeldiag.measure.training import preflight, training_copy
    problem = went_wrong(trace, settings.lr)
    if problem is None:
        return None
    rate = settings.lr / T.LR_RERUN_FACTOR
    row = next((r for r in tri or [] if r["variant"] == f"lr {rate:g}"), None)
    if row is None:
        seed_everything(opts.seed)
        model = training_copy(s.loaded.model, s.runtime.device, d=d, lora=plan_for(s.loaded.model, opts.lora).rank)
        rerun = fresh_trace()
        first = preflight(model, batch, s.runtime, rerun, d)
        steps = max(1, round(settings.steps * shortcuts.rerun_step_share))
        result = _train(model, batch, s.runtime, rerun, dataclasses.replace(settings, lr=rate, steps=steps), d, opts,
                        f"lr {rate:g}", shortcuts)
        del model
        row = {"fitted": rerun.fitted, "fit_step": rerun.fit_step, "steps_run": rerun.steps_run,
               "final_loss": rerun.final_loss if rerun.losses else first[0]}
        stopped = result.stopped_early if result is not None else None
        s.report.notes.append(f"training at lr {settings.lr:g} {problem}; reran at lr {rate:g}"
                              + (f" for at most {steps} steps" if steps < settings.steps else "") + ": "
                              + (f"fitted at step {rerun.fit_step}" if rerun.fitted else "not fitted either")
                              + (f" (stopped at step {rerun.steps_run}: {stopped})" if stopped else ""))
    return LowerRateRerun(lr=settings.lr, rerun_lr=rate, problem=problem, final_loss=trace.final_loss,
                          rerun_fitted=bool(row["fitted"]), rerun_fit_step=row["fit_step"],
                          rerun_final_loss=row["final_loss"], rerun_steps=row["steps_run"])


def _triage(s, opts, settings: TrainSettings, d, batch, fresh_trace) -> list[dict]:
    """Rerun from the original weights changing one thing at a time: head alone, lr / 10, lr x 10, fp32."""
    import torch

    from labeldiag.measure.lora import plan_for
    from labeldiag.measure.parameters import head_parameter_names
    from labeldiag.measure.training import preflight, training_copy

    runtime, lr = s.runtime, settings.lr
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
        model = training_copy(s.loaded.model, rt.device, head_only=head_only, d=d,
                              lora=plan_for(s.loaded.model, opts.lora).rank)
        trace = fresh_trace()
        first = preflight(model, batch, rt, trace, d)
        _train(model, batch, rt, trace, dataclasses.replace(settings, lr=rate), d, opts, f"triage: {name}")
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
        "steps_run": trace.steps_run, "fitted": trace.fitted, "fit_step": trace.fit_step, "fit_rule": trace.fit_rule,
        "classification_loss_source": trace.classification_source,
        "final_classification_loss": trace.classification_losses[-1] if trace.classification_losses else None,
        "fit_seconds": trace.fit_seconds, "diverged_step": trace.diverged_step,
        "final_loss": trace.final_loss if trace.losses else first[0],
        "final_accuracy": trace.final_accuracy if trace.losses else first[1],
        "initial_loss": trace.initial_loss, "initial_accuracy": first[1], "ln_num_labels": trace.ln_c,
        "train_seconds": main.get("seconds"),
        "steps_per_second": main.get("steps_per_second"),
        "examples_per_second": total("examples_per_second"), "tokens_per_second": total("tokens_per_second"),
        "peak_memory_bytes": max(peaks) if peaks else None, "peak_memory_kind": main.get("peak_memory_kind"),
        "device_name": runtime.device_name, "precision": runtime.precision, "curve": curve,
        "preflight": {"trainable": len(trace.trainable), "frozen": len(trace.census.frozen) if trace.census else 0,
                      "disconnected": len(trace.disconnected), "loss_at_init": trace.initial_loss,
                      "head_fresh": trace.head_fresh},
    }
    if trace.skipped:
        m["skipped"] = trace.skipped
    if len(speeds) > 1:
        m["ranks"] = speeds
    return m
