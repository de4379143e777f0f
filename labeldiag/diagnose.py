"""doctor: every stage from cheap to costly on one loaded model, then one ranked diagnosis.

Stages: loading audit and static checks with check-logits (label map, problem type, tokenizer,
predictions), grad-flow (one forward/backward), a short smoke-train. A stage that an earlier error
makes moot is skipped, and the report says why. The model is loaded once and shared by the stages;
DATA is read once: each stage builds its examples, with its own options, from the first rows of that read.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any

from labeldiag import thresholds as T
from labeldiag.catalogue import CATALOGUE, COMMANDS
from labeldiag.findings import Report

# doctor's smoke-train: a small batch fits quickly on a healthy model (early stop), keeping doctor
# within a few times check-logits alone
SMOKE_EXAMPLES = 16
GRAD_FLOW_EXAMPLES = 32


def doctor(model: Any, data: Any, *, tokenizer: Any = None, **options: Any) -> Report:
    """All stages, one ranked diagnosis in `report.diagnosis`; options as for check_logits, plus lr/steps."""
    from labeldiag import options as opt
    from labeldiag.checks.diagnosis import rank_findings
    from labeldiag.pipeline import check_logits, grad_flow, smoke_train
    from labeldiag.pipeline.common import Inputs, seed_everything
    from labeldiag.env import environment
    from labeldiag.isolation import isolated
    from labeldiag.load import objects
    from labeldiag.records import RUN_RECORDS, DoctorRun, FlowGlance, StageRun, TrainingGlance

    started = time.perf_counter()
    steps, lr = options.pop("steps", 100), options.pop("lr", None)
    opts, _ = opt.build("doctor", options)
    train = opt.validate_settings(opt.TrainSettings(steps=steps, lr=lr if lr is not None else 1e-4, lr_given=lr is not None))
    flow = opt.validate_settings(opt.GradFlowSettings(lr=lr if lr is not None else 2e-5))
    report = Report(command="doctor")
    stages: list[StageRun] = []
    # DATA is read once: each stage builds its examples from the first rows it reads, with its own options
    source = objects.DataSource(data, opts.allow_pickle)
    with isolated(model):
        seed_everything(opts.seed)  # a fresh head is drawn here: the same one on every run
        with opts.progress.phase(f"reading {objects.describe(data)}"):
            examples = source.examples(opts)
        loaded = objects.load(model, tokenizer, opts, need_tokenizer=objects.needs_tokenizer(examples, tokenizer, opts))

    def stage(name: str, runner: Any, stage_opts: Any, settings: Any, read: Any = None,
              shortened: tuple[str, ...] | None = None) -> Report:
        """`read`: the examples built above, for the stage that reads DATA with doctor's own options."""
        inputs = Inputs(model=loaded, data=source, tokenizer=tokenizer, examples=read)
        t0 = time.perf_counter()
        with isolated(loaded.model):
            out = runner(inputs, stage_opts, settings)
        stages.append(StageRun(name, True, round(time.perf_counter() - t0, 3),
                               tuple(f.code for f in out.sorted_findings()), shortened=shortened))
        return out

    first = stage("check-logits", check_logits.run, opts, None, examples)
    report.model, report.data, report.device = first.model, first.data, first.device
    report.metrics.update(first.metrics)
    report.logits = first.logits  # the typed views of check-logits' keys just merged
    for kind, _ in RUN_RECORDS:
        setattr(report, kind.report_field, getattr(first, kind.report_field))
    reports = [first]
    found = {f.code for f in first.findings if f.severity == "error"}
    moot = moot_reason(found, "grad-flow")
    if first.data.get("labelled") is False:
        moot = moot or "DATA has no labels"
    flow_glance = training_glance = None
    if moot:
        stages += [StageRun("grad-flow", False, skipped=moot), StageRun("smoke-train", False, skipped=moot)]
    else:
        small = dataclasses.replace(opts, max_examples=min(opts.max_examples, GRAD_FLOW_EXAMPLES))
        second = stage("grad-flow", grad_flow.run, small, flow)
        reports.append(second)
        flow_glance = FlowGlance.of(second.grad_flow)
        found |= {f.code for f in second.findings if f.severity == "error"}
        moot = moot_reason(found, "smoke-train")
        if moot:
            stages.append(StageRun("smoke-train", False, skipped=moot))
        else:
            batch, shortened = _smoke_batch(opts, first.token_stats.max_length if first.token_stats else None, train,
                                            first.model.get("task") in (None, "single-label"))
            shortcuts = smoke_train.Shortcuts(give_up=True, rerun_step_share=T.DOCTOR_RERUN_STEP_SHARE,
                                              label_check=False, settled_fit=True)
            third = stage("smoke-train", lambda i, o, t: smoke_train.run(i, o, t, shortcuts), batch, train,
                          shortened=tuple(shortened))
            report.notes.append("smoke-train stage: " + "; ".join(shortened))
            reports.append(third)
            training_glance = TrainingGlance.of(third.training)
    seen: set[str] = set()
    for r in reports:  # the first stage that reports a code speaks for it
        for f in r.sorted_findings():
            if f.code not in seen:
                seen.add(f.code)
                report.add(f)
    report.notes.extend(first.notes)
    report.notes.extend(f"{run.name} skipped: {run.skipped}" for run in stages if not run.ran)
    report.attach(DoctorRun(tuple(stages), flow_glance, training_glance))  # report.doctor; metrics' keys
    report.diagnosis = rank_findings(report.findings)
    report.environment = environment()
    report.elapsed_s = time.perf_counter() - started
    return report


def _smoke_batch(opts: Any, max_length: int | None, train: Any, single_label: bool) -> tuple[Any, list[str]]:
    """The smoke stage's options (SMOKE_EXAMPLES examples cut to DOCTOR_SMOKE_MAX_LENGTH tokens) and what
    doctor shortened, in words for the header (the run shortcuts apply to single-label training only)."""
    cut = T.DOCTOR_SMOKE_MAX_LENGTH if max_length and max_length > T.DOCTOR_SMOKE_MAX_LENGTH else None
    examples = min(opts.max_examples, SMOKE_EXAMPLES)
    batch = dataclasses.replace(opts, max_examples=examples, max_length=cut or opts.max_length)
    rerun = max(1, round(train.steps * T.DOCTOR_RERUN_STEP_SHARE))
    inputs = f"{examples} examples" + (f" cut to {cut} tokens (check-logits: {max_length})" if cut else "")
    if not single_label:
        return batch, [inputs]
    return batch, [inputs,
                   # the rule itself is in cannot-overfit's evidence when it stops a run
                   "a run stops once it cannot reach --target-loss in the steps left",
                   f"or once its fit is settled (100% accuracy for {T.SMOKE_SETTLED_FIT_STEPS} steps)",
                   f"a lower-rate rerun gets at most {rerun} of {train.steps} steps",
                   "no second label-mapping pre-flight (check-logits judged it)"]


def moot_reason(errors: set[str], stage: str) -> str | None:
    """Why `stage` measures nothing more after these error codes (the catalogue's `moot`); None: it runs."""
    moots = [CATALOGUE[code].moot for code in errors]
    # doctor's stages are the commands, cheap to costly: a moot stage makes every later one moot too
    reasons = sorted((moot.precedence, moot.reason) for moot in moots
                     if moot is not None and COMMANDS.index(moot.stage) <= COMMANDS.index(stage))
    return reasons[0][1] if reasons else None
