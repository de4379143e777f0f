"""Checks on logits, predictions and features: mapping, collapse, independence, saturation."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from labeldiag import thresholds as T
from labeldiag.findings import Finding
from labeldiag.catalogue import (
    CONSTANT_PREDICTIONS, INPUT_INDEPENDENT_LOGITS, LOGIT_SATURATION, NONDETERMINISTIC_EVAL, NONFINITE_LOGITS,
    RANDOM_PREDICTIONS, REPRESENTATION_COLLAPSE, SINGLE_CLASS_BATCH, TOO_FEW_EXAMPLES, UNDERCONFIDENT_PREDICTIONS,
    UNIFORM_LOGITS,
)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def confusion(gold: np.ndarray, pred: np.ndarray, c: int) -> np.ndarray:
    m = np.zeros((c, c), dtype=np.int64)
    np.add.at(m, (gold, pred), 1)
    return m


def required_examples(gold_classes: int, predicted_classes: int | None = None) -> int:
    """Labelled examples the independence test needs to detect an effect of size w with the chosen power.

    Chi-square test of independence on the gold-classes x predicted-classes table that the data fills
    (df = (R-1)(C-1)): N = lambda / w^2, where lambda is the noncentrality giving POWER at ALPHA.
    """
    from scipy import special  # scipy.stats would add ~0.5 s of imports to every run for two quantiles

    predicted_classes = gold_classes if predicted_classes is None else predicted_classes
    df = max(1, (gold_classes - 1) * (predicted_classes - 1))
    crit = special.chdtri(df, T.ALPHA)  # the chi-square quantile with ALPHA above it
    lam = special.chndtrinc(crit, df, 1 - T.POWER)  # noncentrality putting POWER of the mass above crit
    return max(T.MIN_LABELLED, math.ceil(lam / T.DETECTABLE_EFFECT_W ** 2))


def constant_test(gold: np.ndarray, pred: np.ndarray, top: int) -> float:
    """One-sided exact McNemar test: is class `top` predicted more often than it is gold, on the same examples?

    Only examples where prediction and gold disagree about `top` count: b predicted `top` but are not,
    c are `top` but were predicted otherwise; under "predictions follow the gold distribution" b ~ Bin(b+c, 1/2).
    """
    from scipy import special

    b = int(((pred == top) & (gold != top)).sum())
    c = int(((pred != top) & (gold == top)).sum())
    if b == 0:
        return 1.0
    return float(special.bdtrc(b - 1, b + c, 0.5))  # P(X >= b)


def constant_examples_needed(gold_share: float) -> int:
    """Examples at which an all-one-class prediction reaches p < ALPHA when that class is gold_share of the labels."""
    discordant = math.ceil(math.log(T.ALPHA) / math.log(0.5) + 1e-9)  # 0.5^b < ALPHA: b = 7 at 1%
    return max(discordant, math.ceil(discordant / max(1.0 - gold_share, 1e-9)))


@dataclass(frozen=True)
class Independence:
    test: str
    statistic: float
    p_value: float
    dof: int
    cramers_v: float
    n: int


def independence_test(table: np.ndarray) -> Independence | None:
    """Chi-square test of independence on the non-empty rows/columns of a contingency table."""
    t = np.ascontiguousarray(table[table.sum(1) > 0][:, table.sum(0) > 0], dtype=np.int64)
    return _independence(t.shape, t.tobytes())


@functools.lru_cache(maxsize=8)  # check-logits asks twice about the same table (mapping and uniform-logits)
def _independence(shape: tuple[int, int], counts: bytes) -> Independence | None:
    from scipy import special

    t = np.frombuffer(counts, dtype=np.int64).reshape(shape)
    n = int(t.sum())
    if t.shape[0] < 2 or t.shape[1] < 2:
        return None
    expected = np.outer(t.sum(1), t.sum(0)) / n
    chi2 = float(((t - expected) ** 2 / expected).sum())
    dof = (t.shape[0] - 1) * (t.shape[1] - 1)
    p, name = float(special.chdtrc(dof, chi2)), "chi-square test of independence"
    if expected.min() < 5:
        # small expected counts: the asymptotic p-value is unreliable, use a permutation p-value
        p = permutation_p_value(t, expected, chi2)
        name = "chi-square test of independence (permutation p-value)"
    v = _corrected_cramers_v(chi2, n, *t.shape)
    return Independence(name, chi2, p, dof, float(v), n)


def permutation_p_value(table: np.ndarray, expected: np.ndarray, chi2: float, resamples: int = 2000) -> float:
    """P(chi-square >= observed) when the gold labels are re-paired with the predictions at random.

    What scipy's chi2_contingency(method=PermutationMethod(2000, random_state=0)) estimates, with all
    resamples computed at once instead of one crosstab each. A random re-pairing is a random table
    with the observed margins: small tables are drawn cell by cell (random_tables), large ones by
    shuffling the N labels, whichever costs less. p = (hits + 1) / (resamples + 1).
    """
    rng = np.random.default_rng(0)
    rows, cols = table.shape
    by_cell = table.size <= CELLWISE_MAX_CELLS
    if not by_cell:
        pairs = np.repeat(np.arange(table.size), table.ravel())
        gold, pred = np.divmod(pairs, cols)  # one (gold row, predicted column) per example
    # resamples per chunk: ~8 MB of tables, and of shuffled labels
    chunk = max(1, min(1_000_000 // table.size, 1_000_000 // max(1, int(table.sum()))))
    hits, done = 0, 0
    while done < resamples:
        k = min(chunk, resamples - done)
        if by_cell:
            tables = random_tables(table.sum(1), table.sum(0), k, rng)
        else:
            codes = rng.permuted(np.tile(gold, (k, 1)), axis=1) * cols + pred + (np.arange(k) * table.size)[:, None]
            tables = np.bincount(codes.ravel(), minlength=k * table.size).reshape(k, rows, cols)
        null = ((tables - expected) ** 2 / expected).sum(axis=(1, 2))
        hits += int((null >= chi2 - abs(chi2) * 1e-12).sum())  # ties with the observed table count as hits
        done += k
    return (hits + 1) / (resamples + 1)


# random_tables loops over cells in Python: cheaper than shuffling N labels up to about this many cells
CELLWISE_MAX_CELLS = 100


def random_tables(row_sums: np.ndarray, col_sums: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k contingency tables with these margins, uniform over the pairings of row and column labels."""
    rows, cols = len(row_sums), len(col_sums)
    left = np.tile(np.asarray(row_sums, dtype=np.int64), (k, 1))  # row labels not yet paired
    tables = np.empty((k, rows, cols), dtype=np.int64)
    for j in range(cols - 1):
        need = np.full(k, int(col_sums[j]), dtype=np.int64)  # column j draws this many without replacement
        others = left.sum(1)
        for i in range(rows - 1):
            others -= left[:, i]
            tables[:, i, j] = rng.hypergeometric(left[:, i], others, need)
            left[:, i] -= tables[:, i, j]
            need -= tables[:, i, j]
        tables[:, rows - 1, j] = need
        left[:, rows - 1] -= need
    tables[:, :, cols - 1] = left
    return tables


