"""Task shapes beyond single-label: the shape record, gold labels per shape, and per-shape prediction
summaries computed from plain numbers (no torch). Detecting the shape and reading gold labels from the
user's data live in labeldiag.shapes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TASKS = ("single-label", "multi-label", "regression", "pairwise", "token")
# the loss transformers picks for each problem_type, and the task each one trains
PROBLEM_TYPE_TASK = {"single_label_classification": "single-label", "multi_label_classification": "multi-label",
                     "regression": "regression"}
TASK_PROBLEM_TYPE = {"single-label": "single_label_classification", "multi-label": "multi_label_classification",
                     "regression": "regression"}
# a multi-label prediction is a label whose sigmoid probability reaches this (transformers' and sklearn's default)
MULTILABEL_THRESHOLD = 0.5
# the regression figure scatters at most this many examples (the JSON carries them)
FIGURE_POINTS = 400


@dataclass(frozen=True)
class TaskShape:
    """What the model is asked to do, and how that is known."""

    kind: str  # one of TASKS
    source: str  # "--task", "labels" or "config"
    reason: str  # what showed it, e.g. "the labels are multi-hot vectors"

    @property
    def from_evidence(self) -> bool:
        """True when the data or the user says what the task is, not only the config."""
        return self.source in ("--task", "labels")


@dataclass(frozen=True)
class MultiLabelGold:
    matrix: np.ndarray  # [N, K] int8, 1 where example n has label k
    names: tuple[str, ...]  # K label names in head order


@dataclass(frozen=True)
class RegressionGold:
    targets: np.ndarray  # [N] float64


@dataclass(frozen=True)
class PairGold:
    """Preference pairs: example i's chosen text is text i, its rejected text is text pairs + i."""

    pairs: int


@dataclass(frozen=True)
class PairwiseSummary:
    pairs: int
    accuracy: float  # share of pairs whose chosen text scores higher (ties count half)
    preferred: int  # pairs with chosen > rejected
    ties: int
    binomial_p: float  # one-sided: P(X >= preferred) with X ~ Bin(pairs - ties, 1/2)
    margin_mean: float
    margin_std: float
    margin_quantiles: tuple[float, ...]  # 5, 25, 50, 75, 95 %
    bradley_terry_loss: float  # mean -log sigmoid(chosen - rejected)
    score_mean: float
    score_std: float  # across every scored text, chosen and rejected
    margin_histogram: tuple[tuple[float, ...], tuple[int, ...]]  # (edges, counts) for the figure


@dataclass(frozen=True)
class LabelScore:
    """One label of a multi-label head."""

    name: str
    support: int  # gold positives
    predicted: int  # examples predicted positive at the threshold
    f1: float | None
    auroc: float | None  # None without both positives and negatives
    auroc_p: float | None  # two-sided Mann-Whitney (normal approximation) against AUROC 0.5


@dataclass(frozen=True)
class MultiLabelSummary:
    examples: int
    threshold: float
    labels: tuple[LabelScore, ...]
    micro_f1: float | None
    macro_f1: float | None
    subset_accuracy: float | None
    gold_per_example: float | None
    predicted_per_example: float
    labelled_examples: int  # examples with at least one gold label
    labelled_without_prediction: int  # ... of which get no label at the threshold
    distinct_predicted_sets: int
    max_probability_std: float  # largest std across inputs of one label's probability
    auroc_matrix: tuple[tuple[float | None, ...], ...] | None  # [gold label][logit]
    auroc_matrix_min_p: float | None  # smallest two-sided p over the matrix's testable cells
    testable_cells: int


@dataclass(frozen=True)
class RegressionSummary:
    examples: int
    r2: float
    pearson: float | None
    spearman: float | None
    spearman_p: float  # permutation test, two-sided
    permutations: int
    mse: float
    target_mean: float
    target_std: float
    target_rms: float
    prediction_mean: float
    prediction_std: float
    # the targets in up to 10 quantile bins: (mean target, mean prediction) per bin, for the figure
    binned: tuple[tuple[float, float], ...]
    # up to FIGURE_POINTS (target, prediction) pairs, evenly spaced over the examples, for the scatter
    points: tuple[tuple[float, float], ...] = ()


