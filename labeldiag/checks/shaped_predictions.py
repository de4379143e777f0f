"""check_predictions on multi-label ([N, K] logits with [N, K] multi-hot labels) and regression ([N] or [N, 1]
predictions with real-valued targets) arrays: the same summaries and verdicts as check-logits (issue 19)."""
from __future__ import annotations

import dataclasses

import numpy as np

from labeldiag import thresholds as T
from labeldiag.errors import UsageError
from labeldiag.findings import Report


def judge_multilabel_predictions(logits: np.ndarray, labels: np.ndarray, names: list[str], command: str) -> Report:
    """[N, K] logits (sigmoid per label) against [N, K] multi-hot labels of 0 and 1."""
    from labeldiag.checks.multilabel import multilabel_verdicts
    from labeldiag.records import MULTILABEL_THRESHOLD, summarize_multilabel

    if labels.shape != logits.shape:
        raise UsageError(f"multi-hot labels must have the logits' shape {logits.shape}, got {labels.shape}")
    if not np.isin(labels, (0, 1)).all():
        bad = labels[~np.isin(labels, (0, 1))].ravel()[0]
        raise UsageError(f"multi-hot labels hold only 0 and 1, found {bad}")
    report = _report(command, names, "multi-label", "the labels are [N, K] multi-hot rows like the logits")
    gold = labels.astype(np.int8)
    report.data = {"examples": len(gold), "labelled": True,
                   "label_counts": {name: int(v) for name, v in zip(names, gold.sum(0))}}
    summary = summarize_multilabel(logits, gold, names, T.MULTILABEL_MIN_SUPPORT)
    report.add(multilabel_verdicts(summary))
    report.metrics["multilabel"] = dataclasses.asdict(summary)
    report.metrics["labelled_examples"] = len(gold)
    report.notes.append(f"multi-label: a label is predicted at sigmoid >= {MULTILABEL_THRESHOLD:g}")
    return report


def judge_regression_predictions(predictions: np.ndarray, targets: np.ndarray, command: str) -> Report:
    """[N] predictions (a one-output head) against [N] real-valued targets."""
    from labeldiag.checks.regression import mean_predictor, targets_unscaled
    from labeldiag.records import summarize_regression

    report = _report(command, ["score"], "regression", "the logits have one column")
    n = len(predictions)
    if targets.shape not in ((n,), (n, 1)):
        raise UsageError(f"regression targets must hold one number per prediction ({n}), got shape {targets.shape}")
    if not np.issubdtype(targets.dtype, np.number) or targets.dtype == np.bool_:
        raise UsageError(f"regression targets must be numbers, got dtype {targets.dtype}")
    y = targets.reshape(n).astype(np.float64)
    if not np.isfinite(y).all():
        raise UsageError(f"regression targets hold {int((~np.isfinite(y)).sum())} NaN/inf values; give finite "
                         "numbers")
    if n < 2:
        raise UsageError("regression needs at least 2 predictions and targets")
    summary = summarize_regression(predictions, y, T.REGRESSION_PERMUTATIONS, seed=0)
    report.data = {"examples": n, "labelled": True, "label_counts": {
        "min": round(float(y.min()), 4), "mean": round(float(y.mean()), 4), "max": round(float(y.max()), 4)}}
    report.add(targets_unscaled(summary) + mean_predictor(summary))
    report.metrics["regression"] = dataclasses.asdict(summary)
    report.metrics["labelled_examples"] = n
    return report


def _report(command: str, names: list[str], task: str, why: str) -> Report:
    report = Report(command=command, device="n/a")
    report.model = {"class": None, "num_labels": len(names), "id2label": {str(i): n for i, n in enumerate(names)},
                    "task": task, "task_source": why}
    return report
