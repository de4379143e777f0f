"""LabelDiagCallback: labeldiag's checks inside a transformers Trainer run.

At train begin: label map, labels of the first batch against the model's classes and loss type,
the head's values, and one probe step on that batch (loss at init, the first AdamW step's size at the
run's learning rate, which trainable parameters get a gradient under checkpointing), and whether the
optimizer holds every trainable parameter. At each evaluation: the check-logits verdicts on the
evaluation's own predictions (captured by a forward hook while the Trainer evaluates, so there is no
second pass over the evaluation set; the callback's own probe is never captured), written into the
Trainer's logs as `<prefix>_labeldiag_*` numbers and shown as a short summary. At each training log:
the logged loss against the cross-entropy of the same micro-batches' logits.

In a multi-process run (torchrun, accelerate launch, DeepSpeed: a torch.distributed process group of
more than one rank) every rank captures its share of the evaluation; rank 0 gathers them, judges once and
alone prints, logs and keeps Reports, and every rank gets rank 0's log numbers and stops at the same
step. Where DeepSpeed owns the gradients (ZeRO partitions them, `param.grad` stays None) the probe step
measures the loss only and the report says the gradient checks were not made.
"""
from __future__ import annotations

import inspect
import itertools
import logging
import math
import time
from typing import Any

from transformers import TrainerCallback

from labeldiag.distributed import gather, gather_to_main, joined
from labeldiag.findings import Report
from labeldiag.measure.train_probe import TrainingLosses
from labeldiag.records import HeadStatistics, OptimizerCoverage

SEVERITY_LIMIT = {"error": 0, "warning": 1}
logger = logging.getLogger("labeldiag")


