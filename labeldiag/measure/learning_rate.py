"""Evidence that --lr is too high: first-step update sizes (grad-flow) or a rerun at lr / 10 (smoke-train)."""
from __future__ import annotations

from labeldiag import thresholds as T
from labeldiag.records import TrainingTrace, UpdateRatios


def update_ratios(layers: list, lr: float) -> UpdateRatios:
    return UpdateRatios(lr=lr, ratios={lg.name: lg.update_weight_ratio for lg in layers
                                       if lg.update_weight_ratio is not None})


def went_wrong(t: TrainingTrace, lr: float) -> str | None:
    """What went wrong at --lr, or None: diverged, collapsed to one class after predicting several, or
    (at a rate above the usual fine-tuning range) ended no lower than it started; never when fitted."""
    if t.fitted or not t.losses:
        return None
    if t.diverged_step is not None:
        return f"diverged at step {t.diverged_step}"
    last = t.distinct_predictions[-T.SMOKE_COLLAPSE_LAST_STEPS:]
    # one class from the very start is an input problem, not the rate
    if t.batch_classes >= 2 and last and all(d == 1 for d in last) and t.distinct_predictions[0] > 1:
        return "collapsed to one predicted class"
    start = t.initial_loss if t.initial_loss is not None else t.losses[0]
    if lr > T.LR_STUCK_MIN_LR and t.final_loss is not None and t.final_loss >= start:
        return f"ended at loss {t.final_loss:.3g}, no lower than it started ({start:.3g})"
    return None