def _corrected_cramers_v(chi2: float, n: int, rows: int, cols: int) -> float:
    """Bias-corrected Cramér's V (Bergsma 2013). The plain V of a sparse table is far above 0 under
    independence (3 gold x 27 predicted classes on 300 examples: ~0.29), the corrected one ~0."""
    if n < 2:
        return 0.0
    phi2 = max(0.0, chi2 / n - (rows - 1) * (cols - 1) / (n - 1))
    r = rows - (rows - 1) ** 2 / (n - 1)
    c = cols - (cols - 1) ** 2 / (n - 1)
    k = min(r, c) - 1
    return math.sqrt(phi2 / k) if k > 0 else 0.0


def best_mapping(table: np.ndarray) -> np.ndarray:
    """For each logit (column), the gold label (row) it behaves like: maximum-agreement assignment."""
    from scipy.optimize import linear_sum_assignment

    # ties (e.g. logits no example reaches) go to the identity: the bonus sums to < 1 example
    bonus = np.eye(*table.shape) * (0.5 / max(table.shape))
    rows, cols = linear_sum_assignment(-(table + bonus))
    mapping = np.arange(table.shape[1])
    mapping[cols] = rows
    return mapping


def batch_single_class(gold: np.ndarray, names: list[str]) -> list[Finding]:
    """Every labelled example read is of one class: unshuffled data, and nothing to test or fit."""
    present = np.unique(gold[gold >= 0])
    n = int((gold >= 0).sum())
    if n < T.SINGLE_CLASS_MIN_EXAMPLES or len(present) != 1:
        return []
    name = names[present[0]] if present[0] < len(names) else str(present[0])
    return [Finding(SINGLE_CLASS_BATCH,
                    f"all {n} labelled examples read are '{name}': the data is probably sorted by class, and "
                    "fitting or scoring one class proves nothing",
                    {"examples": n, "class": name})]