class LabelDiagCallback(TrainerCallback):
    """Add to a Trainer: `Trainer(..., callbacks=[LabelDiagCallback()])`.

    `fail_on="error"` (or "warning") stops training when a finding of that severity appears;
    the default None never stops, and a stop is logged (logger "labeldiag") and noted in the report.
    `verbose=False` silences the per-evaluation summary. Every Report made is kept in `.reports`, in
    order: train begin first, then one per evaluation, and one for the training log where the logged
    loss is found off by the accumulation factor. In a run of several ranks, rank 0 alone judges, prints and
    keeps Reports (the other ranks' `.reports` stay empty), and every rank stops at the same step.
    """

    def __init__(self, fail_on: str | None = None, verbose: bool = True):
        if fail_on not in (None, "never", "error", "warning"):
            from labeldiag.errors import UsageError

            raise UsageError(f"fail_on must be None, 'error' or 'warning', got {fail_on!r}")
        self.fail_on = None if fail_on == "never" else fail_on
        self.verbose = verbose
        self.reports: list[Report] = []
        self.overhead_seconds = 0.0  # time spent in this callback (capture + verdicts), for the benchmark
        self._captured: list[tuple[Any, Any]] = []
        self._training_losses = TrainingLosses()
        self._loss_scale_reported = False
        self._probing = False  # the callback's own forward passes are not the Trainer's
        self._training = False  # between train begin and train end: training forwards feed the loss check
        self._evaluating = False  # inside the Trainer's evaluation loop (see _bracket_evaluations)
        self._evaluated = False  # an evaluation loop ended on this rank and its log entry is still to come
        self._bracketed: Any = None  # the Trainer whose evaluation loop tells when an evaluation runs
        self._handles: list[Any] = []
        self._hooked: Any = None

    # --- capture the evaluation's predictions -----------------------------------------------------

    def _hook(self, model: Any) -> None:
        if model is None or self._hooked is model:
            return
        self._unhook()
        pending: dict[str, Any] = {}

        def before(module, args, kwargs):
            pending["labels"] = kwargs.get("labels")

        def after(module, args, kwargs, output):
            labels = pending.pop("labels", None)
            if self._probing:
                return
            t0 = time.perf_counter()
            logits = getattr(output, "logits", None)
            if logits is None and isinstance(output, dict):
                logits = output.get("logits")
            if module.training:
                if self._training:
                    self._training_losses.add(logits, labels)
            elif (self._evaluating or self._bracketed is None) and logits is not None and logits.dim() in (2, 3):
                self._captured.append((logits.detach().float().cpu(),
                                       labels.detach().cpu() if labels is not None else None))
            self.overhead_seconds += time.perf_counter() - t0

        self._handles = [model.register_forward_pre_hook(before, with_kwargs=True),
                         model.register_forward_hook(after, with_kwargs=True)]
        self._hooked = model

    def _unhook(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles, self._hooked = [], None

    def _find_trainer(self) -> Any:
        """The Trainer whose callback handler is calling this callback, or None."""
        frame = inspect.currentframe()
        for _ in range(12):
            frame = frame.f_back if frame is not None else None
            trainer = frame.f_locals.get("self") if frame is not None else None
            handler = getattr(trainer, "callback_handler", None)
            if handler is not None and self in handler.callbacks:
                return trainer
        return None

    def _move_to_front(self, trainer: Any) -> None:
        """Run before the reporting callbacks (TensorBoard, W&B), so they see this callback's metrics."""
        if trainer is not None:
            trainer.callback_handler.callbacks.remove(self)
            trainer.callback_handler.callbacks.insert(0, self)

    def _bracket_evaluations(self, trainer: Any) -> None:
        """Capture only inside the Trainer's evaluation loop, from an empty list: the train-begin probe, the
        user's own forward passes and a hook placed mid-evaluation never mix into an evaluation's verdict.
        Without a Trainer to bracket, every eval-mode forward outside the callback's probe is captured."""
        loop = getattr(trainer, "evaluation_loop", None)
        if trainer is None or self._bracketed is trainer or not callable(loop):
            return

        def evaluation_loop(*args: Any, **kwargs: Any) -> Any:
            self._captured, self._evaluating = [], True
            try:
                output = loop(*args, **kwargs)
            finally:
                self._evaluating = False
            t0 = time.perf_counter()
            self._captured = gathered_evaluation(self._captured, getattr(output, "num_samples", None))
            self._evaluated = True
            self.overhead_seconds += time.perf_counter() - t0
            return output

        trainer.evaluation_loop = evaluation_loop
        self._bracketed = trainer

    # --- events -----------------------------------------------------------------------------------

    def on_init_end(self, args, state, control, model=None, **kwargs):
        self._bracket_evaluations(self._find_trainer())
        self._hook(model)

    def on_train_begin(self, args, state, control, model=None, optimizer=None, train_dataloader=None, **kwargs):
        t0 = time.perf_counter()
        trainer = self._find_trainer()
        self._move_to_front(trainer)
        self._bracket_evaluations(trainer)
        self._hook(model)
        self._captured, self._training_losses = [], TrainingLosses()
        self._probing, self._training = True, True
        try:  # on every rank: under FSDP or ZeRO-3 the probe's forward gathers parameters from all of them
            report = train_begin_report(model, optimizer, train_dataloader, first_step=state.global_step == 0,
                                        learning_rate=float(getattr(args, "learning_rate", 0.0) or 0.0),
                                        backward=int(getattr(args, "world_size", 1) or 1) == 1,
                                        deepspeed=deepspeed_engaged(args, model, optimizer))
        finally:
            self._probing = False
        self.overhead_seconds += time.perf_counter() - t0
        return self._conclude(report if joined().main else None, control, "train begin", state)

    def on_prediction_step(self, args, state, control, model=None, **kwargs):
        self._hook(model)

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        if logs and "loss" in logs:
            return self._judge_training_log(args, state, control, logs)
        evaluation_log = any(k.endswith(("_loss", "_runtime")) for k in logs or {})
        if not logs or not (self._captured or self._evaluated) or not evaluation_log:
            return None
        t0 = time.perf_counter()
        self._evaluated = False
        prefix = next((k.split("_", 1)[0] for k in logs if k.endswith("_runtime")), "eval")
        report = self._judge_evaluation(model) if joined().main else None  # the gathered evaluation, once
        control = self._conclude(report, control, f"evaluation at step {state.global_step}", state,
                                 logs=logs, prefix=prefix)
        self.overhead_seconds += time.perf_counter() - t0
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self._training = False
        if self._bracketed is None:  # unbracketed, the hook would capture the user's own forwards
            self._unhook()

    # --- verdicts ---------------------------------------------------------------------------------

    def _judge_training_log(self, args, state, control, logs) -> Any:
        """The logged training loss against our cross-entropy of the same micro-batches; reported once."""
        from labeldiag.checks.training_run import logged_loss_scale_mismatch

        losses, self._training_losses = self._training_losses, TrainingLosses()
        logged = logs.get("loss")  # the mean over every rank's loss, the same number on each
        if (not isinstance(logged, (int, float)) or not math.isfinite(logged)
                or float(getattr(args, "label_smoothing_factor", 0.0) or 0.0) > 0):
            return None
        d = joined()
        if d.active:  # every rank's micro-batches, as the logged loss averages them
            shares = gather_to_main(([float(v) for v in losses.values], [int(c) for c in losses.counts]), d)
            losses = TrainingLosses([v for share in shares or [] for v in share[0]],
                                    [c for share in shares or [] for c in share[1]])
        report = None
        if d.main and not self._loss_scale_reported:
            found = logged_loss_scale_mismatch(losses.record(float(logged),
                                                             int(getattr(args, "gradient_accumulation_steps", 1))))
            if found:
                self._loss_scale_reported = True
                report = Report(command="callback")
                report.add(found)
        if report is None and not d.active:
            return None
        return self._conclude(report, control, f"training log at step {state.global_step}", state)

    def _judge_evaluation(self, model: Any) -> Report | None:
        import torch

        from labeldiag.checks.predictions import judge_predictions

        captured, self._captured = self._captured, []
        if not captured:
            return None
        if captured[-1][0].dim() == 3:  # a token classifier (issue 22)
            return _judge_token_batches([c for c in captured if c[0].dim() == 3], model)
        captured = [c for c in captured if c[0].dim() == 2]
        widths = {x.shape[1] for x, _ in captured}
        logits = torch.cat([x for x, _ in captured]) if len(widths) == 1 else captured[-1][0]
        labels = None
        # one class index or target per example, or multi-hot rows shaped like the logits (issue 19)
        if all(y is not None and (y.dim() == 1 or y.shape == x.shape) for x, y in captured) and len(widths) == 1:
            labels = torch.cat([y for _, y in captured])
        config = getattr(model, "config", None)
        return judge_predictions(logits, labels, getattr(config, "id2label", None), command="callback")

    def _conclude(self, report: Report | None, control: Any, when: str, state: Any = None,
                  logs: dict | None = None, prefix: str = "eval") -> Any:
        """Keep and show `report` (rank 0's; None on the other ranks of a multi-process run), put its numbers
        into the Trainer's `logs`, and stop at `fail_on`. Under a process group every rank calls this at the
        same events: one collective gives each rank rank 0's numbers and stops all of them when any asks."""
        stop = None
        numbers = log_numbers(report, prefix) if report is not None and logs is not None else {}
        if report is not None:
            report.notes.append(f"LabelDiagCallback, {when}")
            self.reports.append(report)
            if self.verbose:
                print_summary(report, when)
            causes = [f.code for f in report.sorted_findings()
                      if self.fail_on and SEVERITY_LIMIT.get(f.severity, 9) <= SEVERITY_LIMIT[self.fail_on]]
            if causes:
                step = getattr(state, "global_step", None)
                stop = (f"LabelDiagCallback stopped training at {when}" + (f" (global step {step})" if step else "")
                        + f": fail_on={self.fail_on!r} and it found {', '.join(causes)}")
                report.notes.append(stop)
                logger.warning(stop)
        d = joined()
        if d.active:
            votes = gather((stop, numbers), d)
            stop = next((why for why, _ in votes if why), None)
            numbers = votes[0][1]
        if stop:
            control.should_training_stop = True
        if logs is not None and numbers:
            logs.update(numbers)
            if state.log_history and state.log_history[-1].get("step") == state.global_step:
                state.log_history[-1].update(numbers)
        return control


def gathered_evaluation(captured: list, num_samples: int | None) -> list:
    """The evaluation's (logits, labels) batches. In one process: `captured` as is. Under a process group of N
    ranks: on rank 0 every rank's batches in the order accelerate's sharded loader dealt them (rank r's i-th
    batch is batch i*N + r), cut to the evaluation set's `num_samples` (the loader repeats examples from the
    start so that every rank gets full batches, as the Trainer's gather_for_metrics drops them); [] elsewhere.
    One gather on every rank."""
    d = joined()
    if not d.active:
        return captured
    per_rank = gather_to_main(captured, d)
    if per_rank is None:
        return []
    dealt = [batch for turn in itertools.zip_longest(*per_rank) for batch in turn if batch is not None]
    if not num_samples:
        return dealt
    kept, left = [], int(num_samples)
    for logits, labels in dealt:
        if left <= 0:
            break
        kept.append((logits[:left], labels[:left] if labels is not None else None))
        left -= logits.shape[0]
    return kept


def deepspeed_engaged(args: Any, model: Any, optimizer: Any) -> bool:
    """DeepSpeed holds the gradients: ZeRO-3 partitions every parameter (and marks it with `ds_id`, `ds_numel`,
    `ds_tensor`), and at every ZeRO stage its hooks move each gradient into its own buffers, so `param.grad`
    stays None and a probe's backward would add into the run's next step."""
    if getattr(args, "deepspeed", None) or getattr(args, "hf_deepspeed_config", None):
        return True
    if model is not None and any(hasattr(p, "ds_id") for p in model.parameters()):
        return True
    inner = getattr(optimizer, "optimizer", optimizer)
    return type(inner).__module__.split(".")[0] == "deepspeed"


DEEPSPEED_NOTE = ("DeepSpeed holds this run's gradients (ZeRO moves them into its own partitioned buffers; "
                  "param.grad stays None), so the probe step measured the loss only: which trainable parameters "
                  "get a gradient, the first step's size at the learning rate and whether the optimizer holds "
                  "every parameter were not checked")


def log_numbers(report: Report, prefix: str) -> dict[str, float]:
    """Trainer log entries: counts by severity and 1.0 for each code found (TensorBoard/W&B plot them)."""
    out = {f"{prefix}_labeldiag_errors": float(sum(f.severity == "error" for f in report.findings)),
           f"{prefix}_labeldiag_warnings": float(sum(f.severity == "warning" for f in report.findings))}
    for f in report.findings:
        out[f"{prefix}_labeldiag_{f.code.replace('-', '_')}"] = 1.0
    for key in ("accuracy", "macro_f1", "mean_max_probability", "expected_calibration_error"):
        # the predictions' record where the task has one (a token task's numbers are in its metrics only)
        value = getattr(report.logits, key) if report.logits is not None else report.metrics.get(key)
        if isinstance(value, float) and math.isfinite(value):
            out[f"{prefix}_labeldiag_{key}"] = value
    return out


def print_summary(report: Report, when: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True, highlight=False)
    shown = [f for f in report.sorted_findings() if f.severity != "info"]
    if not shown:
        console.print(f"[dim]labeldiag ({escape(when)}): no findings[/]")
        return
    console.print(f"[bold]labeldiag[/] ({escape(when)}):")
    style = {"error": "bold red", "warning": "yellow"}
    for f in shown:
        console.print(f"  [{style[f.severity]}]{f.severity.upper()}[/] [bold]{f.code}[/]: {escape(f.message)}",
                      soft_wrap=True)


def train_begin_report(model: Any, optimizer: Any, dataloader: Any, first_step: bool,
                       learning_rate: float = 0.0, backward: bool = True, deepspeed: bool = False) -> Report:
    """The static checks and one probe step on the first batch, before the first optimizer step
    (forward only when `backward` is False: a distributed run's backward would start collectives; and under
    `deepspeed`, which owns the gradients and the optimizer's view of the parameters: a note says so).
    The commands' phases: the model adopted as the API adopts one, measured, then judged."""
    from labeldiag.load.objects import adopt_model
    from labeldiag.measure.head_values import head_values
    from labeldiag.measure.train_probe import peak_learning_rate
    from labeldiag.pipeline.common import model_facts

    report = Report(command="callback", device=str(next(model.parameters()).device) if model is not None else "n/a")
    if model is None:
        return report
    info = adopt_model(model, None, need_tokenizer=False, trust_remote_code=False).info  # the Trainer's, in memory
    report.model = model_facts(info)
    if deepspeed:  # never a verdict from gradients DeepSpeed keeps elsewhere, nor from its flattened optimizer
        backward = False
        report.notes.append(DEEPSPEED_NOTE)
    coverage = OptimizerCoverage(readable=False) if deepspeed else optimizer_coverage(model, optimizer)
    head, values = head_statistics(model), head_values(model)
    lr = peak_learning_rate(optimizer, learning_rate)
    batch, probe = probe_first_batch(model, optimizer, dataloader, lr, first_step, backward)
    judge_train_begin(report, info, first_step, coverage, head, values, lr, batch, probe)
    return report


def probe_first_batch(model: Any, optimizer: Any, dataloader: Any, lr: float, first_step: bool,
                      backward: bool) -> tuple[dict | None, Any]:
    """The first batch and one probe step on it (None when the batch has no labels)."""
    from labeldiag.isolation import isolated
    from labeldiag.measure.train_probe import adam_like, probe_step

    probe = None
    with isolated(model):  # the sampler's draw and the probe must not move the caller's streams or grads
        batch = first_batch(dataloader)
        if batch is not None and "labels" in batch:
            probe = probe_step(model, batch, lr, with_updates=first_step and adam_like(optimizer), backward=backward)
    return batch, probe


def judge_train_begin(report: Report, info: Any, first_step: bool, coverage: OptimizerCoverage, head: HeadStatistics,
                      values: Any, lr: float, batch: dict | None, probe: Any) -> None:
    """The train-begin verdicts on what was measured, and the numbers behind them, into `report`."""
    from labeldiag.checks.labels import check_label_map, check_problem_type, map_labels
    from labeldiag.checks.learning_rate import learning_rate_too_high
    from labeldiag.checks.loading import check_load_audit
    from labeldiag.checks.parameters import loss_at_init
    from labeldiag.checks.training import params_not_in_optimizer
    from labeldiag.checks.training_run import head_weights_garbage, no_grad_under_checkpointing
    from labeldiag.pipeline.common import class_names
    from labeldiag.records import InitialLoss, LoadAudit

    report.add(params_not_in_optimizer(coverage))
    report.add(check_label_map(info, None))
    if first_step and head.fresh:  # the load audit is gone inside a Trainer; the head's numbers tell
        report.add(check_load_audit(LoadAudit(missing_head=list(head.parameters), source="statistics"), True))
    report.add(head_weights_garbage(values))
    loss = probe.loss if probe is not None else None
    if probe is not None:
        report.add(no_grad_under_checkpointing(probe.census))
        report.add(learning_rate_too_high(updates=probe.updates))
        report.metrics["learning_rate"] = lr
        if probe.updates is not None and probe.updates.ratios:
            ratios = sorted(probe.updates.ratios.values())
            report.metrics["median_update_weight_ratio"] = ratios[len(ratios) // 2]
    if batch is not None and "labels" in batch:
        gold, found = map_labels(batch["labels"].reshape(-1).tolist(), info, len(class_names(info)))
        report.add(found)
        report.add(check_problem_type(info, gold))
        report.add(loss_at_init(InitialLoss(loss, info.num_labels, head.fresh and first_step)))
        report.metrics["loss_at_start"] = loss
        report.data = {"examples": int(batch["labels"].shape[0]), "labelled": True}
    report.metrics["head"] = head.to_metrics()


def first_batch(dataloader: Any) -> dict | None:
    if dataloader is None:
        return None
    try:
        batch = next(iter(dataloader))
    except (StopIteration, TypeError):
        return None
    return dict(batch) if hasattr(batch, "keys") else None


def optimizer_coverage(model: Any, optimizer: Any) -> OptimizerCoverage:
    """Trainable parameters the optimizer does not hold (unreadable without param_groups, e.g. DeepSpeed)."""
    groups = getattr(optimizer, "param_groups", None)
    if optimizer is None or groups is None:
        return OptimizerCoverage(readable=False)
    held = {id(p) for g in groups for p in g.get("params", [])}
    missing = [(n, p.numel()) for n, p in model.named_parameters() if p.requires_grad and id(p) not in held]
    return OptimizerCoverage(readable=True, missing=tuple(n for n, _ in missing),
                             missing_elements=sum(k for _, k in missing),
                             trainable=sum(1 for p in model.parameters() if p.requires_grad))


def head_statistics(model: Any) -> HeadStatistics:
    """Does the head look as initialised (zero biases, weights at the configured init scale)?"""
    import torch

    from labeldiag.measure.parameters import head_parameter_names

    names = head_parameter_names(model)
    params = dict(model.named_parameters())
    weights = [params[n] for n in names if n.endswith("weight") and params[n].dim() == 2]
    biases = [params[n] for n in names if n.endswith("bias")]
    if not weights:
        return HeadStatistics(found=False)
    init = float(getattr(getattr(model, "config", None), "initializer_range", 0.02) or 0.02)
    with torch.no_grad():
        std = float(torch.cat([w.detach().float().flatten() for w in weights]).std())
        zero_bias = all(bool((b == 0).all()) for b in biases) if biases else None
    return HeadStatistics(found=True, parameters=tuple(sorted(names)), weight_std=std, initializer_range=init,
                          zero_biases=zero_bias, fresh=bool(zero_bias) and 0.5 * init <= std <= 2.0 * init)


def _judge_token_batches(captured: list, model: Any) -> Report:
    """The evaluation's [B, T, C] batches padded to the longest T (labels -100 there) and judged as one."""
    import torch

    from labeldiag.checks.predictions import judge_predictions

    width = max(x.shape[1] for x, _ in captured)
    logits = torch.cat([torch.nn.functional.pad(x, (0, 0, 0, width - x.shape[1])) for x, _ in captured])
    labels = None
    if all(y is not None and y.dim() == 2 and y.shape == x.shape[:2] for x, y in captured):
        labels = torch.cat([torch.nn.functional.pad(y, (0, width - y.shape[1]), value=-100) for _, y in captured])
    config = getattr(model, "config", None)
    return judge_predictions(logits, labels, getattr(config, "id2label", None), command="callback")

