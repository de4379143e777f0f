"""learning-rate-too-high: judged from first-step update sizes (grad-flow) or a lower-rate rerun (smoke-train)."""
from __future__ import annotations

from labeldiag import thresholds as T
from labeldiag.findings import Finding
from labeldiag.records import LowerRateRerun, UpdateRatios
from labeldiag.catalogue import LEARNING_RATE_TOO_HIGH


def learning_rate_too_high(updates: UpdateRatios | None = None, rerun: LowerRateRerun | None = None) -> list[Finding]:
    if updates is not None and updates.ratios:
        high = {name: r for name, r in updates.ratios.items() if r > T.LR_MAX_UPDATE_RATIO}
        share = len(high) / len(updates.ratios)
        median = sorted(updates.ratios.values())[len(updates.ratios) // 2]
        # a rate above the fine-tuning range whose steps are already 10x the healthy size
        above_range = updates.lr > T.LR_FINE_TUNE_MAX and median > T.UPDATE_RATIO_MARK_HIGH
        if share >= T.LR_MIN_LAYER_SHARE or above_range:
            moved = (f"moves {len(high)} of {len(updates.ratios)} layers by more than {T.LR_MAX_UPDATE_RATIO:g} of "
                     "their weight norm" if share >= T.LR_MIN_LAYER_SHARE else
                     f"is above the usual fine-tuning range (<= {T.LR_FINE_TUNE_MAX:g}) and the first AdamW step "
                     f"moves the median layer by more than {T.UPDATE_RATIO_MARK_HIGH:g} of its weight norm")
            return [Finding(
                LEARNING_RATE_TOO_HIGH,
                f"lr {updates.lr:g} {moved} (median update/weight {median:.2g} over {len(updates.ratios)} layers; "
                "~1e-3 is healthy)",
                {"lr": updates.lr, "layers_above": len(high), "layers": len(updates.ratios),
                 "median_update_weight_ratio": median, "threshold": T.LR_MAX_UPDATE_RATIO,
                 "fine_tune_max_lr": T.LR_FINE_TUNE_MAX, "median_threshold": T.UPDATE_RATIO_MARK_HIGH,
                 "highest": dict(sorted(high.items(), key=lambda kv: -kv[1])[:5])},
                hint=f"lower the learning rate (try {updates.lr / 10:g} or less; fine-tuning encoders: 1e-5 to 5e-5)",
            )]
    if rerun is not None and rerun.rerun_fitted:
        return [Finding(
            LEARNING_RATE_TOO_HIGH,
            f"training at lr {rerun.lr:g} {rerun.problem}, while a rerun at lr {rerun.rerun_lr:g} fitted the batch "
            f"at step {rerun.rerun_fit_step}",
            {"lr": rerun.lr, "problem": rerun.problem,
             "final_loss": rerun.final_loss, "rerun_lr": rerun.rerun_lr, "rerun_fit_step": rerun.rerun_fit_step,
             "rerun_final_loss": rerun.rerun_final_loss, "rerun_steps": rerun.rerun_steps},
            hint=f"train with lr {rerun.rerun_lr:g} (or lower) and warm-up",
        )]
    return []


def update_ratio_unusual(ratio: float | None) -> bool:
    """grad-flow's table mark: a layer's first-AdamW-step update/weight ratio outside the healthy band."""
    return ratio is not None and not T.UPDATE_RATIO_MARK_LOW <= ratio <= T.UPDATE_RATIO_MARK_HIGH
