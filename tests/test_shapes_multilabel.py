"""Multi-label heads (issue 19): task detection, per-label metrics, the three multi-label codes planted for
real in a tiny BCE-trained BERT, problem-type-mismatch both ways, bad input, smoke-train with BCE."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from helpers import clone, edit_config, edit_weights, run_cli, write_jsonl
import shapes_zoo

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.xdist_group("test_shapes_multilabel")]  # one worker builds the module's models


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return shapes_zoo.build(tmp_path_factory.mktemp("multilabel"), "multi-label")


@pytest.fixture
def model(built, tmp_path):
    return clone(built["checkpoint"], tmp_path / "model")


def shift_bias(rows: slice | int, by: float):
    def fn(t):
        t["classifier.bias"] = t["classifier.bias"].clone()
        t["classifier.bias"][rows] += by
        return t
    return fn


def zero_weight(t):
    t["classifier.weight"] = t["classifier.weight"] * 0
    return t


def test_healthy_multilabel_model_gets_metrics_and_no_problem(built, tmp_path):
    r = run_cli("check-logits", built["checkpoint"], built["data"], "--no-progress", "--plot", tmp_path / "figure.png",
                tmp=tmp_path)
    assert (tmp_path / "figure.png").stat().st_size > 1000
    assert r.code == 0 and r.problems() == [], r.out
    assert r.report["model"]["task"] == "multi-label"
    assert "task   multi-label" in r.out
    m = r.report["metrics"]["multilabel"]
    assert m["micro_f1"] > 0.7 and min(s["auroc"] for s in m["labels"]) > 0.6
    assert {s["name"] for s in m["labels"]} == set(shapes_zoo.LABELS)


@pytest.mark.parametrize("plant,code", [
    (shift_bias(slice(None), -8.0), "multilabel-no-predictions"),
    (zero_weight, "multilabel-prior-collapse"),
    (shift_bias(2, -12.0), "labels-never-predicted"),
], ids=["bias-far-negative", "head-ignores-input", "one-label-suppressed"])
def test_planted_multilabel_defect_is_found(model, built, tmp_path, plant, code):
    edit_weights(model, plant)
    r = run_cli("check-logits", model, built["data"], "--no-progress", tmp=tmp_path)
    assert code in r.codes(), r.out
    assert "test" in r.finding(code)["evidence"]


def test_multilabel_no_predictions_is_not_prior_collapse(model, built, tmp_path):
    edit_weights(model, shift_bias(slice(None), -8.0))
    r = run_cli("check-logits", model, built["data"], "--no-progress", tmp=tmp_path)
    assert "multilabel-prior-collapse" not in r.codes() and "labels-never-predicted" not in r.codes()


def test_label_columns_and_multi_hot_vectors_read_the_same(built, tmp_path):
    rows = built["rows"]
    names = shapes_zoo.LABELS
    with open(tmp_path / "cols.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", *names])
        for r in rows:
            w.writerow([r["text"], *[int(n in r["labels"]) for n in names]])
    hot = write_jsonl([{"text": r["text"], "labels": [int(n in r["labels"]) for n in names]} for r in rows],
                      tmp_path / "hot.jsonl")
    by_cols = run_cli("check-logits", built["checkpoint"], tmp_path / "cols.csv", "--label-columns",
                      ",".join(names), "--no-progress", tmp=tmp_path)
    by_vector = run_cli("check-logits", built["checkpoint"], hot, "--no-progress", tmp=tmp_path)
    assert by_cols.code == 0 and by_vector.code == 0, by_cols.out + by_cols.err
    assert by_cols.report["metrics"]["multilabel"] == by_vector.report["metrics"]["multilabel"]


def test_problem_type_mismatch_both_ways(model, built, tmp_path):
    single = clone(model, tmp_path / "single")
    edit_config(single, problem_type="single_label_classification")
    r = run_cli("check-logits", single, built["data"], "--no-progress", tmp=tmp_path)
    assert "problem-type-mismatch" in r.codes() and "multi-label" in r.finding("problem-type-mismatch")["message"]
    indices = write_jsonl([{"text": r["text"], "label": shapes_zoo.LABELS.index(r["labels"][0])}
                           for r in built["rows"]], tmp_path / "indices.jsonl")
    r = run_cli("check-logits", model, indices, "--no-progress", tmp=tmp_path)
    assert r.report["model"]["task"] == "single-label" and "problem-type-mismatch" in r.codes()


def test_unlabelled_data_claims_no_task(model, built, tmp_path):
    """Issue 23 item 6: without labels nothing says the task is single-label or multi-label."""
    texts = write_jsonl([{"text": r["text"]} for r in built["rows"]], tmp_path / "texts.jsonl")
    r = run_cli("check-logits", model, texts, "--no-progress", tmp=tmp_path)
    assert "problem-type-mismatch" not in r.codes(), r.out
    assert r.report["model"]["task"] == "multi-label" and r.problems() == []


def test_task_option_overrides_detection(built, tmp_path):
    r = run_cli("check-logits", built["checkpoint"], built["data"], "--task", "single-label", "--no-progress",
                tmp=tmp_path)
    assert r.code == 2 and "--task single-label" in r.err
    r = run_cli("check-logits", built["checkpoint"], built["data"], "--task", "ranking", tmp=tmp_path)
    assert r.code == 2 and "ranking" in r.err


@pytest.mark.parametrize("labels,words", [
    ([[1, 0, 1], [1, 0]], "ragged"),
    ([["sport", 1]], "mix label names and numbers"),
    ([["sport"], [1, 0, 0]], "mix label names and numbers"),
    ([["sports"]], "not one of the model's labels"),
    ([[1, 0, 2]], "only 0 and 1"),
], ids=["ragged", "names-and-numbers-in-one", "names-and-vectors", "unknown-name", "not-0-1"])
def test_bad_multilabel_input_is_one_line_exit_2(built, tmp_path, labels, words):
    rows = [{"text": r["text"], "labels": labels[i % len(labels)]} for i, r in enumerate(built["rows"][:40])]
    r = run_cli("check-logits", built["checkpoint"], write_jsonl(rows, tmp_path / "bad.jsonl"), tmp=tmp_path)
    assert r.code == 2 and words in r.err and len(r.err.strip().splitlines()) == 1, r.err


def test_smoke_train_fits_a_multilabel_batch_with_bce(built, tmp_path):
    r = run_cli("smoke-train", built["checkpoint"], built["data"], "--max-examples", "16", "--lr", "3e-3", "--no-progress",
                tmp=tmp_path)
    assert r.code == 0 and r.report["metrics"]["fitted"], r.out
    assert r.report["metrics"]["classification_loss_source"] == "mean BCE per label"


def test_smoke_train_loss_at_init_against_ln2(built, tmp_path):
    """A fresh head whose logits are scaled x1000 starts far above ln 2 per label."""
    model = clone(built["checkpoint"], tmp_path / "fresh")
    edit_weights(model, lambda t: {k: v for k, v in t.items() if not k.startswith("classifier.")})
    zoo = Path(__file__).parent / "zoo_models.py"
    r = run_cli("smoke-train", model, built["data"], "--max-examples", "16", "--steps", "3", "--no-progress",
                tmp=tmp_path)
    assert "loss-at-init-off" not in r.codes(), r.out
    r = run_cli("smoke-train", model, built["data"], "--max-examples", "16", "--steps", "3", "--no-progress",
                "--model-class", f"{zoo}:UnscaledLogitsBert", tmp=tmp_path)
    assert "loss-at-init-off" in r.codes(), r.out


def test_grad_flow_runs_on_multilabel(built, tmp_path):
    r = run_cli("grad-flow", built["checkpoint"], built["data"], "--max-examples", "16", "--no-progress", tmp=tmp_path)
    assert r.code == 0 and r.report["metrics"]["loss"] < 1.0, r.out


def swap_rows(a: int, b: int):
    def fn(t):
        for key in ("classifier.weight", "classifier.bias"):
            t[key] = t[key].clone()
            t[key][[a, b]] = t[key][[b, a]]
        return t
    return fn


@pytest.fixture(scope="module")
def swapped(built, tmp_path_factory):
    model = clone(built["checkpoint"], tmp_path_factory.mktemp("swapped") / "model")
    edit_weights(model, swap_rows(0, 1))
    return model


# --- label permutation: the best matching of labels to logits by per-label AUROC

def test_swapped_multilabel_rows_are_label_permutation_with_the_corrected_names(built, swapped, tmp_path):
    r = run_cli("check-logits", swapped, built["data"], "--no-progress", tmp=tmp_path)
    assert "label-permutation" in r.codes(), r.out
    evidence = r.finding("label-permutation")["evidence"]
    names = shapes_zoo.LABELS
    assert evidence["suggested_id2label"] == {str(i): n for i, n in
                                              enumerate([names[1], names[0], *names[2:]])}
    assert {c["logit"] for c in evidence["moved"]} == {0, 1} and "Mann-Whitney" in evidence["test"]
    assert evidence["mean_auroc_gain"] > 0.2


def test_fix_renames_a_swapped_multilabel_head(built, swapped, tmp_path):
    from labeldiag.api import fix

    after = fix(str(swapped), str(built["data"]), str(tmp_path / "fixed"))
    assert not after.has("label-permutation") and after.metrics["fixes"][0]["code"] == "label-permutation"
    config = json.loads((tmp_path / "fixed" / "config.json").read_text())
    assert config["id2label"]["0"] == shapes_zoo.LABELS[1] and config["label2id"][shapes_zoo.LABELS[0]] == 1


@pytest.mark.parametrize("labels,words", [
    ([[1, 0, 1], [1, 0]], "ragged"), ([["sport", 1]], "mix label names and numbers"),
    ([[1, float("nan"), 0]], "NaN or inf"),
], ids=["ragged", "names-and-numbers", "nan"])
def test_bad_multilabel_rows_in_memory_raise_one_line_usage_error(built, labels, words):
    from labeldiag import UsageError, check_logits

    rows = [{"text": r["text"], "labels": labels[i % len(labels)]} for i, r in enumerate(built["rows"][:20])]
    with pytest.raises(UsageError, match=words) as raised:
        check_logits(str(built["checkpoint"]), rows)
    assert "\n" not in str(raised.value)