def check_predictions(logits: np.ndarray, gold: np.ndarray, names: list[str],
                      max_gold_share: float = T.CONSTANT_MAX_GOLD_SHARE, unit: str = "examples") -> list[Finding]:
    """Label-permutation, constant and random predictions, each with its own test and sample-size need.

    `gold` holds class indices for the labelled examples (rows of `logits` aligned with it). Only the
    classes that occur (gold rows, predicted columns) enter a test: a 27-class head scored on 3 classes
    is a 3 x (classes predicted) table, not 27 x 27.
    """
    n, c = logits.shape
    findings: list[Finding] = []
    if c < 2 or n == 0:
        return findings
    pred = logits.argmax(1)
    present = np.unique(gold)
    findings += batch_single_class(gold, names)
    if len(present) < 2:
        return findings
    pred_counts = np.bincount(pred, minlength=c)
    gold_counts = np.bincount(gold, minlength=c)
    top = int(pred_counts.argmax())
    top_share = pred_counts[top] / n
    gold_share = gold_counts[top] / n
    if top_share >= T.CONSTANT_MIN_SHARE and gold_share <= max_gold_share:
        p_value = constant_test(gold, pred, top)
        test = "exact one-sided McNemar test, predicted vs gold count of that class"
        if p_value < T.ALPHA:
            findings.append(Finding(
                CONSTANT_PREDICTIONS,
                f"{top_share:.0%} of {n} {unit} are predicted '{names[top]}', which is only {gold_share:.0%} of the "
                f"gold labels ({test}: p = {p_value:.2g})",
                {"class": names[top], "predicted_share": top_share, "gold_share": gold_share, "n": n,
                 "test": test, "p_value": p_value, "alpha": T.ALPHA,
                 "prediction_counts": {names[i]: int(pred_counts[i]) for i in range(c) if pred_counts[i]}},
            ))
        else:
            needed = constant_examples_needed(gold_share)
            findings.append(_too_few(
                CONSTANT_PREDICTIONS, n, needed,
                f"{top_share:.0%} of them are predicted '{names[top]}' ({gold_share:.0%} of the gold labels), but "
                f"the {test} needs about {needed} examples to call that constant",
                {"test": test, "p_value": p_value, "class": names[top]}))
        return findings  # independence and mapping are meaningless for a (nearly) constant predictor
    rows, cols = len(present), int(np.count_nonzero(pred_counts))
    if cols < 2:
        return findings  # one class predicted on data skewed towards it: nothing to test
    needed = required_examples(rows, cols)
    test = "chi-square test of independence"
    if n < needed:
        findings.append(_too_few(
            "label-permutation and random-predictions", n, needed,
            f"the {test} on {rows} gold classes x {cols} predicted classes needs {needed} to detect an effect "
            f"of size w = {T.DETECTABLE_EFFECT_W:g} with power {T.POWER:g}",
            {"test": test, "gold_classes": rows, "predicted_classes": cols,
             "dof": (rows - 1) * (cols - 1), "detectable_effect_w": T.DETECTABLE_EFFECT_W, "power": T.POWER}))
        return findings
    table = confusion(gold, pred, c)
    ind = independence_test(table)
    if ind is None:
        return findings
    evidence = {"test": ind.test, "statistic": ind.statistic, "p_value": ind.p_value, "dof": ind.dof,
                "cramers_v": ind.cramers_v, "n": ind.n, "alpha": T.ALPHA, "gold_classes": rows,
                "predicted_classes": cols, "needed": needed}
    identity_acc = float(np.trace(table) / n)
    if ind.p_value < T.ALPHA:
        from labeldiag.checks.mapping import judge_mapping

        confidence = float(softmax(logits.astype(np.float64)).max(1).mean())
        findings += judge_mapping(table, best_mapping(table), confidence, names, evidence)
    elif ind.cramers_v < T.RANDOM_MAX_CRAMERS_V:
        findings.append(Finding(
            RANDOM_PREDICTIONS,
            f"predictions are independent of the gold labels ({ind.test}: p = {ind.p_value:.3g}, "
            f"Cramér's V = {ind.cramers_v:.2f}, N = {ind.n}, {rows} gold x {cols} predicted classes); "
            f"accuracy {identity_acc:.1%}",
            {**evidence, "accuracy": identity_acc, "majority_share": float(gold_counts.max() / n)},
        ))
    return findings


