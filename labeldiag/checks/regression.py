"""Verdicts on regression heads (num_labels=1, MSE), from a RegressionSummary."""
from __future__ import annotations

import math

from labeldiag import thresholds as T
from labeldiag.findings import Finding
from labeldiag.records import RegressionSummary
from labeldiag.catalogue import MEAN_PREDICTOR, TARGETS_UNSCALED


def mean_predictor(r: RegressionSummary) -> list[Finding]:
    """R² <= 0, a spread far below the targets', and no rank information (permutation test)."""
    if r.examples < T.MIN_LABELLED or r.target_std == 0 or math.isnan(r.r2):
        return []
    ratio = r.prediction_std / r.target_std
    if r.r2 > 0 or ratio >= T.REGRESSION_MEAN_STD_RATIO or r.spearman_p < T.ALPHA:
        return []
    return [Finding(
        MEAN_PREDICTOR,
        f"the predictions carry no information about the target on {r.examples} examples: R² {r.r2:.3g}, "
        f"prediction std {r.prediction_std:.3g} vs target std {r.target_std:.3g} (ratio {ratio:.2g}), Spearman "
        f"{0.0 if r.spearman is None else r.spearman:.2f} (permutation test, {r.permutations} shuffles: "
        f"p {r.spearman_p:.2g}); mean prediction {r.prediction_mean:.3g}, mean target {r.target_mean:.3g}",
        {"examples": r.examples, "r2": r.r2, "std_ratio": ratio, "allowed_min_std_ratio": T.REGRESSION_MEAN_STD_RATIO,
         "spearman": r.spearman, "p_value": r.spearman_p, "test": "Spearman permutation test",
         "permutations": r.permutations, "prediction_mean": r.prediction_mean, "target_mean": r.target_mean},
    )]


def targets_unscaled(r: RegressionSummary) -> list[Finding]:
    """Targets whose root mean square (the MSE of a head at 0) is far above 1."""
    if r.examples < T.MIN_LABELLED or r.target_rms <= T.REGRESSION_TARGET_RMS_MAX:
        return []
    return [Finding(
        TARGETS_UNSCALED,
        f"the targets have mean {r.target_mean:.3g} and std {r.target_std:.3g} on {r.examples} examples: a head "
        f"starting near 0 begins at MSE ~{r.target_rms ** 2:.3g}, {r.target_rms ** 2:.0f}x the loss of "
        "standardised targets",
        {"examples": r.examples, "target_mean": r.target_mean, "target_std": r.target_std,
         "target_rms": r.target_rms, "allowed_rms": T.REGRESSION_TARGET_RMS_MAX,
         "test": "root mean square of the targets"},
    )]
