"""Verdicts on multi-label heads (sigmoid + BCE), from a MultiLabelSummary."""
from __future__ import annotations

from labeldiag import thresholds as T
from labeldiag.findings import Finding
from labeldiag.records import MultiLabelSummary
from labeldiag.catalogue import LABELS_NEVER_PREDICTED, MULTILABEL_NO_PREDICTIONS, MULTILABEL_PRIOR_COLLAPSE


def multilabel_no_predictions(m: MultiLabelSummary) -> list[Finding]:
    """Most examples with gold labels get no label at the threshold (one-sided binomial test)."""
    from scipy.special import bdtrc

    n, empty = m.labelled_examples, m.labelled_without_prediction
    if n < T.MIN_LABELLED or empty == 0:
        return []
    share = empty / n
    p = float(bdtrc(empty - 1, n, T.MULTILABEL_EMPTY_NULL_SHARE))  # P(X >= empty) under the null share
    if share < T.MULTILABEL_EMPTY_SHARE or p >= T.ALPHA:
        return []
    return [Finding(
        MULTILABEL_NO_PREDICTIONS,
        f"{empty} of {n} examples with gold labels ({share:.0%}) get no label with sigmoid >= {m.threshold:g} "
        f"(binomial test against {T.MULTILABEL_EMPTY_NULL_SHARE:.0%}: p {p:.2g}); predicted labels per example "
        f"{m.predicted_per_example:.2f}, gold {m.gold_per_example:.2f}",
        {"examples_with_labels": n, "without_prediction": empty, "share": share, "threshold": m.threshold,
         "test": "one-sided binomial", "null_share": T.MULTILABEL_EMPTY_NULL_SHARE, "p_value": p,
         "predicted_per_example": m.predicted_per_example, "gold_per_example": m.gold_per_example},
    )]


def multilabel_prior_collapse(m: MultiLabelSummary) -> list[Finding]:
    """The probabilities do not depend on the input: constant across inputs, or no logit ranks any label."""

    if m.examples < T.MIN_LABELLED:
        return []
    if m.max_probability_std < T.MULTILABEL_COLLAPSE_PROB_STD:
        return [Finding(
            MULTILABEL_PRIOR_COLLAPSE,
            f"every label's probability is the same for all {m.examples} inputs (largest std across inputs "
            f"{m.max_probability_std:.2g}); {m.distinct_predicted_sets} distinct predicted label set(s)",
            {"examples": m.examples, "max_probability_std": m.max_probability_std,
             "allowed_min_std": T.MULTILABEL_COLLAPSE_PROB_STD, "distinct_predicted_sets": m.distinct_predicted_sets,
             "test": "spread of each label's probability across inputs"},
        )]
    if m.auroc_matrix is None or not m.testable_cells or m.auroc_matrix_min_p is None:
        return []
    level = T.ALPHA / m.testable_cells
    gaps = [abs(v - 0.5) for row in m.auroc_matrix for v in row if v is not None]
    largest = max(gaps) if gaps else 0.0
    if m.auroc_matrix_min_p < level or largest >= T.MULTILABEL_COLLAPSE_AUROC_GAP:
        return []
    return [Finding(
        MULTILABEL_PRIOR_COLLAPSE,
        f"no logit ranks any gold label better than chance on {m.examples} examples: every AUROC within "
        f"{largest:.2f} of 0.5 (Mann-Whitney over {m.testable_cells} label x logit cells, smallest p "
        f"{m.auroc_matrix_min_p:.2g}, Bonferroni level {level:.2g})",
        {"examples": m.examples, "largest_auroc_gap": largest, "smallest_p": m.auroc_matrix_min_p,
         "cells": m.testable_cells, "level": level, "test": "two-sided Mann-Whitney U, Bonferroni"},
    )]


def labels_never_predicted(m: MultiLabelSummary) -> list[Finding]:
    """Labels with enough support never predicted, while the model does predict other labels."""
    if not any(s.predicted for s in m.labels):
        return []  # nothing is predicted at all: multilabel-no-predictions
    never = [s for s in m.labels if s.predicted == 0 and s.support >= T.MULTILABEL_NEVER_MIN_SUPPORT]
    if not never:
        return []
    shown = ", ".join(f"'{s.name}' (support {s.support}, AUROC {s.auroc:.2f})" if s.auroc is not None
                      else f"'{s.name}' (support {s.support})" for s in never[:5])
    return [Finding(
        LABELS_NEVER_PREDICTED,
        f"{len(never)} label(s) with gold examples are never predicted at sigmoid >= {m.threshold:g} on "
        f"{m.examples} examples: {shown}{', ...' if len(never) > 5 else ''}",
        {"labels": [{"name": s.name, "support": s.support, "auroc": s.auroc} for s in never],
         "examples": m.examples, "threshold": m.threshold, "min_support": T.MULTILABEL_NEVER_MIN_SUPPORT,
         "test": "0 predictions among >= 12 positives: p <= (2/3)^support if 1 in 3 positives were predicted",
         "p_value_bound": max((2 / 3) ** s.support for s in never)},
    )]


def multilabel_verdicts(m: MultiLabelSummary) -> list[Finding]:
    """Every multi-label verdict from one summary (check-logits and check_predictions)."""
    import numpy as np

    from labeldiag.checks.mapping import judge_multilabel_mapping

    findings = multilabel_no_predictions(m) + multilabel_prior_collapse(m) + labels_never_predicted(m)
    if m.auroc_matrix is not None:
        findings += judge_multilabel_mapping(np.array(m.auroc_matrix, dtype=np.float64),
                                             np.array([s.support for s in m.labels]), m.examples,
                                             [s.name for s in m.labels])
    return findings
