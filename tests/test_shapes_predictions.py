"""check_predictions on multi-hot labels and real-valued targets (issue 19): the shape's verdicts from arrays alone,
a healthy head getting none, and bad arrays refused with one line."""
from __future__ import annotations

import numpy as np
import pytest

NAMES = ["sport", "politics", "tech", "food"]


def multilabel_arrays(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Multi-hot labels with one or two labels per example and logits that separate them (AUROC ~0.97)."""
    rng = np.random.default_rng(seed)
    gold = np.zeros((n, len(NAMES)), dtype=np.int64)
    for row in gold:
        row[rng.choice(len(NAMES), size=rng.integers(1, 3), replace=False)] = 1
    logits = np.where(gold == 1, 2.5, -2.5) + rng.normal(0, 1.2, size=gold.shape)
    return logits, gold


def test_healthy_multilabel_predictions_get_metrics_and_no_finding():
    from labeldiag import check_predictions

    logits, gold = multilabel_arrays()
    report = check_predictions(logits, gold, NAMES)
    assert report.findings == [] and report.model["task"] == "multi-label"
    m = report.metrics["multilabel"]
    assert m["micro_f1"] > 0.8 and [s["name"] for s in m["labels"]] == NAMES
    assert report.data["label_counts"]["sport"] == int(gold[:, 0].sum())


@pytest.mark.parametrize("plant,code", [
    (lambda x: x[:, [1, 0, 2, 3]], "label-permutation"),
    (lambda x: x - 9.0, "multilabel-no-predictions"),
    (lambda x: np.tile(x.mean(0), (len(x), 1)), "multilabel-prior-collapse"),
    (lambda x: np.column_stack([x[:, :3], x[:, 3] - 12.0]), "labels-never-predicted"),
], ids=["columns-swapped", "all-below-threshold", "same-for-every-input", "one-label-suppressed"])
def test_planted_multilabel_defect_is_found_from_arrays(plant, code):
    import torch

    from labeldiag import check_predictions

    logits, gold = multilabel_arrays()
    report = check_predictions(torch.tensor(plant(logits)), torch.tensor(gold, dtype=torch.float32), NAMES)
    assert report.has(code), [f.code for f in report.findings]
    if code == "label-permutation":
        found = next(f for f in report.findings if f.code == "label-permutation")
        assert found.evidence["suggested_id2label"] == {"0": "politics", "1": "sport", "2": "tech", "3": "food"}


def regression_arrays(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    targets = rng.normal(0, 1, size=n)
    return targets + rng.normal(0, 0.4, size=n), targets


@pytest.mark.parametrize("shape", [(300,), (300, 1)], ids=["[N]", "[N,1]"])
def test_healthy_regression_predictions_get_metrics_and_no_finding(shape):
    from labeldiag import check_predictions

    predictions, targets = regression_arrays()
    report = check_predictions(predictions.reshape(shape), targets)
    assert report.findings == [] and report.model["task"] == "regression"
    assert report.metrics["regression"]["r2"] > 0.7


def test_planted_regression_defects_are_found_from_arrays():
    from labeldiag import check_predictions

    predictions, targets = regression_arrays()
    mean_only = np.full_like(targets, targets.mean()) + np.random.default_rng(1).normal(0, 0.01, len(targets))
    assert check_predictions(mean_only[:, None], targets).has("mean-predictor")
    assert check_predictions(predictions * 3 + 20, targets * 3 + 20).has("targets-unscaled")


@pytest.mark.parametrize("logits,labels,message", [
    (np.zeros((5, 3)), np.zeros((5, 2)), "the logits' shape"),
    (np.zeros((5, 3)), np.full((5, 3), 2), "only 0 and 1"),
    (np.zeros((5, 3)), np.full((5, 3), np.nan), "only 0 and 1"),
    (np.zeros(5), np.array([1.0, np.nan, 0, 1, 2]), "NaN/inf"),
    (np.zeros((5, 1)), np.zeros(4), "one number per prediction"),
    (np.zeros(5), np.array(["a", "b", "c", "d", "e"]), "must be numbers"),
], ids=["multi-hot-wrong-width", "multi-hot-not-0-1", "multi-hot-nan", "target-nan", "target-count", "target-text"])
def test_bad_shaped_arrays_are_refused(logits, labels, message):
    from labeldiag import UsageError, check_predictions

    with pytest.raises(UsageError, match=message) as raised:
        check_predictions(logits, labels)
    assert "\n" not in str(raised.value)


def test_callback_judges_multi_hot_evaluation_batches():
    """The evaluation's [B, K] logits with [B, K] multi-hot labels reach the multi-label verdicts."""
    import torch

    from labeldiag import LabelDiagCallback

    logits, gold = multilabel_arrays()
    cb = LabelDiagCallback(verbose=False)
    swapped = torch.tensor(logits[:, [1, 0, 2, 3]], dtype=torch.float32)
    cb._captured = [(swapped[i:i + 100], torch.tensor(gold[i:i + 100], dtype=torch.float32)) for i in range(0, 400, 100)]
    report = cb._judge_evaluation(model=None)
    assert report.model["task"] == "multi-label" and report.has("label-permutation")
