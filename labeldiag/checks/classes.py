"""Per-class verdicts on a single-label head: classes it never predicts, minority classes it ignores.

Both read the same per-class counts (support, predictions, hits) and each states its binomial test.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeldiag import thresholds as T
from labeldiag.findings import Finding
from labeldiag.catalogue import CLASSES_NEVER_PREDICTED, MINORITY_CLASSES_IGNORED


@dataclass(frozen=True)
class ClassCounts:
    """Support (gold), predictions and correct predictions per class, over n labelled examples."""

    n: int
    support: np.ndarray
    predicted: np.ndarray
    hits: np.ndarray

    @property
    def recall(self) -> np.ndarray:
        return np.divide(self.hits, self.support, out=np.zeros(len(self.support)), where=self.support > 0)


def class_counts(logits: np.ndarray, gold: np.ndarray) -> ClassCounts:
    c = logits.shape[1]
    pred = logits.argmax(1)
    return ClassCounts(n=int(len(gold)), support=np.bincount(gold, minlength=c)[:c],
                       predicted=np.bincount(pred, minlength=c)[:c],
                       hits=np.bincount(gold[pred == gold], minlength=c)[:c])


def _at_most(k: int, trials: int, p: float) -> float:
    """Binomial P(X <= k) for X ~ Bin(trials, p)."""
    from scipy import special

    return float(special.bdtr(k, trials, p)) if trials > 0 else 1.0


def _ignored(counts: ClassCounts) -> list[tuple[int, float]]:
    """Classes whose recall is near zero and significantly below MINORITY_NULL_RECALL: (class, p-value)."""
    out = []
    for k in np.flatnonzero(counts.support >= T.CLASS_MIN_SUPPORT):
        s, hits = int(counts.support[k]), int(counts.hits[k])
        if hits / s <= T.CLASS_MAX_RECALL:
            p = _at_most(hits, s, T.CLASS_NULL_RECALL)
            if p < T.ALPHA:
                out.append((int(k), p))
    return out


def _others_fine(counts: ClassCounts, failed: set[int]) -> float | None:
    """Support-weighted recall of the classes not failed, when it is at least CLASS_OTHERS_MIN_RECALL."""
    rest = [k for k in np.flatnonzero(counts.support > 0) if k not in failed]
    if not rest:
        return None
    recall = float(counts.hits[rest].sum() / counts.support[rest].sum())
    return recall if recall >= T.CLASS_OTHERS_MIN_RECALL else None


def _minorities(counts: ClassCounts, classes: list[int]) -> bool:
    return all(counts.support[k] <= T.MINORITY_MAX_SUPPORT_RATIO * counts.support.max() for k in classes)


def classes_never_predicted(counts: ClassCounts, names: list[str]) -> list[Finding]:
    """Classes with support that the model (almost) never predicts, on data where they are not minorities.

    Test per class k (support s_k of n): H0 "the model predicts k at least half as often as it occurs",
    predictions of k ~ Bin(n, s_k / (2n)); one-sided P(X <= predicted_k) < ALPHA, and predicted_k at most
    CLASS_MAX_PREDICTED_RATIO x s_k. Imbalanced data whose failed classes are all minorities is
    minority-classes-ignored's verdict instead.
    """
    failed = [k for k, _ in _ignored(counts)]
    if not failed or _minorities(counts, failed) or _others_fine(counts, set(failed)) is None:
        return []
    rows = []
    for k in failed:
        s, made = int(counts.support[k]), int(counts.predicted[k])
        if made > T.CLASS_MAX_PREDICTED_RATIO * s:
            continue
        p = _at_most(made, counts.n, 0.5 * s / counts.n)
        if p < T.ALPHA:
            rows.append({"class": names[k], "support": s, "predicted": made, "p_value": p})
    if not rows:
        return []
    test = "one-sided binomial test, predictions of the class vs half its support share"
    listed = ", ".join(f"'{r['class']}' ({r['predicted']} predicted, {r['support']} gold)" for r in rows)
    return [Finding(
        CLASSES_NEVER_PREDICTED,
        f"{len(rows)} class{'es' if len(rows) > 1 else ''} with support {'are' if len(rows) > 1 else 'is'} (almost) "
        f"never predicted: {listed} ({test}: p <= {max(r['p_value'] for r in rows):.2g}, N = {counts.n})",
        {"classes": rows, "test": test, "alpha": T.ALPHA, "n": counts.n,
         "max_predicted_ratio": T.CLASS_MAX_PREDICTED_RATIO},
    )]


def minority_classes_ignored(counts: ClassCounts, names: list[str]) -> list[Finding]:
    """Minority classes whose recall is near zero while the other classes are recalled well.

    Test per class k with support s_k >= CLASS_MIN_SUPPORT: H0 "recall >= CLASS_NULL_RECALL",
    hits ~ Bin(s_k, CLASS_NULL_RECALL); one-sided P(X <= hits_k) < ALPHA and recall <= CLASS_MAX_RECALL.
    Every such class must be a minority (support <= MINORITY_MAX_SUPPORT_RATIO x the largest class's)
    and the other classes' recall at least CLASS_OTHERS_MIN_RECALL.
    """
    failed = _ignored(counts)
    if not failed or not _minorities(counts, [k for k, _ in failed]):
        return []
    others = _others_fine(counts, {k for k, _ in failed})
    if others is None:
        return []
    test = f"one-sided binomial test of the class's recall against {T.CLASS_NULL_RECALL:g}"
    rows = [{"class": names[k], "support": int(counts.support[k]), "recall": float(counts.recall[k]),
             "predicted": int(counts.predicted[k]), "p_value": p} for k, p in failed]
    largest = int(counts.support.argmax())
    listed = ", ".join(f"'{r['class']}' (recall {r['recall']:.0%} of {r['support']})" for r in rows)
    return [Finding(
        MINORITY_CLASSES_IGNORED,
        f"minority class{'es' if len(rows) > 1 else ''} {listed} {'are' if len(rows) > 1 else 'is'} almost never "
        f"recognised while the other classes are ({others:.0%} recall; '{names[largest]}' holds "
        f"{counts.support[largest]} of {counts.n}) ({test}: p <= {max(r['p_value'] for r in rows):.2g})",
        {"classes": rows, "others_recall": others, "largest_class": names[largest], "test": test,
         "alpha": T.ALPHA, "n": counts.n, "null_recall": T.CLASS_NULL_RECALL, "max_recall": T.CLASS_MAX_RECALL},
    )]
