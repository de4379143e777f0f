"""smoke-train verdicts: read a TrainingTrace of plain numbers, return findings (numpy only)."""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from labeldiag import thresholds as T
from labeldiag.checks import judge
from labeldiag.checks.parameters import group_layers, listing
from labeldiag.findings import Finding
from labeldiag.records import OptimizerCoverage, TrainingTarget, TrainingTrace
from labeldiag.catalogue import (
    CANNOT_OVERFIT, COLLAPSE_DURING_TRAINING, LOSS_DIVERGED, PARAMETERS_UNCHANGED, PARAMS_NOT_IN_OPTIMIZER,
    RANKS_DIVERGED, SLOW_CONVERGENCE,
)


def fit_rule(t: TrainingTrace, target_loss: float) -> str | None:
    """Which criterion says the batch is fitted after the last step, or None.

    Judged against what the model's loss can reach: 100% accuracy and the classification loss (the
    model's own component, e.g. ce_loss, else the cross-entropy of the logits) under --target-loss; or,
    for a total loss with terms that have a floor above 0 (CE + SupCon), 100% accuracy for the last
    SMOKE_PLATEAU_STEPS steps while the total loss has stopped falling.
    """
    if not t.accuracies or t.accuracies[-1] < 1.0:
        return None
    if t.classification_losses and t.classification_losses[-1] < target_loss:
        return f"accuracy 100% and {t.classification_source} {t.classification_losses[-1]:.3g} < --target-loss {target_loss:g}"
    k = T.SMOKE_PLATEAU_STEPS
    if len(t.losses) < 2 * k or any(a < 1.0 for a in t.accuracies[-k:]):
        return None
    before = min(t.losses[:-k])
    last = t.losses[-1]
    if math.isfinite(last) and last >= (1 - T.SMOKE_PLATEAU_MAX_DROP) * before:
        return (f"accuracy 100% for {k} steps and the total loss stopped falling at {last:.3g} (the model's loss "
                f"has a floor above --target-loss {target_loss:g}; {t.classification_source} "
                f"{t.classification_losses[-1]:.3g})" if t.classification_losses else
                f"accuracy 100% for {k} steps and the total loss stopped falling at {last:.3g}")
    return None


def training_checks(t: TrainingTrace, s: TrainingTarget, triage: list[dict] | None = None) -> Iterator[tuple]:
    """The verdicts on one training run, one judge per code, in the order a user should read them."""
    yield loss_diverged, t, s
    yield parameters_unchanged, t
    yield collapse_during_training, t
    yield cannot_overfit, t, s, triage
    yield slow_convergence, t, s


def check_training(t: TrainingTrace, s: TrainingTarget, triage: list[dict] | None = None) -> list[Finding]:
    """After training: diverged, unchanged parameters, collapse, cannot fit, fitted late."""
    return judge(training_checks(t, s, triage))


def _ran(t: TrainingTrace) -> bool:
    """Training started and took a step (a run that could not start is judged by cannot-overfit alone)."""
    return not t.skipped and bool(t.losses)


def _start(t: TrainingTrace) -> float:
    return t.initial_loss if t.initial_loss is not None and math.isfinite(t.initial_loss) else float(t.losses[0])


def loss_diverged(t: TrainingTrace, s: TrainingTarget) -> list[Finding]:
    if not _ran(t) or t.diverged_step is None:
        return []
    bad = float(np.asarray(t.losses, dtype=np.float64)[t.diverged_step - 1])
    return [Finding(
        LOSS_DIVERGED,
        f"the loss went from {_start(t):.3g} to {'NaN/inf' if not math.isfinite(bad) else f'{bad:.3g}'} at step "
        f"{t.diverged_step} (lr {s.lr:g}); training was stopped there",
        {"initial_loss": _start(t), "loss": float(bad) if math.isfinite(bad) else None, "step": t.diverged_step,
         "nonfinite": not math.isfinite(bad), "lr": s.lr},
        hint=f"lower --lr (try {s.lr / 10:g}), clip gradients, scale the logits, or use bf16/fp32 instead of fp16",
    )]


def parameters_unchanged(t: TrainingTrace) -> list[Finding]:
    if not _ran(t) or not t.unchanged:
        return []
    got_none = [n for n in t.unchanged if n in set(t.disconnected)]
    return [Finding(
        PARAMETERS_UNCHANGED,
        f"{len(t.unchanged)} trainable parameter(s) did not move in {t.steps_run} optimizer step(s): "
        f"{listing(t.unchanged)}" + (f"; {len(got_none)} of them got no gradient" if got_none else ""),
        {"count": len(t.unchanged), "layers": group_layers(t.unchanged)[:30],
         "parameters": t.unchanged[:30], "no_gradient": len(got_none), "steps": t.steps_run},
    )]


def collapse_during_training(t: TrainingTrace) -> list[Finding]:
    nonfinite = not np.isfinite(np.asarray(t.losses, dtype=np.float64)).all()
    if not _ran(t) or t.batch_classes < 2 or t.fitted or nonfinite or not t.distinct_predictions:
        return []
    last = t.distinct_predictions[-T.SMOKE_COLLAPSE_LAST_STEPS:]
    if any(d != 1 for d in last):
        return []
    always = all(d == 1 for d in t.distinct_predictions)
    since = len(t.distinct_predictions)
    while since > 1 and t.distinct_predictions[since - 2] == 1:
        since -= 1
    return [Finding(
        COLLAPSE_DURING_TRAINING,
        ("predictions on the batch were one class at every step" if always else
         f"predictions on the batch became one class from step {since} on")
        + f", although the batch holds {t.batch_classes} classes",
        {"since_step": since, "constant_from_start": always, "batch_classes": t.batch_classes,
         "steps": t.steps_run},
        hint=("the model ignores its input (check what the head reads: a constant token, a detached or "
              "zeroed feature); 'labeldiag check-logits' tests input dependence") if always else "",
    )]


