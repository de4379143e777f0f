"""The pure check functions on arrays: no model, no torch; oracle values computed by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from labeldiag.checks import logits as L
from labeldiag.checks.labels import check_label_map, label_kind, map_labels, replay_problem_type
from labeldiag.errors import UsageError
from labeldiag.records import ModelInfo

NAMES = ["a", "b", "c"]


def informative_logits(gold, c, rng, strength=4.0):
    z = rng.normal(size=(len(gold), c))
    z[np.arange(len(gold)), gold] += strength
    return z


def info(**kw):
    base = dict(path="m", class_name="X", model_type="bert", num_labels=3, id2label={0: "a", 1: "b", 2: "c"},
                label2id={"a": 0, "b": 1, "c": 2}, problem_type=None)
    base.update(kw)
    return ModelInfo(**base)


def codes(findings):
    return [f.code for f in findings]


def test_required_examples_grows_with_classes_and_is_modest():
    n2, n3, n5 = (L.required_examples(c) for c in (2, 3, 5))
    assert 20 <= n2 < n3 < n5 < 400


@pytest.mark.parametrize("table", [[[300, 200, 100], [100, 300, 200], [200, 100, 300]],  # large counts
                                   [[30, 2, 0], [25, 1, 1], [28, 0, 3]], [[10, 3], [2, 8]], [[5, 5, 1], [5, 4, 2]]])
def test_independence_test_agrees_with_scipy(table):
    from scipy import stats

    t = np.array(table)
    got = L.independence_test(t)
    asymptotic = stats.chi2_contingency(t, correction=False)
    assert math.isclose(got.statistic, asymptotic.statistic, rel_tol=1e-12) and got.dof == asymptotic.dof
    if asymptotic.expected_freq.min() >= 5:
        assert got.test == "chi-square test of independence"
        assert math.isclose(got.p_value, asymptotic.pvalue, rel_tol=1e-9)
    else:  # another random stream than scipy's permutation test: equal within Monte Carlo error
        ref = stats.chi2_contingency(t, correction=False, method=stats.PermutationMethod(n_resamples=2000,
                                                                                          random_state=0))
        assert got.test.endswith("(permutation p-value)")
        se = math.sqrt(max(ref.pvalue * (1 - ref.pvalue), 1e-4) / 2000)
        assert abs(got.p_value - ref.pvalue) <= 4 * se


def test_permutation_p_value_of_a_large_sparse_table_agrees_with_scipy():
    from scipy import stats

    rng = np.random.default_rng(3)
    gold = rng.integers(0, 30, 600)
    pred = np.where(rng.random(600) < 0.05, gold, rng.integers(0, 30, 600))  # 900 cells: labels are shuffled
    table = L.confusion(gold, pred, 30)
    got = L.independence_test(table)
    ref = stats.chi2_contingency(table[table.sum(1) > 0][:, table.sum(0) > 0], correction=False,
                                 method=stats.PermutationMethod(n_resamples=2000, random_state=0))
    assert table.size > L.CELLWISE_MAX_CELLS and got.test.endswith("(permutation p-value)")
    assert abs(got.p_value - ref.pvalue) <= 4 * math.sqrt(max(ref.pvalue * (1 - ref.pvalue), 1e-4) / 2000)


def test_random_tables_keep_the_margins_and_pair_labels_uniformly():
    from scipy import stats

    tables = L.random_tables(np.array([5, 3, 2]), np.array([4, 4, 2]), 100_000, np.random.default_rng(0))
    assert (tables.sum(2) == [5, 3, 2]).all() and (tables.sum(1) == [4, 4, 2]).all() and (tables >= 0).all()
    # the first cell of a random pairing: 4 draws from 10 labels of which 5 are row 0
    share = np.bincount(tables[:, 0, 0], minlength=5) / len(tables)
    assert np.allclose(share, stats.hypergeom(10, 5, 4).pmf(range(5)), atol=0.005)


def test_sample_size_and_mcnemar_match_scipy_stats():
    from scipy import optimize, stats

    from labeldiag import thresholds as T

    for df in (1, 2, 4, 26):
        crit = stats.chi2.ppf(1 - T.ALPHA, df)
        lam = optimize.brentq(lambda x: stats.ncx2.sf(crit, df, x) - T.POWER, 1e-6, 1e4)
        assert L.required_examples(df + 1, 2) == max(T.MIN_LABELLED, math.ceil(lam / T.DETECTABLE_EFFECT_W ** 2))
    gold = np.array([1] * 20 + [0] * 10)
    pred = np.zeros(30, dtype=int)
    pred[:3] = 1  # 17 predicted 0 that are 1; none are 0 predicted otherwise
    assert math.isclose(L.constant_test(gold, pred, 0), stats.binomtest(17, 17, 0.5, alternative="greater").pvalue)


def test_informative_predictions_get_no_finding():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 300)
    assert codes(L.check_predictions(informative_logits(gold, 3, rng), gold, NAMES)) == []


@pytest.mark.parametrize("perm", [[1, 0, 2], [2, 0, 1], [1, 2, 0]])
def test_any_permutation_is_recovered(perm):
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 3, 300)
    logits = informative_logits(np.array(perm)[gold], 3, rng)  # logit perm[g] fires for gold g
    found = L.check_predictions(logits, gold, NAMES)
    assert codes(found) == ["label-permutation"]
    mapping = found[0].evidence["mapping"]
    for g, logit in enumerate(perm):
        assert mapping[str(logit)] == g


def test_independent_predictions_are_random():
    rng = np.random.default_rng(2)
    gold = rng.integers(0, 3, 400)
    found = L.check_predictions(rng.normal(size=(400, 3)), gold, NAMES)
    assert codes(found) == ["random-predictions"]
    assert found[0].evidence["n"] == 400 and found[0].evidence["p_value"] >= 0.01


def test_weak_but_real_signal_is_not_called_random():
    rng = np.random.default_rng(3)
    gold = rng.integers(0, 3, 600)
    assert "random-predictions" not in codes(L.check_predictions(informative_logits(gold, 3, rng, 1.0), gold, NAMES))


def test_constant_predictions_against_balanced_gold_but_not_skewed_gold():
    gold = np.array([0, 1, 2] * 50)
    logits = np.tile([5.0, 0.0, 0.0], (150, 1))
    assert "constant-predictions" in codes(L.check_predictions(logits, gold, NAMES))
    skewed = np.array([0] * 145 + [1] * 5)
    assert "constant-predictions" not in codes(L.check_predictions(logits, skewed, NAMES))


def test_too_few_examples_gives_no_verdict():
    gold = np.array([0, 1, 2, 0, 1])
    found = L.check_predictions(np.random.default_rng(0).normal(size=(5, 3)), gold, NAMES)
    assert codes(found) == ["too-few-examples"]


def test_uniform_and_saturated_logits():
    gold = np.array([0, 1, 2] * 20)
    assert codes(L.check_logit_scale(np.zeros((60, 3)) + 1e-3, gold)) == ["uniform-logits"]
    big = np.zeros((60, 3))
    big[np.arange(60), (gold + 1) % 3] = 200.0
    found = L.check_logit_scale(big, gold)
    assert codes(found) == ["logit-saturation"] and found[0].evidence["loss"] == pytest.approx(200.0)


def test_feature_collapse_versus_anisotropic_but_healthy_features():
    rng = np.random.default_rng(4)
    center = rng.normal(size=64) * 10
    collapsed = center + 1e-4 * rng.normal(size=(100, 64))
    anisotropic = center + 2.0 * rng.normal(size=(100, 64))  # mean cosine ~0.96, still informative
    assert codes(L.check_features(L.feature_stats(collapsed), 100, "pooler")) == ["representation-collapse"]
    assert L.feature_stats(anisotropic)["mean_cosine"] > 0.9
    assert L.check_features(L.feature_stats(anisotropic), 100, "pooler") == []


def test_metrics_match_hand_computation():
    gold = np.array([0, 0, 1, 1, 2, 2])
    logits = np.eye(3)[[0, 1, 1, 1, 2, 0]] * 5
    m = L.metrics(logits, gold, NAMES)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["a"]["recall"] == pytest.approx(0.5)
    p_b, r_b = 2 / 3, 1.0
    f1 = [0.5, 2 * p_b * r_b / (p_b + r_b), 2 * 1 * 0.5 / 1.5]
    assert m["macro_f1"] == pytest.approx(np.mean(f1))
    assert m["ln_num_labels"] == pytest.approx(math.log(3))


def test_determinism_check():
    a = np.random.default_rng(0).normal(size=(32, 3))
    assert L.check_determinism(a, a.copy(), "fp32") == []
    assert codes(L.check_determinism(a, a * 1.5, "fp32")) == ["nondeterministic-eval"]


def test_input_dependence():
    rng = np.random.default_rng(0)
    varied = rng.normal(size=(50, 3))
    assert L.check_input_dependence(varied, varied[:10], np.arange(10)) == []
    flat = np.tile([0.3, -0.2, 0.1], (50, 1))
    assert codes(L.check_input_dependence(flat, flat[:10], np.arange(10))) == ["input-independent-logits"]


def test_label_kinds_and_mixed_types():
    assert label_kind([0, 1, True])[0] == "int"
    assert label_kind(["1", "2"])[0] == "int"
    assert label_kind([0.0, 1.0])[0] == "float"
    assert label_kind(["pos", "neg"])[0] == "str"
    with pytest.raises(UsageError, match="mix types"):
        label_kind(["pos", 1])
    with pytest.raises(UsageError, match="multi-label"):
        label_kind([[0, 1]])


def test_map_labels_suggests_the_closest_name():
    gold, found = map_labels(["a", "B", "cc"], info(), 3)
    assert codes(found) == ["label-set-mismatch"]
    assert "did you mean 'b'" in found[0].message
    assert gold.indices.tolist() == [0, -1, -1]


def test_replay_problem_type_follows_transformers():
    assert replay_problem_type(None, 1, "int") == "regression"
    assert replay_problem_type(None, 3, "int") == "single_label_classification"
    assert replay_problem_type(None, 3, "float") == "multi_label_classification"
    assert replay_problem_type("regression", 3, "int") == "regression"


def test_label_map_checks():
    assert codes(check_label_map(info(), 3)) == []
    assert codes(check_label_map(info(label2id={"a": 0, "b": 2, "c": 1}), 3)) == ["label-map-inconsistent"]
    assert codes(check_label_map(info(), 4)) == ["label-map-inconsistent"]
    assert codes(check_label_map(info(id2label={0: "a", 1: "a", 2: "c"}, label2id={"a": 0, "c": 2}), 3)) == [
        "label-map-inconsistent"]
    generic = info(id2label={0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, label2id={"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2})
    assert codes(check_label_map(generic, 3)) == ["label-names-generic"]
