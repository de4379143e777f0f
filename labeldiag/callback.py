"""LabelDiagCallback: labeldiag's checks inside a transformers Trainer run.

At train begin: label map, labels of the first batch against the model's classes and loss type,
loss at init on that batch, and whether the optimizer holds every trainable parameter. At each
evaluation: the check-logits verdicts on the evaluation's own predictions (captured by a forward
hook while the Trainer evaluates, so there is no second pass over the evaluation set), written into
the Trainer's logs as `<prefix>_labeldiag_*` numbers and shown as a short summary.
"""
from __future__ import annotations

import inspect
import math
import time
from typing import Any

from transformers import TrainerCallback

from labeldiag.findings import Report

SEVERITY_LIMIT = {"error": 0, "warning": 1}


class LabelDiagCallback(TrainerCallback):
    """Add to a Trainer: `Trainer(..., callbacks=[LabelDiagCallback()])`.

    `fail_on="error"` (or "warning") stops training when a finding of that severity appears;
    the default None never stops. `verbose=False` silences the per-evaluation summary. Every Report
    made is kept in `.reports`, in order (train begin first, then one per evaluation).
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
        self._handles: list[Any] = []
        self._hooked: Any = None

    # --- capture the evaluation's predictions -----------------------------------------------------

    def _hook(self, model: Any) -> None:
        if model is None or self._hooked is model:
            return
        self._unhook()
        pending: dict[str, Any] = {}

        def before(module, args, kwargs):
            if not module.training:
                pending["labels"] = kwargs.get("labels")

        def after(module, args, kwargs, output):
            if module.training:
                return
            t0 = time.perf_counter()
            logits = getattr(output, "logits", None)
            if logits is None and isinstance(output, dict):
                logits = output.get("logits")
            if logits is not None and logits.dim() == 2:
                labels = pending.pop("labels", None)
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

    def _move_to_front(self) -> None:
        """Run before the reporting callbacks (TensorBoard, W&B), so they see this callback's metrics."""
        frame = inspect.currentframe()
        for _ in range(12):
            frame = frame.f_back if frame is not None else None
            trainer = frame.f_locals.get("self") if frame is not None else None
            handler = getattr(trainer, "callback_handler", None)
            if handler is not None and self in handler.callbacks:
                handler.callbacks.remove(self)
                handler.callbacks.insert(0, self)
                return

    # --- events -----------------------------------------------------------------------------------

    def on_init_end(self, args, state, control, model=None, **kwargs):
        self._hook(model)

    def on_train_begin(self, args, state, control, model=None, optimizer=None, train_dataloader=None, **kwargs):
        t0 = time.perf_counter()
        self._move_to_front()
        self._hook(model)
        report = train_begin_report(model, optimizer, train_dataloader, first_step=state.global_step == 0)
        self.overhead_seconds += time.perf_counter() - t0
        return self._conclude(report, control, "train begin")

    def on_prediction_step(self, args, state, control, model=None, **kwargs):
        self._hook(model)

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        if not logs or not self._captured or not any(k.endswith("_loss") or k.endswith("_runtime") for k in logs):
            return None
        t0 = time.perf_counter()
        prefix = next((k.split("_", 1)[0] for k in logs if k.endswith("_runtime")), "eval")
        report = self._judge_evaluation(model)
        numbers = log_numbers(report, prefix)
        logs.update(numbers)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(numbers)
        self.overhead_seconds += time.perf_counter() - t0
        return self._conclude(report, control, f"evaluation at step {state.global_step}")

    def on_train_end(self, args, state, control, **kwargs):
        self._unhook()

    # --- verdicts ---------------------------------------------------------------------------------

    def _judge_evaluation(self, model: Any) -> Report:
        import torch

        from labeldiag.checks.predictions import judge_predictions

        captured, self._captured = self._captured, []
        widths = {x.shape[1] for x, _ in captured}
        logits = torch.cat([x for x, _ in captured]) if len(widths) == 1 else captured[-1][0]
        labels = None
        if all(y is not None and y.dim() == 1 for _, y in captured) and len(widths) == 1:
            labels = torch.cat([y for _, y in captured])
        config = getattr(model, "config", None)
        return judge_predictions(logits, labels, getattr(config, "id2label", None), command="callback")

    def _conclude(self, report: Report, control: Any, when: str) -> Any:
        report.notes.append(f"LabelDiagCallback, {when}")
        self.reports.append(report)
        if self.verbose:
            print_summary(report, when)
        if self.fail_on and any(SEVERITY_LIMIT.get(f.severity, 9) <= SEVERITY_LIMIT[self.fail_on]
                                for f in report.findings):
            control.should_training_stop = True
        return control


