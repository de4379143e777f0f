"""Does another label mapping explain the model? label-permutation against predictions-weakly-informative.

A model whose label names are permuted is right under the other names: the best mapping's accuracy is
far above chance and about what its own confidence (mean max probability) claims, as for any trained
head. A damaged model (scrambled weights, a re-initialised head) also has a best mapping that beats the
identity, but it leaves most examples wrong or disagrees with the model's confidence: renaming labels
repairs nothing there, the weights are the problem.
"""
from __future__ import annotations

import numpy as np

from labeldiag import thresholds as T
from labeldiag.findings import Finding
from labeldiag.catalogue import LABEL_PERMUTATION, PREDICTIONS_WEAKLY_INFORMATIVE


def identity_test(table: np.ndarray, mapping: np.ndarray) -> tuple[int, int, float]:
    """Exact one-sided McNemar test: are more examples right under the mapping than under the identity?

    Only examples the two disagree on count: `better` are right under the mapping alone, `worse` under
    the identity alone; if the mapping were no better, better ~ Bin(better + worse, 1/2).
    """
    from scipy import special

    moved = np.flatnonzero(mapping != np.arange(len(mapping)))
    better = int(table[mapping[moved], moved].sum())
    worse = int(table[moved, moved].sum())
    p_value = float(special.bdtrc(better - 1, better + worse, 0.5)) if better else 1.0
    return better, worse, p_value


def cohens_kappa(table: np.ndarray, mapping: np.ndarray) -> float:
    """Agreement of the mapped predictions with the gold labels beyond what both marginals give by chance.

    Chance uses the gold and the predicted class shares, so a skewed label set (70 % one class) does not
    make a swapped binary model look uninformative, as a kappa over the majority share would.
    """
    n = table.sum()
    observed = table[mapping, np.arange(table.shape[1])].sum() / n
    expected = float((table.sum(1)[mapping] * table.sum(0)).sum() / n**2)
    return float((observed - expected) / (1 - expected)) if expected < 1 else 0.0


def judge_mapping(table: np.ndarray, mapping: np.ndarray, confidence: float, names: list[str],
                  dependence: dict) -> list[Finding]:
    """label-permutation when the best mapping beats the identity and explains the model, else
    predictions-weakly-informative when a mapping helps without explaining it or accuracy falls far below
    the model's confidence. `table` is gold x predicted with a significant dependence (`dependence`: its test)."""
    n = int(table.sum())
    c = table.shape[1]
    identity_acc = float(np.trace(table) / n)
    mapped_acc = float(table[mapping, np.arange(c)].sum() / n)
    majority = float(table.sum(1).max() / n)
    kappa = cohens_kappa(table, mapping)
    better, worse, p_identity = identity_test(table, mapping)
    beats_identity = mapped_acc - identity_acc >= T.PERMUTATION_MIN_GAIN and p_identity < T.ALPHA
    far_above_chance = kappa >= T.PERMUTATION_MIN_KAPPA
    # a trained head is calibrated or over-confident; a random one is far less confident than it is right
    as_confident = -T.PERMUTATION_MAX_OVERCONFIDENCE <= mapped_acc - confidence <= T.PERMUTATION_MAX_UNDERCONFIDENCE
    evidence = {
        "identity_accuracy": identity_acc, "best_accuracy": mapped_acc, "mean_max_probability": confidence,
        "majority_share": majority, "cohens_kappa": kappa,
        "kappa_test": "Cohen's kappa of the mapped predictions against the gold labels (chance from both marginals)",
        "identity_test": "exact one-sided McNemar test, best mapping vs identity on the examples they disagree on",
        "right_only_under_mapping": better, "right_only_as_labelled": worse, "identity_p_value": p_identity,
        "rule": (f"label-permutation when the best mapping gains >= {T.PERMUTATION_MIN_GAIN:g} accuracy over the "
                 f"identity (McNemar p < {T.ALPHA:g}), reaches Cohen's kappa >= "
                 f"{T.PERMUTATION_MIN_KAPPA:g}, and lies between {T.PERMUTATION_MAX_OVERCONFIDENCE:g} below and "
                 f"{T.PERMUTATION_MAX_UNDERCONFIDENCE:g} above the mean max probability"),
        "min_gain": T.PERMUTATION_MIN_GAIN, "min_kappa": T.PERMUTATION_MIN_KAPPA,
        "max_overconfidence": T.PERMUTATION_MAX_OVERCONFIDENCE,
        "max_underconfidence": T.PERMUTATION_MAX_UNDERCONFIDENCE,
        "mapping": {str(i): int(mapping[i]) for i in range(c)},
        "mapping_names": {str(i): names[mapping[i]] for i in range(c)}, **dependence,
    }
    if beats_identity and far_above_chance and as_confident:
        moved = [i for i in range(c) if mapping[i] != i]
        pairs = [f"logit {i} behaves like '{names[mapping[i]]}'" for i in moved[:4]]
        return [permutation_finding(
            f"{', '.join(pairs)}{', ...' if len(moved) > 4 else ''} (accuracy {identity_acc:.1%} as labelled, "
            f"{mapped_acc:.1%} with the best mapping, as the model's mean confidence {confidence:.2f} predicts; "
            f"McNemar p = {p_identity:.2g} against the identity)",
            {**evidence, "suggested_id2label": {str(i): names[mapping[i]] for i in range(c)}},
        )]
    overclaims = confidence - identity_acc >= T.WEAK_MIN_CONFIDENCE_GAP
    if not (beats_identity or overclaims):
        return []
    if beats_identity:
        why = (f"that is too close to chance (Cohen's kappa {kappa:.2f} < {T.PERMUTATION_MIN_KAPPA:g})"
               if not far_above_chance else
               "the model's mean confidence is far from that accuracy, while a trained head under permuted "
               "names is about as accurate under the mapping as it is confident")
        message = (f"the best label mapping reaches {mapped_acc:.1%} (as labelled {identity_acc:.1%}, mean "
                   f"confidence {confidence:.2f}); {why}, so renaming labels would not repair the model")
    else:
        message = (f"accuracy {identity_acc:.1%} is far below the model's mean confidence {confidence:.2f} and no "
                   f"label mapping does better ({mapped_acc:.1%})")
    return [Finding(PREDICTIONS_WEAKLY_INFORMATIVE, message,
                    {**evidence, "confidence_gap": confidence - identity_acc,
                     "confidence_gap_threshold": T.WEAK_MIN_CONFIDENCE_GAP})]