def cannot_overfit(t: TrainingTrace, s: TrainingTarget, triage: list[dict] | None = None) -> list[Finding]:
    """Training could not start, or did not fit the batch; the hint reads what else went wrong."""
    if t.skipped:
        return [Finding(
            CANNOT_OVERFIT,
            f"training could not start: {t.skipped}; the loss stays at {_num(t.initial_loss)} "
            f"(ln C = {t.ln_c:.3g})",
            {"final_loss": t.initial_loss, "steps": 0, "target_loss": s.target_loss, "reason": t.skipped},
            hint=cannot_fit_hint(t, s, [], triage),
        )]
    if not t.losses or t.fitted:
        return []
    found = loss_diverged(t, s) + parameters_unchanged(t) + collapse_during_training(t)
    final_class = t.classification_losses[-1] if t.classification_losses else None
    return [Finding(
        CANNOT_OVERFIT,
        f"the batch ({t.batch_classes} classes) was not fitted in {t.steps_run} step(s): final loss {_num(t.final_loss)}"
        + (f", {t.classification_source} {_num(final_class)}" if final_class is not None
           and final_class != t.final_loss else "")
        + f", accuracy {_pct(t.final_accuracy)} (target: 100% and {t.classification_source} < {s.target_loss:g}, "
        f"or a total loss that stopped falling at 100%; ln C = {t.ln_c:.3g})",
        {"final_loss": t.final_loss, "final_classification_loss": final_class,
         "classification_source": t.classification_source, "final_accuracy": t.final_accuracy,
         "initial_loss": _start(t), "steps": t.steps_run, "target_loss": s.target_loss, "lr": s.lr,
         "plateau_steps": T.SMOKE_PLATEAU_STEPS, "plateau_max_drop": T.SMOKE_PLATEAU_MAX_DROP},
        hint=cannot_fit_hint(t, s, found, triage),
    )]


def slow_convergence(t: TrainingTrace, s: TrainingTarget) -> list[Finding]:
    if not _ran(t) or t.fit_step is None or t.fit_step <= T.SMOKE_SLOW_FIT_SHARE * s.steps:
        return []
    return [Finding(
        SLOW_CONVERGENCE,
        f"the batch was fitted only at step {t.fit_step} of {s.steps} "
        f"(later than {T.SMOKE_SLOW_FIT_SHARE:.0%} of the budget)",
        {"fit_step": t.fit_step, "steps_budget": s.steps, "lr": s.lr},
        hint=f"try a higher --lr (e.g. {s.lr * 3:g}) or '--triage'; a healthy head fits 32 examples in a few "
             "dozen steps",
    )]


def cannot_fit_hint(t: TrainingTrace, s: TrainingTarget, found: list[Finding], triage: list[dict] | None) -> str:
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
    if LOSS_DIVERGED in codes:
        tips.append(f"loss diverged: lower --lr (try {s.lr / 10:g})")
    sat = [x for x in t.max_abs_logits if math.isfinite(x)]
    if sat and sat[-1] > T.SMOKE_SATURATED_LOGIT:
        tips.append(f"logits saturated (|logit| up to {sat[-1]:.3g}): scale them or lower --lr")
    if COLLAPSE_DURING_TRAINING in codes:
        tips.append("predictions collapsed to one class")
    if PARAMETERS_UNCHANGED in codes and t.trainable and not t.disconnected:
        tips.append("some parameters never moved: are they all in the optimizer?")
    final, start = t.final_loss, t.initial_loss if t.initial_loss is not None else (t.losses[0] if t.losses else None)
    if (final is not None and start is not None and math.isfinite(final) and math.isfinite(start)
            and final > T.SMOKE_STUCK_LOSS_SHARE * start and LOSS_DIVERGED not in codes and t.trainable
            and t.loss_has_grad):
        tips.append(f"the loss barely moved ({start:.3g} -> {final:.3g}): try a higher --lr or more --steps")
    acc = t.final_accuracy
    if (acc is not None and acc >= 1.0 and final is not None and math.isfinite(final)
            and LOSS_DIVERGED not in codes):
        tips.append(f"accuracy reached 100% but the loss stayed above --target-loss {s.target_loss:g}: give more "
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
        RANKS_DIVERGED,
        f"the {world_size} data-parallel ranks ended with different parameters (max relative difference "
        f"{max_rel_diff:.3g} to rank 0)",
        {"max_relative_difference": max_rel_diff if math.isfinite(max_rel_diff) else None,
         "world_size": world_size},
    )]


def _num(x: float | None) -> str:
    return "-" if x is None else ("NaN/inf" if not math.isfinite(x) else f"{x:.3g}")


def _pct(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.0%}"



def params_not_in_optimizer(coverage: OptimizerCoverage) -> list[Finding]:
    """Trainable parameters that the optimizer does not hold: they get gradients and never move."""
    if not coverage.readable or not coverage.missing:
        return []
    missing = list(coverage.missing)
    return [Finding(
        PARAMS_NOT_IN_OPTIMIZER,
        f"{len(missing)} of {coverage.trainable} trainable parameter tensor(s) "
        f"({coverage.missing_elements:,} elements) are not in the optimizer: {listing(missing)}",
        {"parameters": missing[:30], "count": len(missing), "elements": coverage.missing_elements,
         "layers": group_layers(missing)[:20]},
    )]
