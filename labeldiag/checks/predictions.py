"""Prediction-level checks on logits and labels that came from anywhere (numpy, torch, lists).

The path for Lightning or plain PyTorch users, and for the Trainer callback's evaluations: no
model, no forward pass, only the arrays.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from labeldiag.errors import UsageError
from labeldiag.findings import Report
from labeldiag.catalogue import CONSTANT_PREDICTIONS


def as_array(x: Any, what: str) -> np.ndarray:
    """numpy from a torch tensor (any device, bf16 too), a list or an array; never imports torch."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().float().cpu().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as exc:
        raise UsageError(f"{what} cannot be read as an array ({type(exc).__name__}: {exc})") from None


def class_names(id2label: dict | list | tuple | None, c: int) -> list[str]:
    if id2label is None:
        return [f"LABEL_{i}" for i in range(c)]
    if isinstance(id2label, (list, tuple)):
        names = [str(v) for v in id2label]
    elif isinstance(id2label, dict):
        try:
            names = [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(c)]
        except AttributeError:
            raise UsageError("id2label must map class index -> name") from None
    else:
        raise UsageError(f"id2label must be a dict or a list of names, got {type(id2label).__name__}")
    if len(names) < c:
        raise UsageError(f"id2label names {len(names)} classes but logits have {c} columns")
    return names[:c]


def prediction_findings(report: Report, logits: np.ndarray, gold: np.ndarray | None, names: list[str]) -> None:
    """Add the verdicts and metrics of check-logits that need only logits and gold labels."""
    from labeldiag.checks.logits import metrics
    from labeldiag.findings import plain
    from labeldiag.records import LogitsSummary

    from labeldiag.checks import judge_into

    judge_into(report, prediction_checks(logits, gold, names, report))
    if logits.shape[1] >= 2:
        report.attach(LogitsSummary.from_metrics(plain(metrics(logits, gold, names))))
        if gold is not None:
            report.metrics["labelled_examples"] = int(len(gold))


def prediction_checks(logits: np.ndarray, gold: np.ndarray | None, names: list[str], report: Report):
    """The (check, inputs) pairs that judge predictions: with gold labels, label-permutation / constant / random
    predictions, the per-class verdicts and the logit scale; without, the logit scale alone. class_findings
    reads `report`, so the pairs are judged in order, each one's findings added before the next runs."""
    from labeldiag.checks.logits import check_logit_scale, check_predictions

    if logits.shape[1] < 2:
        return
    if gold is not None:
        yield check_predictions, logits, gold, names
        yield class_findings, logits, gold, names, report
    yield check_logit_scale, logits, gold


def class_findings(logits: np.ndarray, gold: np.ndarray, names: list[str], report: Report) -> list:
    """Per-class verdicts (issue 20), unless the predictions already collapsed into one class."""
    from labeldiag.checks.classes import class_counts, classes_never_predicted, minority_classes_ignored

    if any(f.code == CONSTANT_PREDICTIONS for f in report.findings):
        return []
    counts = class_counts(logits, gold)
    return classes_never_predicted(counts, names) + minority_classes_ignored(counts, names)


def judge_predictions(logits: Any, labels: Any, id2label: dict | list | None, command: str = "check-predictions"
                      ) -> Report:
    arr = as_array(logits, "logits").astype(np.float64)
    if arr.ndim == 3:  # a token classifier's [N, T, C] (issue 22)
        from labeldiag.checks.tokens_tagging import judge_token_predictions

        return judge_token_predictions(arr, None if labels is None else as_array(labels, "labels"),
                                       class_names(id2label, arr.shape[2]), command)
    # issue 19: a one-output head with real-valued targets, or [N, K] logits with multi-hot labels
    if labels is not None and (arr.ndim == 1 or (arr.ndim == 2 and (arr.shape[1] == 1
                                                                     or np.ndim(as_array(labels, "labels")) == 2))):
        return _judge_shaped(arr, labels, id2label, command)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] < 2:
        raise UsageError(f"logits must be a [N, C] array with N >= 1 and C >= 2 classes, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise UsageError(f"logits hold {int((~np.isfinite(arr)).sum())} NaN/inf values; the model's outputs are "
                         "non-finite (run labeldiag grad-flow on the model)")
    names = class_names(id2label, arr.shape[1])
    gold = None
    if labels is not None:
        lab = as_array(labels, "labels")
        if lab.ndim != 1 or lab.shape[0] != arr.shape[0]:
            raise UsageError(f"labels must hold one class index per row of logits ({arr.shape[0]}), got shape "
                             f"{lab.shape}")
        if not np.issubdtype(lab.dtype, np.integer):
            if not (np.issubdtype(lab.dtype, np.floating) and np.all(np.isfinite(lab)) and np.all(lab == np.round(lab))):
                raise UsageError(f"labels must be integer class indices, got dtype {lab.dtype}")
            lab = lab.astype(np.int64)
        if (lab >= arr.shape[1]).any():
            raise UsageError(f"labels hold class {int(lab.max())} but logits have only {arr.shape[1]} columns")
        keep = lab >= 0  # -100 and other negatives are ignored, as by transformers' losses
        arr, gold = arr[keep], lab[keep].astype(np.int64)
        if not len(gold):
            raise UsageError("every label is negative (ignored); give class indices 0..C-1")
    report = Report(command=command, device="n/a")
    report.model = {"class": None, "num_labels": int(arr.shape[1]), "id2label": {str(i): n for i, n in enumerate(names)}}
    report.data = {"examples": int(arr.shape[0]), "labelled": gold is not None,
                   "label_counts": ({names[i]: int(v) for i, v in enumerate(np.bincount(gold, minlength=len(names)))}
                                    if gold is not None else None)}
    prediction_findings(report, arr.astype(np.float32), gold, names)
    return report


def _judge_shaped(arr: np.ndarray, labels: Any, id2label: dict | list | None, command: str) -> Report:
    """Multi-hot labels ([N, K] like the logits) or a one-output head with real-valued targets (issue 19)."""
    from labeldiag.checks.shaped_predictions import judge_multilabel_predictions, judge_regression_predictions

    if arr.shape[0] == 0:
        raise UsageError(f"logits must hold at least one row, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise UsageError(f"logits hold {int((~np.isfinite(arr)).sum())} NaN/inf values; the model's outputs are "
                         "non-finite (run labeldiag grad-flow on the model)")
    if arr.ndim == 1 or arr.shape[1] == 1:
        return judge_regression_predictions(arr.reshape(-1), as_array(labels, "labels"), command)
    return judge_multilabel_predictions(arr, as_array(labels, "labels"), class_names(id2label, arr.shape[1]),
                                        command)
