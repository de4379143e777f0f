"""learning-rate-too-high: judged from first-step update sizes (grad-flow) or a lower-rate rerun (smoke-train)."""
from __future__ import annotations

from labeldiag import thresholds as T
from labeldiag.findings import Finding
from labeldiag.measure.learning_rate import LowerRateRerun, UpdateRatios


def learning_rate_too_high(updates: UpdateRatios | None = None, rerun: LowerRateRerun | None = None) -> list[Finding]:
    if updates is not None and updates.ratios:
        high = {name: r for name, r in updates.ratios.items() if r > T.LR_MAX_UPDATE_RATIO}
        share = len(high) / len(updates.ratios)
        if share >= T.LR_MIN_LAYER_SHARE:
            median = sorted(updates.ratios.values())[len(updates.ratios) // 2]
            return [Finding(
                "learning-rate-too-high",
                f"at lr {updates.lr:g} the first AdamW step moves {len(high)} of {len(updates.ratios)} layers by more "
                f"than {T.LR_MAX_UPDATE_RATIO:g} of their weight norm (median update/weight {median:.2g}; ~1e-3 is "
                "healthy)",
                {"lr": updates.lr, "layers_above": len(high), "layers": len(updates.ratios),
                 "median_update_weight_ratio": median, "threshold": T.LR_MAX_UPDATE_RATIO,
                 "highest": dict(sorted(high.items(), key=lambda kv: -kv[1])[:5])},
                hint=f"lower the learning rate (try {updates.lr / 10:g} or less; fine-tuning encoders: 1e-5 to 5e-5)",
            )]
    if rerun is not None and rerun.rerun_fitted:
        return [Finding(
            "learning-rate-too-high",
            f"training at lr {rerun.lr:g} {rerun.problem}, while a rerun at lr {rerun.rerun_lr:g} fitted the batch "
            f"at step {rerun.rerun_fit_step}",
            {"lr": rerun.lr, "problem": rerun.problem,
             "final_loss": rerun.final_loss, "rerun_lr": rerun.rerun_lr, "rerun_fit_step": rerun.rerun_fit_step,
             "rerun_final_loss": rerun.rerun_final_loss, "rerun_steps": rerun.rerun_steps},
            hint=f"train with lr {rerun.rerun_lr:g} (or lower) and warm-up",
        )]
    return []
