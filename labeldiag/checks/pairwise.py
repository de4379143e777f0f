"""Verdicts on single-score heads judged on preference pairs (reward models, rerankers)."""
from __future__ import annotations

from labeldiag import thresholds as T
from labeldiag.findings import Finding
from labeldiag.records import PairwiseSummary
from labeldiag.catalogue import PAIRWISE_CHANCE, SCORE_COLLAPSE


def score_collapse(p: PairwiseSummary) -> list[Finding]:
    """Nearly the same score for every text, chosen or rejected."""
    if p.pairs < 2 or p.score_std >= T.SCORE_COLLAPSE_MAX_STD:
        return []
    return [Finding(
        SCORE_COLLAPSE,
        f"the head gives nearly the same score to all {2 * p.pairs} texts: std {p.score_std:.2g} around "
        f"{p.score_mean:.3g} (below {T.SCORE_COLLAPSE_MAX_STD:g}); the Bradley-Terry loss is "
        f"{p.bradley_terry_loss:.3f}, ln 2 = 0.693",
        {"texts": 2 * p.pairs, "score_std": p.score_std, "score_mean": p.score_mean,
         "allowed_min_std": T.SCORE_COLLAPSE_MAX_STD, "bradley_terry_loss": p.bradley_terry_loss,
         "test": "spread of the scores across inputs"},
    )]


def pairwise_chance(p: PairwiseSummary) -> list[Finding]:
    """The chosen text is not scored above the rejected one more often than chance (one-sided binomial)."""
    if p.pairs < T.PAIRWISE_MIN_PAIRS or p.binomial_p < T.ALPHA:
        return []
    return [Finding(
        PAIRWISE_CHANCE,
        f"the chosen text scores higher in {p.preferred} of {p.pairs} pairs ({p.accuracy:.1%}, {p.ties} ties): "
        f"not more often than chance (one-sided binomial test: p {p.binomial_p:.2g}); median margin "
        f"{p.margin_quantiles[2]:.3g}",
        {"pairs": p.pairs, "preferred": p.preferred, "ties": p.ties, "accuracy": p.accuracy,
         "p_value": p.binomial_p, "test": "one-sided binomial against 1/2", "margin_mean": p.margin_mean},
    )]