# --- summaries ------------------------------------------------------------------------------------

def sigmoid(x: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(x.astype(np.float64))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..N of each column, ties sharing their mean rank."""
    values = values.reshape(len(values), -1)
    out = np.empty(values.shape, dtype=np.float64)
    for j in range(values.shape[1]):
        column = values[:, j]
        order = np.argsort(column, kind="mergesort")
        sorted_values = column[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1]
        ends = np.r_[starts[1:], len(column)]
        mean_rank = (starts + ends + 1) / 2.0  # ranks start+1 .. end, averaged
        ranks = np.repeat(mean_rank, ends - starts)
        out[order, j] = ranks
    return out


def auroc_table(gold: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROC of every score column for every gold column ([K gold, K scores]) and its two-sided
    Mann-Whitney p-value (normal approximation, no tie correction); NaN where a gold column lacks
    positives or negatives."""
    from scipy.special import ndtr

    n = len(gold)
    ranks = average_ranks(scores)
    pos = gold.sum(0).astype(np.float64)
    neg = n - pos
    rank_sums = gold.T.astype(np.float64) @ ranks  # [K gold, K scores]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = rank_sums - (pos * (pos + 1) / 2)[:, None]
        auc = u / (pos * neg)[:, None]
        sd = np.sqrt(pos * neg * (n + 1) / 12.0)[:, None]
        z = (u - (pos * neg / 2)[:, None]) / sd
        p = 2 * ndtr(-np.abs(z))
    bad = (pos == 0) | (neg == 0)
    auc[bad] = np.nan
    p[bad] = np.nan
    return auc, p


def _f1(tp: float, fp: float, fn: float) -> float | None:
    return 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) > 0 else None


def summarize_multilabel(logits: np.ndarray, gold: np.ndarray | None, names: list[str],
                         min_support: int) -> MultiLabelSummary:
    """Per-label and overall scores of sigmoid probabilities at MULTILABEL_THRESHOLD."""
    probs = sigmoid(logits)
    pred = probs >= MULTILABEL_THRESHOLD
    k = logits.shape[1]
    sets = {row.tobytes() for row in np.packbits(pred, axis=1)}
    common = dict(examples=len(logits), threshold=MULTILABEL_THRESHOLD,
                  predicted_per_example=float(pred.sum(1).mean()) if len(pred) else 0.0,
                  distinct_predicted_sets=len(sets),
                  max_probability_std=float(probs.std(0).max()) if len(probs) else 0.0)
    if gold is None:
        scores = tuple(LabelScore(names[i], 0, int(pred[:, i].sum()), None, None, None) for i in range(k))
        return MultiLabelSummary(labels=scores, micro_f1=None, macro_f1=None, subset_accuracy=None,
                                 gold_per_example=None, labelled_examples=0, labelled_without_prediction=0,
                                 auroc_matrix=None, auroc_matrix_min_p=None, testable_cells=0, **common)
    g = gold.astype(bool)
    auc, p = auroc_table(g, logits)
    tp, fp, fn = (g & pred).sum(0), (~g & pred).sum(0), (g & ~pred).sum(0)
    scores = tuple(LabelScore(names[i], int(g[:, i].sum()), int(pred[:, i].sum()), _f1(tp[i], fp[i], fn[i]),
                              None if np.isnan(auc[i, i]) else float(auc[i, i]),
                              None if np.isnan(p[i, i]) else float(p[i, i])) for i in range(k))
    per_label_f1 = [s.f1 for s in scores if s.support > 0 and s.f1 is not None]
    labelled = g.any(1)
    support, negatives = g.sum(0), len(g) - g.sum(0)
    testable = (support >= min_support) & (negatives >= min_support)
    cells = p[testable]
    return MultiLabelSummary(
        labels=scores, micro_f1=_f1(tp.sum(), fp.sum(), fn.sum()),
        macro_f1=float(np.mean(per_label_f1)) if per_label_f1 else None,
        subset_accuracy=float((pred == g).all(1).mean()), gold_per_example=float(g.sum(1).mean()),
        labelled_examples=int(labelled.sum()), labelled_without_prediction=int((labelled & ~pred.any(1)).sum()),
        auroc_matrix=tuple(tuple(None if np.isnan(v) else float(v) for v in row) for row in auc),
        auroc_matrix_min_p=float(np.nanmin(cells)) if cells.size and not np.isnan(cells).all() else None,
        testable_cells=int(cells.size), **common)


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    sx, sy = x.std(), y.std()
    if sx == 0 or sy == 0:
        return None
    return float(((x - x.mean()) * (y - y.mean())).mean() / (sx * sy))