def permutation_finding(message: str, evidence: dict) -> Finding:
    """The one label-permutation finding, for single-label tables and multi-label AUROC matrices alike."""
    return Finding(LABEL_PERMUTATION, message, evidence)


def best_auroc_mapping(auroc: np.ndarray) -> np.ndarray:
    """For each logit (column), the gold label (row) it ranks best: maximum total AUROC assignment; untestable
    cells count as chance (0.5), and ties go to the identity."""
    from scipy.optimize import linear_sum_assignment

    filled = np.where(np.isnan(auroc), 0.5, auroc) + np.eye(*auroc.shape) * 1e-6
    rows, cols = linear_sum_assignment(-filled)
    mapping = np.arange(auroc.shape[1])
    mapping[cols] = rows
    return mapping


def judge_multilabel_mapping(auroc: np.ndarray, support: np.ndarray, examples: int,
                             names: list[str]) -> list[Finding]:
    """label-permutation on a multi-label head: the logits rank other gold labels than their own.

    `auroc` is [gold label, logit] (NaN where a label lacks positives or negatives), `support` the gold
    positives per label. Every logit the best matching moves must rank its new label far above chance
    (one-sided Mann-Whitney, Bonferroni over the moved logits, AUROC >= MULTILABEL_PERMUTATION_MIN_AUROC: a
    trained head, not a random one that happens to lean on a topic), and the moved logits' mean AUROC must
    gain >= MULTILABEL_PERMUTATION_MIN_GAIN over the identity; each moved label needs MULTILABEL_MIN_SUPPORT
    positives and negatives.
    """
    from scipy.special import ndtr

    mapping = best_auroc_mapping(auroc)
    moved = np.flatnonzero(mapping != np.arange(len(mapping)))
    if examples < T.MIN_LABELLED or not moved.size:
        return []
    gold = mapping[moved]
    positives = support[gold].astype(np.float64)
    negatives = examples - positives
    if (positives < T.MULTILABEL_MIN_SUPPORT).any() or (negatives < T.MULTILABEL_MIN_SUPPORT).any():
        return []
    mapped = auroc[gold, moved]
    identity = np.where(np.isnan(auroc[moved, moved]), 0.5, auroc[moved, moved])
    # Mann-Whitney U = AUROC * pos * neg, normal approximation without tie correction, one-sided
    z = (mapped - 0.5) * positives * negatives / np.sqrt(positives * negatives * (examples + 1) / 12.0)
    p_values = ndtr(-z)
    level = T.ALPHA / moved.size
    gain = float(mapped.mean() - identity.mean())
    cells = [{"logit": int(j), "logit_name": names[j], "behaves_like": names[g], "auroc_mapped": float(a),
              "auroc_as_labelled": float(i), "p_value": float(p), "support": int(s)}
             for j, g, a, i, p, s in zip(moved, gold, mapped, identity, p_values, positives)]
    if (gain < T.MULTILABEL_PERMUTATION_MIN_GAIN or mapped.min() < T.MULTILABEL_PERMUTATION_MIN_AUROC
            or p_values.max() >= level):
        return []
    pairs = [f"logit {c['logit']} ranks '{c['behaves_like']}' (AUROC {c['auroc_mapped']:.2f}, as labelled "
             f"{c['auroc_as_labelled']:.2f})" for c in cells[:4]]
    c = len(mapping)
    return [permutation_finding(
        f"{'; '.join(pairs)}{'; ...' if len(cells) > 4 else ''}: the best matching of labels to logits gains "
        f"{gain:.2f} mean AUROC over the names as labelled on {examples} examples (one-sided Mann-Whitney, "
        f"largest p {p_values.max():.2g}, Bonferroni level {level:.2g})",
        {"examples": examples, "moved": cells, "mean_auroc_gain": gain,
         "test": "one-sided Mann-Whitney U of each moved logit against its matched label, Bonferroni over the "
                 "moved logits; matching by maximum total AUROC (linear_sum_assignment)",
         "level": level, "min_gain": T.MULTILABEL_PERMUTATION_MIN_GAIN,
         "min_auroc": T.MULTILABEL_PERMUTATION_MIN_AUROC, "min_support": T.MULTILABEL_MIN_SUPPORT,
         "mapping": {str(i): int(mapping[i]) for i in range(c)},
         "mapping_names": {str(i): names[mapping[i]] for i in range(c)},
         "suggested_id2label": {str(i): names[mapping[i]] for i in range(c)}},
    )]