def log_numbers(report: Report, prefix: str) -> dict[str, float]:
    """Trainer log entries: counts by severity and 1.0 for each code found (TensorBoard/W&B plot them)."""
    out = {f"{prefix}_labeldiag_errors": float(sum(f.severity == "error" for f in report.findings)),
           f"{prefix}_labeldiag_warnings": float(sum(f.severity == "warning" for f in report.findings))}
    for f in report.findings:
        out[f"{prefix}_labeldiag_{f.code.replace('-', '_')}"] = 1.0
    for key in ("accuracy", "macro_f1", "mean_max_probability", "expected_calibration_error"):
        value = report.metrics.get(key)
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


def train_begin_report(model: Any, optimizer: Any, dataloader: Any, first_step: bool) -> Report:
    """The static checks and one batch's loss, before the first optimizer step."""
    from labeldiag.checks.labels import check_label_map, check_problem_type, map_labels
    from labeldiag.checks.loading import check_load_audit
    from labeldiag.checks.parameters import loss_at_init
    from labeldiag.checks.training import params_not_in_optimizer
    from labeldiag.isolation import isolated
    from labeldiag.load.model import LoadAudit, _model_info
    from labeldiag.records import InitialLoss

    report = Report(command="callback", device=str(next(model.parameters()).device) if model is not None else "n/a")
    if model is None:
        return report
    info = _model_info(model, f"<in-memory {type(model).__name__}>", "memory")
    report.model = {"class": info.class_name, "num_labels": info.num_labels,
                    "id2label": {str(k): v for k, v in sorted(info.id2label.items())},
                    "problem_type": info.problem_type}
    report.add(params_not_in_optimizer(optimizer_coverage(model, optimizer)))
    report.add(check_label_map(info, None))
    head = head_statistics(model)
    if first_step and head.get("fresh"):  # the load audit is gone inside a Trainer; the head's numbers tell
        report.add(check_load_audit(LoadAudit(missing_head=head["parameters"], source="statistics"), True))
    batch = None
    with isolated(model):  # the sampler's draw must not move the caller's random streams
        batch = first_batch(dataloader)
        loss = None
        if batch is not None and "labels" in batch:
            import torch

            model.eval()
            with torch.no_grad():
                device = next(model.parameters()).device
                inputs = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
                out = model(**inputs)
            loss = getattr(out, "loss", None)
            loss = float(loss) if loss is not None else None
    if batch is not None and "labels" in batch:
        num_classes = max(info.num_labels, 1)
        gold, found = map_labels(batch["labels"].reshape(-1).tolist(), info, num_classes)
        report.add(found)
        report.add(check_problem_type(info, gold))
        fresh = bool(head.get("fresh")) and first_step
        report.add(loss_at_init(InitialLoss(loss, info.num_labels, fresh)))
        report.metrics["loss_at_start"] = loss
        report.data = {"examples": int(batch["labels"].shape[0]), "labelled": True}
    report.metrics["head"] = head
    return report


def first_batch(dataloader: Any) -> dict | None:
    if dataloader is None:
        return None
    try:
        batch = next(iter(dataloader))
    except (StopIteration, TypeError):
        return None
    return dict(batch) if hasattr(batch, "keys") else None


def optimizer_coverage(model: Any, optimizer: Any) -> dict[str, Any]:
    """Trainable parameters the optimizer does not hold (None when it cannot be read, e.g. DeepSpeed)."""
    groups = getattr(optimizer, "param_groups", None)
    if optimizer is None or groups is None:
        return {"readable": False}
    held = {id(p) for g in groups for p in g.get("params", [])}
    missing = [(n, p.numel()) for n, p in model.named_parameters() if p.requires_grad and id(p) not in held]
    return {"readable": True, "missing": [n for n, _ in missing], "missing_elements": sum(k for _, k in missing),
            "trainable": sum(1 for p in model.parameters() if p.requires_grad)}


def head_statistics(model: Any) -> dict[str, Any]:
    """Does the head look as initialised (zero biases, weights at the configured init scale)?"""
    import torch

    from labeldiag.measure.training import head_parameter_names

    names = head_parameter_names(model)
    params = dict(model.named_parameters())
    weights = [params[n] for n in names if n.endswith("weight") and params[n].dim() == 2]
    biases = [params[n] for n in names if n.endswith("bias")]
    if not weights:
        return {"found": False}
    init = float(getattr(getattr(model, "config", None), "initializer_range", 0.02) or 0.02)
    with torch.no_grad():
        std = float(torch.cat([w.detach().float().flatten() for w in weights]).std())
        zero_bias = all(bool((b == 0).all()) for b in biases) if biases else None
    return {"found": True, "parameters": sorted(names), "weight_std": std, "initializer_range": init,
            "zero_biases": zero_bias,
            "fresh": bool(zero_bias) and 0.5 * init <= std <= 2.0 * init}
