"""Regression heads (issue 19): R², Pearson, Spearman with a permutation test; mean-predictor and
targets-unscaled planted for real in a tiny MSE-trained BERT; problem-type-mismatch; NaN targets."""
from __future__ import annotations

import pytest

from helpers import clone, edit_config, edit_weights, run_cli, write_jsonl
import shapes_zoo

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.xdist_group("test_shapes_regression")]  # one worker builds the module's models


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    # 75 steps: held-out r2 0.97 (0.98 at 150), the healthy test asks for 0.8
    return shapes_zoo.build(tmp_path_factory.mktemp("regression"), "regression", steps=75)


@pytest.fixture
def model(built, tmp_path):
    return clone(built["checkpoint"], tmp_path / "model")


def test_healthy_regressor_gets_metrics_and_no_problem(built, tmp_path):
    r = run_cli("check-logits", built["checkpoint"], built["data"], "--no-progress", "--plot", tmp_path / "figure.png",
                tmp=tmp_path)
    assert (tmp_path / "figure.png").stat().st_size > 1000
    assert r.code == 0 and r.problems() == [], r.out
    assert r.report["model"]["task"] == "regression" and "task   regression" in r.out
    m = r.report["metrics"]["regression"]
    assert m["r2"] > 0.8 and m["spearman"] > 0.8 and m["spearman_p"] < 0.01
    assert "R² " in r.out


def test_head_that_ignores_its_input_is_a_mean_predictor(model, built, tmp_path):
    edit_weights(model, lambda t: {**t, "classifier.weight": t["classifier.weight"] * 0})
    r = run_cli("check-logits", model, built["data"], "--no-progress", tmp=tmp_path)
    assert "mean-predictor" in r.codes(), r.out
    assert r.finding("mean-predictor")["evidence"]["test"] == "Spearman permutation test"


def test_targets_on_a_rating_scale_are_unscaled(built, tmp_path):
    rows = [{"text": r["text"], "label": round(r["label"] * 2 + 6, 3)} for r in built["rows"]]
    r = run_cli("check-logits", built["checkpoint"], write_jsonl(rows, tmp_path / "ratings.jsonl"), "--no-progress",
                tmp=tmp_path)
    assert "targets-unscaled" in r.codes() and "mean-predictor" not in r.codes(), r.out


def test_problem_type_mismatch_for_real_targets(model, built, tmp_path):
    edit_config(model, problem_type="multi_label_classification")  # BCE on a single score
    r = run_cli("check-logits", model, built["data"], "--no-progress", tmp=tmp_path)
    assert "problem-type-mismatch" in r.codes(), r.out
    assert "BCEWithLogitsLoss" in r.finding("problem-type-mismatch")["message"]


def test_unlabelled_data_claims_no_task(model, built, tmp_path):
    texts = write_jsonl([{"text": r["text"]} for r in built["rows"]], tmp_path / "texts.jsonl")
    r = run_cli("check-logits", model, texts, "--no-progress", tmp=tmp_path)
    assert r.report["model"]["task"] == "regression" and r.problems() == [], r.out


@pytest.mark.parametrize("bad,words", [(float("nan"), "finite"), ("high", "not a number")], ids=["nan", "text"])
def test_bad_target_is_one_line_exit_2(built, tmp_path, bad, words):
    rows = [{"text": r["text"], "label": bad if i == 3 else r["label"]} for i, r in enumerate(built["rows"][:40])]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(__import__("json").dumps(x) for x in rows).replace("NaN", "NaN"))
    r = run_cli("check-logits", built["checkpoint"], path, "--task", "regression", tmp=tmp_path)
    assert r.code == 2 and words in r.err and len(r.err.strip().splitlines()) == 1, r.err


def test_smoke_train_fits_a_regression_batch(built, tmp_path):
    r = run_cli("smoke-train", built["checkpoint"], built["data"], "--max-examples", "16", "--lr", "3e-3",
                "--no-progress", tmp=tmp_path)
    assert r.code == 0 and r.report["metrics"]["fitted"], r.out


def test_grad_flow_runs_on_regression(built, tmp_path):
    r = run_cli("grad-flow", built["checkpoint"], built["data"], "--max-examples", "16", "--no-progress", tmp=tmp_path)
    assert r.code == 0, r.out
    assert r.report["metrics"]["loss_source"] in ("model", "MSE")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_non_finite_target_in_memory_raises_one_line_usage_error(built, bad):
    from labeldiag import UsageError, check_logits

    rows = [{"text": r["text"], "label": bad if i == 3 else r["label"]} for i, r in enumerate(built["rows"][:20])]
    with pytest.raises(UsageError, match="example 3 .* finite numbers") as raised:
        check_logits(str(built["checkpoint"]), rows, task="regression")
    assert "\n" not in str(raised.value)
