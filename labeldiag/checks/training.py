"""smoke-train verdicts: read a TrainingTrace of plain numbers, return findings (numpy only)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from labeldiag import thresholds as T
from labeldiag.findings import Finding

_INDEX = re.compile(r"^\d+$")


@dataclass
class TrainingTrace:
    """What one smoke-train run measured; one entry per step in the lists (step 1 = before any update)."""

    steps_budget: int
    target_loss: float
    num_classes: int  # width of the head
    batch_classes: int  # distinct gold classes in the batch
    lr: float
    losses: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    distinct_predictions: list[int] = field(default_factory=list)
    max_abs_logits: list[float] = field(default_factory=list)
    initial_loss: float | None = None  # pre-flight pass
    fit_step: int | None = None
    fit_seconds: float | None = None
    diverged_step: int | None = None
    trainable: list[str] = field(default_factory=list)  # parameter names
    frozen: list[str] = field(default_factory=list)
    disconnected: list[str] = field(default_factory=list)  # trainable, .grad None after the pre-flight backward
    unchanged: list[str] = field(default_factory=list)  # trainable, bitwise equal after training
    head_fresh: bool = False
    loss_has_grad: bool = True  # False: the loss does not depend on any trainable parameter
    skipped: str | None = None  # why training could not start

    @property
    def steps_run(self) -> int:
        return len(self.losses)

    @property
    def fitted(self) -> bool:
        return self.fit_step is not None

    @property
    def ln_c(self) -> float:
        return math.log(max(self.num_classes, 2))

    @property
    def final_loss(self) -> float | None:
        return self.losses[-1] if self.losses else None

    @property
    def final_accuracy(self) -> float | None:
        return self.accuracies[-1] if self.accuracies else None


def group_layers(names: list[str]) -> list[str]:
    """Parameter names -> layers: 'bert.encoder.layer.3.attention.self.query.weight' -> 'bert.encoder.layer.3'."""
    out: list[str] = []
    for name in names:
        parts = name.split(".")
        parts = parts[:-1] or parts  # drop weight / bias
        for i, p in enumerate(parts):
            if _INDEX.match(p):
                parts = parts[: i + 1]
                break
        layer = ".".join(parts)
        if layer not in out:
            out.append(layer)
    return out


def _listing(names: list[str], limit: int = 5) -> str:
    layers = group_layers(names)
    return ", ".join(layers[:limit]) + (f", ... ({len(layers)} layers)" if len(layers) > limit else "")


def check_preflight(t: TrainingTrace) -> list[Finding]:
    """Before training: frozen and disconnected parameters, loss at init against ln C."""
    out: list[Finding] = []
    if t.frozen and not t.trainable:
        out.append(Finding(
            "frozen-parameters",
            f"nothing is trainable: all {len(t.frozen)} parameters have requires_grad=False, so training cannot "
            "change the model",
            {"frozen": len(t.frozen), "trainable": 0, "layers": group_layers(t.frozen)[:20]},
            severity="error",
            hint="set requires_grad=True on the parameters you mean to train (look for a freeze in __init__ or "
                 "from_pretrained)",
        ))
    elif t.frozen:
        out.append(Finding(
            "frozen-parameters",
            f"{len(t.frozen)} of {len(t.frozen) + len(t.trainable)} parameters are frozen ({_listing(t.frozen)})",
            {"frozen": len(t.frozen), "trainable": len(t.trainable), "layers": group_layers(t.frozen)[:20]},
        ))
    if t.disconnected:
        out.append(Finding(
            "disconnected-parameters",
            f"{len(t.disconnected)} trainable parameter(s) got no gradient in the pre-flight backward pass "
            f"({_listing(t.disconnected)})"
            + ("; the loss depends on no trainable parameter at all" if not t.loss_has_grad else ""),
            {"count": len(t.disconnected), "layers": group_layers(t.disconnected)[:20],
             "parameters": t.disconnected[:20], "loss_has_grad": t.loss_has_grad},
            hint="find where the graph is cut (a .detach(), torch.no_grad, numpy, an unused module); "
                 "'labeldiag grad-flow' shows where gradient stops",
        ))
    if t.head_fresh and t.initial_loss is not None:
        ratio = t.initial_loss / t.ln_c if math.isfinite(t.initial_loss) else math.inf
        if not (T.SMOKE_INIT_LOSS_RATIO_LOW <= ratio <= T.SMOKE_INIT_LOSS_RATIO_HIGH):
            high = ratio > 1
            out.append(Finding(
                "loss-at-init-off",
                f"the loss at init is {t.initial_loss:.3g}, {ratio:.2g}x ln C = {t.ln_c:.3g}, although the head is "
                "freshly initialized" + (" (saturated logits?)" if high else " (labels leaking, or not cross-entropy?)"),
                {"initial_loss": t.initial_loss, "ln_num_labels": t.ln_c, "ratio": ratio},
                hint="scale the logits (temperature, LayerNorm) or check the head's init" if high else
                "check that the labels do not reach the input and that the loss is cross-entropy",
            ))
    return out


def check_training(t: TrainingTrace, triage: list[dict] | None = None) -> list[Finding]:
    """After training: diverged, unchanged parameters, collapse, cannot fit, fitted late."""
    out: list[Finding] = []
    if t.skipped:
        return [Finding(
            "cannot-overfit",
            f"training could not start: {t.skipped}; the loss stays at {_num(t.initial_loss)} "
            f"(ln C = {t.ln_c:.3g})",
            {"final_loss": t.initial_loss, "steps": 0, "target_loss": t.target_loss, "reason": t.skipped},
            hint=cannot_fit_hint(t, out, triage),
        )]
    losses = np.asarray(t.losses, dtype=np.float64)
    if not losses.size:
        return out
    start = t.initial_loss if t.initial_loss is not None and math.isfinite(t.initial_loss) else float(losses[0])
    nonfinite = not np.isfinite(losses).all()
    if t.diverged_step is not None:
        bad = losses[t.diverged_step - 1]
        out.append(Finding(
            "loss-diverged",
            f"the loss went from {start:.3g} to {'NaN/inf' if not math.isfinite(bad) else f'{bad:.3g}'} at step "
            f"{t.diverged_step} (lr {t.lr:g}); training was stopped there",
            {"initial_loss": start, "loss": float(bad) if math.isfinite(bad) else None, "step": t.diverged_step,
             "nonfinite": not math.isfinite(bad), "lr": t.lr},
            hint=f"lower --lr (try {t.lr / 10:g}), clip gradients, scale the logits, or use bf16/fp32 instead of fp16",
        ))
    if t.unchanged and t.steps_run >= 1:
        got_none = [n for n in t.unchanged if n in set(t.disconnected)]
        out.append(Finding(
            "parameters-unchanged",
            f"{len(t.unchanged)} trainable parameter(s) did not move in {t.steps_run} optimizer step(s): "
            f"{_listing(t.unchanged)}" + (f"; {len(got_none)} of them got no gradient" if got_none else ""),
            {"count": len(t.unchanged), "layers": group_layers(t.unchanged)[:30],
             "parameters": t.unchanged[:30], "no_gradient": len(got_none), "steps": t.steps_run},
        ))
    collapsed = _collapse(t, nonfinite)
    if collapsed is not None:
        out.append(collapsed)
    if not t.fitted:
        out.append(Finding(
            "cannot-overfit",
            f"the batch ({t.batch_classes} classes) was not fitted in {t.steps_run} step(s): final loss {_num(t.final_loss)}, "
            f"accuracy {_pct(t.final_accuracy)} (target: 100% and loss < {t.target_loss:g}; ln C = {t.ln_c:.3g})",
            {"final_loss": t.final_loss, "final_accuracy": t.final_accuracy, "initial_loss": start,
             "steps": t.steps_run, "target_loss": t.target_loss, "lr": t.lr},
            hint=cannot_fit_hint(t, out, triage),
        ))
    elif t.fit_step is not None and t.fit_step > T.SMOKE_SLOW_FIT_SHARE * t.steps_budget:
        out.append(Finding(
            "slow-convergence",
            f"the batch was fitted only at step {t.fit_step} of {t.steps_budget} "
            f"(later than {T.SMOKE_SLOW_FIT_SHARE:.0%} of the budget)",
            {"fit_step": t.fit_step, "steps_budget": t.steps_budget, "lr": t.lr},
            hint=f"try a higher --lr (e.g. {t.lr * 3:g}) or '--triage'; a healthy head fits 32 examples in a few "
                 "dozen steps",
        ))
    return out


def _collapse(t: TrainingTrace, nonfinite: bool) -> Finding | None:
    if t.batch_classes < 2 or t.fitted or nonfinite or not t.distinct_predictions:
        return None
    last = t.distinct_predictions[-T.SMOKE_COLLAPSE_LAST_STEPS:]
    if any(d != 1 for d in last):
        return None
    always = all(d == 1 for d in t.distinct_predictions)
    since = len(t.distinct_predictions)
    while since > 1 and t.distinct_predictions[since - 2] == 1:
        since -= 1
    return Finding(
        "collapse-during-training",
        ("predictions on the batch were one class at every step" if always else
         f"predictions on the batch became one class from step {since} on")
        + f", although the batch holds {t.batch_classes} classes",
        {"since_step": since, "constant_from_start": always, "batch_classes": t.batch_classes,
         "steps": t.steps_run},
        hint=("the model ignores its input (check what the head reads: a constant token, a detached or "
              "zeroed feature); 'labeldiag check-logits' tests input dependence") if always else "",
    )


def cannot_fit_hint(t: TrainingTrace, found: list[Finding], triage: list[dict] | None) -> str:
    """The most likely reason, from what else was seen, most specific first."""
    codes = {f.code for f in found}
    tips: list[str] = []
    if triage:
        fits = [r for r in triage if r.get("fitted")]
        if fits:
            tips.append("it fits with " + " / ".join(r["variant"] for r in fits) + " (see the triage table)")
        else:
            ran = [r for r in triage if r.get("final_loss") is not None and math.isfinite(r["final_loss"])]
            best = min(ran, key=lambda r: r["final_loss"]) if ran else None
            start = t.initial_loss
            if best is None or (start is not None and best["final_loss"] > T.SMOKE_STUCK_LOSS_SHARE * start):
                tips.append("no triage variant moved the loss either: the defect is in the model, not the settings")
            else:
                tips.append(f"no triage variant fitted either; the lowest loss was {best['final_loss']:.3g} with "
                            f"{best['variant']}")
    if not t.trainable:
        tips.append("no parameter is trainable: set requires_grad=True on what should learn")
    elif not t.loss_has_grad:
        tips.append("the loss depends on no trainable parameter (logits are detached): run labeldiag grad-flow")
    elif t.disconnected:
        tips.append(f"{len(group_layers(t.disconnected))} layer(s) got no gradient: run labeldiag grad-flow")
    if "loss-diverged" in codes:
        tips.append(f"loss diverged: lower --lr (try {t.lr / 10:g})")
    sat = [x for x in t.max_abs_logits if math.isfinite(x)]
    if sat and sat[-1] > T.SMOKE_SATURATED_LOGIT:
        tips.append(f"logits saturated (|logit| up to {sat[-1]:.3g}): scale them or lower --lr")
    if "collapse-during-training" in codes:
        tips.append("predictions collapsed to one class")
    if "parameters-unchanged" in codes and t.trainable and not t.disconnected:
        tips.append("some parameters never moved: are they all in the optimizer?")
    final, start = t.final_loss, t.initial_loss if t.initial_loss is not None else (t.losses[0] if t.losses else None)
    if (final is not None and start is not None and math.isfinite(final) and math.isfinite(start)
            and final > T.SMOKE_STUCK_LOSS_SHARE * start and "loss-diverged" not in codes and t.trainable
            and t.loss_has_grad):
        tips.append(f"the loss barely moved ({start:.3g} -> {final:.3g}): try a higher --lr or more --steps")
    acc = t.final_accuracy
    if (acc is not None and acc >= 1.0 and final is not None and math.isfinite(final)
            and "loss-diverged" not in codes):
        tips.append(f"accuracy reached 100% but the loss stayed above --target-loss {t.target_loss:g}: give more "
                    "--steps or a higher --lr")
    if not tips or (not triage and t.trainable and t.loss_has_grad):
        tips.append("rerun with --triage to see whether the head alone, another --lr or fp32 fits")
    return "; ".join(dict.fromkeys(tips))


def check_ranks(max_rel_diff: float | None, world_size: int) -> list[Finding]:
    if max_rel_diff is None or world_size < 2:
        return []
    if math.isfinite(max_rel_diff) and max_rel_diff <= T.SMOKE_RANKS_MAX_REL_DIFF:
        return []
    return [Finding(
        "ranks-diverged",
        f"the {world_size} data-parallel ranks ended with different parameters (max relative difference "
        f"{max_rel_diff:.3g} to rank 0)",
        {"max_relative_difference": max_rel_diff if math.isfinite(max_rel_diff) else None,
         "world_size": world_size},
    )]


def _num(x: float | None) -> str:
    return "-" if x is None else ("NaN/inf" if not math.isfinite(x) else f"{x:.3g}")


def _pct(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.0%}"