def _too_few(verdict: str, n: int, needed: int, why: str, evidence: dict) -> Finding:
    """too-few-examples for one verdict: which one, its test, and how many examples it needs."""
    return Finding(
        TOO_FEW_EXAMPLES,
        f"{n} labelled examples are too few for the {verdict} verdict{'s' if ' and ' in verdict else ''}: {why}",
        {"verdict": verdict, "labelled": n, "needed": needed, "alpha": T.ALPHA, **evidence},
    )


def check_logit_scale(logits: np.ndarray, gold: np.ndarray | None) -> list[Finding]:
    """uniform-logits from mean entropy vs ln C; logit-saturation from top-2 gaps and the loss."""
    n, c = logits.shape
    out: list[Finding] = []
    if c < 2 or n == 0:
        return out
    p = softmax(logits.astype(np.float64))
    entropy = float(np.mean(-(p * np.log(np.clip(p, 1e-300, 1))).sum(1)))
    ratio = entropy / math.log(c)
    srt = np.sort(logits, axis=1)
    gaps = srt[:, -1] - srt[:, -2]
    median_gap = float(np.median(gaps))
    loss = None
    if gold is not None and len(gold) == n and n:
        logp = logits - logits.max(1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
        loss = float(-logp[np.arange(n), gold].mean())
    informative = None
    if ratio >= T.UNIFORM_MIN_ENTROPY_RATIO and gold is not None and len(gold) == n:
        ind = independence_test(confusion(gold, logits.argmax(1), c))
        informative = ind is not None and ind.p_value < T.ALPHA and ind.cramers_v >= T.RANDOM_MAX_CRAMERS_V
    near_uniform = {"mean_entropy": entropy, "ln_c": math.log(c), "ratio": ratio,
                    "entropy_threshold": T.UNIFORM_MIN_ENTROPY_RATIO, "mean_max_probability": float(p.max(1).mean()),
                    "n": n}
    if ratio >= T.UNIFORM_MIN_ENTROPY_RATIO and informative:
        # near-uniform but right: an under-trained (under-confident) head, or a folded temperature when the
        # probabilities understate the accuracy so much that anyone thresholding them is misled
        pred = logits.argmax(1)
        acc = float(np.mean(pred == gold))
        ece = calibration_error(p.max(1), (pred == gold).astype(float))
        evidence = {**near_uniform, "accuracy": acc, "expected_calibration_error": ece,
                    "ece_threshold": T.UNIFORM_MIN_ECE}
        if ece >= T.UNIFORM_MIN_ECE:
            out.append(Finding(
                UNIFORM_LOGITS,
                f"probabilities are near uniform (mean entropy {ratio:.0%} of ln {c}, mean max probability "
                f"{near_uniform['mean_max_probability']:.2f}) although accuracy is {acc:.1%}: expected calibration "
                f"error {ece:.2f} (threshold {T.UNIFORM_MIN_ECE:g}); the logits look divided by a temperature",
                evidence,
            ))
        else:
            out.append(Finding(
                UNDERCONFIDENT_PREDICTIONS,
                f"predictions are accurate ({acc:.1%}) but their probabilities are near uniform (mean entropy "
                f"{ratio:.0%} of ln {c}, expected calibration error {ece:.2f})",
                evidence,
            ))
    elif ratio >= T.UNIFORM_MIN_ENTROPY_RATIO:
        out.append(Finding(
            UNIFORM_LOGITS,
            f"mean predictive entropy is {entropy:.3f} nats, {ratio:.0%} of the maximum ln {c} = {math.log(c):.3f}",
            near_uniform,
        ))
    saturated_gap = median_gap >= T.SATURATION_MIN_MEDIAN_GAP
    saturated_loss = loss is not None and loss >= T.SATURATION_MIN_LOSS_RATIO * math.log(c) and median_gap >= 10
    if saturated_gap or saturated_loss:
        msg = f"median gap between the top two logits is {median_gap:.1f} (softmax is one-hot)"
        if loss is not None:
            msg += f"; cross-entropy on the gold labels is {loss:.1f} vs ln {c} = {math.log(c):.2f}"
        out.append(Finding(
            LOGIT_SATURATION, msg,
            {"median_top2_gap": median_gap, "max_abs_logit": float(np.abs(logits).max()),
             "loss": loss, "ln_c": math.log(c), "gap_threshold": T.SATURATION_MIN_MEDIAN_GAP, "n": n},
        ))
    return out


def relative_logit_spread(logits: np.ndarray) -> float:
    """Mean per-class standard deviation across inputs, relative to the mean |logit|."""
    return float(np.mean(logits.std(axis=0))) / (float(np.mean(np.abs(logits))) + 1e-6)


def reads_its_input(logits: np.ndarray) -> bool:
    """Logits that move this much across inputs need no blanked-input baseline to show it."""
    return logits.shape[0] < 2 or relative_logit_spread(logits) > T.INPUT_INDEPENDENT_MAX_SPREAD


def check_input_dependence(logits: np.ndarray, blank_logits: np.ndarray | None,
                           same_rows: np.ndarray | None) -> list[Finding]:
    """Logits that barely move across inputs and do not move when the content is blanked out."""
    n, c = logits.shape
    if n < 2:
        return []
    scale = float(np.mean(np.abs(logits))) + 1e-6
    spread = relative_logit_spread(logits)
    if spread > T.INPUT_INDEPENDENT_MAX_SPREAD:
        return []
    evidence = {"relative_spread": spread, "threshold": T.INPUT_INDEPENDENT_MAX_SPREAD, "n": n}
    if blank_logits is not None and same_rows is not None and len(same_rows):
        ref = logits[same_rows]
        agree = float(np.mean(ref.argmax(1) == blank_logits.argmax(1)))
        moved = float(np.mean(np.abs(ref - blank_logits))) / scale
        evidence.update({"blank_agreement": agree, "blank_relative_change": moved, "blank_n": len(same_rows)})
        if agree < T.INPUT_INDEPENDENT_MIN_AGREEMENT or moved > T.INPUT_INDEPENDENT_MAX_SPREAD:
            return []
        extra = f"; with the content blanked out, {agree:.0%} of predictions stay the same"
    else:
        extra = ""
    return [Finding(
        INPUT_INDEPENDENT_LOGITS,
        f"logits vary across {n} inputs by {spread:.2%} of their scale{extra}: the model is not reading its input",
        evidence,
    )]


def check_features(stats: dict | None, n: int, source: str | None) -> list[Finding]:
    """representation-collapse: near-identical features (feature_stats of n inputs) for different inputs."""
    if stats is None or n < 8:
        return []
    if stats["mean_cosine"] >= T.COLLAPSE_MIN_MEAN_COSINE and stats["relative_spread"] <= T.COLLAPSE_MAX_RELATIVE_SPREAD:
        return [Finding(
            REPRESENTATION_COLLAPSE,
            f"the features feeding the head ({source or 'pooled'}) are nearly identical across {n} inputs: "
            f"mean pairwise cosine {stats['mean_cosine']:.4f}, spread {stats['relative_spread']:.3%} of their norm, "
            f"effective rank {stats['effective_rank']:.2f}",
            {**stats, "source": source, "n": n, "cosine_threshold": T.COLLAPSE_MIN_MEAN_COSINE,
             "spread_threshold": T.COLLAPSE_MAX_RELATIVE_SPREAD},
        )]
    return []


def check_finite_logits(logits: np.ndarray) -> list[Finding]:
    """nonfinite-logits: NaN/inf logits (NaN weights, overflow); the other verdicts need finite rows."""
    bad = ~np.isfinite(logits)
    if not bad.any():
        return []
    rows = int(bad.any(axis=1).sum())
    return [Finding(
        NONFINITE_LOGITS,
        f"{rows} of {logits.shape[0]} examples get NaN or infinite logits",
        {"nonfinite_examples": rows, "n": int(logits.shape[0]), "nan_values": int(np.isnan(logits).sum()),
         "inf_values": int(np.isinf(logits).sum())},
    )]


def feature_stats(f: np.ndarray) -> dict:
    """Collapse statistics of the finite feature rows (NaN when fewer than two are finite, e.g. NaN weights)."""
    finite = np.isfinite(f).all(axis=1)
    f = f[finite]
    if f.shape[0] < 2:
        return {"mean_cosine": math.nan, "relative_spread": math.nan, "effective_rank": math.nan,
                "nonfinite_rows": int((~finite).sum())}
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    unit = f / np.clip(norms, 1e-12, None)
    n = f.shape[0]
    # mean off-diagonal cosine without the n x n Gram matrix: sum of all pairs = |sum of units|^2 - n terms
    total = unit.sum(0)
    mean_cos = float((total @ total - (unit * unit).sum()) / (n * (n - 1)))
    mean = f.mean(0)
    centered = f - mean
    spread = float(np.sqrt((centered ** 2).sum(1).mean()) / (np.linalg.norm(mean) + 1e-12))
    # effective rank (Roy & Vetterli) of the feature matrix itself: ~1 when every input maps to one vector.
    # Its singular values from the eigenvalues of the smaller Gram matrix (H x H for 1024 x 384 features):
    # a tenth of an SVD's time, and only singular values below ~1e-8 of the largest lose precision
    gram = f.T @ f if f.shape[1] <= n else f @ f.T
    sv = np.sqrt(np.clip(np.linalg.eigvalsh(gram), 0.0, None))
    if sv.sum() > 0:
        q = sv / sv.sum()
        q = q[q > 0]
        erank = float(np.exp(-(q * np.log(q)).sum()))
    else:
        erank = 0.0
    return {"mean_cosine": mean_cos, "relative_spread": spread, "effective_rank": erank,
            "nonfinite_rows": int((~finite).sum())}


def check_determinism(first: np.ndarray, second: np.ndarray, precision: str) -> list[Finding]:
    scale = float(np.mean(np.abs(first))) + 1e-6
    diff = float(np.max(np.abs(first - second))) / scale
    limit = T.NONDETERMINISTIC_MAX_REL_DIFF.get(precision, 1e-4)
    if diff <= limit:
        return []
    flips = float(np.mean(first.argmax(1) != second.argmax(1)))
    return [Finding(
        NONDETERMINISTIC_EVAL,
        f"two eval-mode passes over the same {first.shape[0]} examples differ by up to {diff:.2%} of the logit "
        f"scale; {flips:.0%} of predictions change",
        {"max_relative_difference": diff, "threshold": limit, "prediction_flips": flips, "n": first.shape[0]},
    )]


def calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error: |accuracy - mean confidence| per equal-width confidence bin, weighted by size."""
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (confidence > lo) & (confidence <= hi)
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - confidence[sel].mean())
    return float(ece)


def metrics(logits: np.ndarray, gold: np.ndarray | None, names: list[str], bins: int = 15) -> dict:
    """Accuracy, macro-F1, per-class precision/recall, confusion matrix, entropy, calibration."""
    n, c = logits.shape
    p = softmax(logits.astype(np.float64))
    pred = logits.argmax(1)
    entropy = float(np.mean(-(p * np.log(np.clip(p, 1e-300, 1))).sum(1))) if n else None
    out: dict = {
        "examples": n,
        "prediction_histogram": {names[i]: int(v) for i, v in enumerate(np.bincount(pred, minlength=c))},
        "mean_entropy": entropy,
        "ln_num_labels": math.log(c) if c > 1 else 0.0,
        "mean_max_probability": float(p.max(1).mean()) if n else None,
    }
    if gold is None or len(gold) != n or n == 0:
        return out
    table = confusion(gold, pred, c)
    tp = np.diag(table).astype(float)
    precision = np.divide(tp, table.sum(0), out=np.zeros(c), where=table.sum(0) > 0)
    recall = np.divide(tp, table.sum(1), out=np.zeros(c), where=table.sum(1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(c), where=(precision + recall) > 0)
    present = table.sum(1) > 0
    correct = (pred == gold).astype(float)
    ece = calibration_error(p.max(1), correct, bins)
    out.update({
        "accuracy": float(correct.mean()),
        "macro_f1": float(f1[present].mean()) if present.any() else None,
        "per_class": {names[i]: {"precision": float(precision[i]), "recall": float(recall[i]),
                                 "f1": float(f1[i]), "support": int(table[i].sum())} for i in range(c)},
        "confusion_matrix": table.tolist(),
        "confusion_labels": list(names),
        "expected_calibration_error": float(ece),
    })
    return out