def rank_permutation_p(x: np.ndarray, y: np.ndarray, resamples: int, seed: int) -> float:
    """Two-sided permutation p-value of the Spearman correlation (shuffling y's ranks)."""
    rx = average_ranks(x)[:, 0]
    ry = average_ranks(y)[:, 0]
    rx, ry = rx - rx.mean(), ry - ry.mean()
    if not rx.any() or not ry.any():
        return 1.0
    observed = abs(float(rx @ ry))
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, resamples, 250):  # chunks bound the memory at 250 x N
        size = min(250, resamples - start)
        shuffled = np.stack([rng.permutation(ry) for _ in range(size)])
        hits += int((np.abs(shuffled @ rx) >= observed - 1e-9).sum())
    return (hits + 1) / (resamples + 1)


def summarize_regression(predictions: np.ndarray, targets: np.ndarray, resamples: int,
                         seed: int) -> RegressionSummary:
    pred = predictions.astype(np.float64)
    y = targets.astype(np.float64)
    residual = float(((y - pred) ** 2).sum())
    spread = float(((y - y.mean()) ** 2).sum())
    spearman = _pearson(average_ranks(pred)[:, 0], average_ranks(y)[:, 0])
    return RegressionSummary(
        examples=len(y), r2=1 - residual / spread if spread > 0 else float("nan"), pearson=_pearson(pred, y),
        spearman=spearman, spearman_p=rank_permutation_p(pred, y, resamples, seed), permutations=resamples,
        mse=residual / len(y), target_mean=float(y.mean()), target_std=float(y.std()),
        target_rms=float(np.sqrt((y ** 2).mean())), prediction_mean=float(pred.mean()),
        prediction_std=float(pred.std()), binned=_binned(y, pred),
        points=tuple((float(y[i]), float(pred[i])) for i in np.unique(np.linspace(0, len(y) - 1, FIGURE_POINTS,
                                                                                     dtype=np.int64))))


def _binned(y: np.ndarray, pred: np.ndarray, bins: int = 10) -> tuple[tuple[float, float], ...]:
    order = np.argsort(y, kind="stable")
    return tuple((float(y[part].mean()), float(pred[part].mean()))
                 for part in np.array_split(order, min(bins, len(y))) if part.size)


def summarize_pairwise(chosen: np.ndarray, rejected: np.ndarray) -> PairwiseSummary:
    from scipy.special import bdtrc, log_expit

    c, r = chosen.astype(np.float64), rejected.astype(np.float64)
    margin = c - r
    preferred, ties = int((margin > 0).sum()), int((margin == 0).sum())
    untied = len(margin) - ties
    p = float(bdtrc(preferred - 1, untied, 0.5)) if preferred and untied else 1.0
    scores = np.concatenate([c, r])
    return PairwiseSummary(
        pairs=len(margin), accuracy=(preferred + ties / 2) / len(margin), preferred=preferred, ties=ties,
        binomial_p=p, margin_mean=float(margin.mean()), margin_std=float(margin.std()),
        margin_quantiles=tuple(float(q) for q in np.percentile(margin, [5, 25, 50, 75, 95])),
        bradley_terry_loss=float(-log_expit(margin).mean()), score_mean=float(scores.mean()),
        score_std=float(scores.std()), margin_histogram=_histogram(margin))


def _histogram(values: np.ndarray, bins: int = 20) -> tuple[tuple[float, ...], tuple[int, ...]]:
    counts, edges = np.histogram(values, bins=bins if np.ptp(values) > 0 else 1)
    return tuple(float(e) for e in edges), tuple(int(c) for c in counts)
