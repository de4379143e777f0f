"""Verdicts users can trust: each states its own test and sample-size need; composite losses; heads of
another size; near-uniform probabilities; bad label-token input.

The statistical verdicts are tested on logits built in numpy (each situation planted exactly); the
head options and label-token input through the CLI on the tiny trained BERT.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from helpers import clone, edit_config, edit_weights, run_cli, write_jsonl


pytestmark = pytest.mark.usefixtures("one_thread")


def onehot_logits(pred: np.ndarray, classes: int, scale: float = 5.0) -> np.ndarray:
    out = np.zeros((len(pred), classes), dtype=np.float32)
    out[np.arange(len(pred)), pred] = scale
    return out


def codes(findings) -> list[str]:
    return [f.code for f in findings]


# --- constant-predictions: an exact test, no power analysis -------------------------------------

def test_one_class_for_64_of_64_inputs_is_constant_although_below_the_old_sample_size():
    from labeldiag.checks.logits import check_predictions

    gold = np.array([0] * 22 + [1] * 21 + [2] * 21)
    found = check_predictions(onehot_logits(np.full(64, 2), 3), gold, ["contradiction", "neutral", "entailment"])
    assert codes(found) == ["constant-predictions"]
    ev = found[0].evidence
    assert "McNemar" in ev["test"] and ev["p_value"] < 1e-10 and ev["n"] == 64
    assert "p = " in found[0].message


def test_a_handful_of_examples_suffices_when_the_evidence_is_overwhelming():
    from labeldiag.checks.logits import check_predictions

    gold = np.array([0, 1, 2] * 4)  # 12 examples, 8 of them not the predicted class
    assert codes(check_predictions(onehot_logits(np.zeros(12, int), 3), gold, ["a", "b", "c"])) == \
        ["constant-predictions"]


def test_too_few_for_constant_names_that_verdict_and_its_need():
    from labeldiag.checks.logits import check_predictions

    gold = np.array([0, 1, 2, 0, 1])
    found = check_predictions(onehot_logits(np.zeros(5, int), 3), gold, ["a", "b", "c"])
    assert codes(found) == ["too-few-examples"]
    ev = found[0].evidence
    assert ev["verdict"] == "constant-predictions" and ev["needed"] > 5 and ev["p_value"] >= 0.01
    assert "constant-predictions" in found[0].message


def test_skewed_gold_labels_are_not_called_constant():
    from labeldiag.checks.logits import check_predictions

    gold = np.array([0] * 190 + [1] * 10)  # 95% one class
    pred = gold.copy()
    pred[190:195] = 0
    assert "constant-predictions" not in codes(check_predictions(onehot_logits(pred, 2), gold, ["a", "b"]))


# --- mapping and independence: only the classes that occur --------------------------------------

def test_a_27_class_head_on_3_gold_classes_gets_a_verdict():
    from labeldiag.checks.logits import check_predictions

    rng = np.random.default_rng(0)
    gold = np.repeat([0, 1, 2], 100)
    pred = gold.copy()
    wrong = rng.random(300) < 0.3  # 70% right, the rest spread over 8 other logits
    pred[wrong] = rng.integers(3, 11, wrong.sum())
    found = check_predictions(onehot_logits(pred, 27), gold, [f"topic{i}" for i in range(27)])
    assert codes(found) == []  # a verdict (dependent, identity mapping), not too-few-examples

    pred_random = rng.integers(0, 27, 300)
    found = check_predictions(onehot_logits(pred_random, 27), gold, [f"topic{i}" for i in range(27)])
    assert codes(found) == ["random-predictions"]
    ev = found[0].evidence
    assert ev["gold_classes"] == 3 and ev["needed"] <= 300 and ev["dof"] == 2 * (ev["predicted_classes"] - 1)


def test_too_few_for_independence_names_those_verdicts_and_the_table():
    from labeldiag.checks.logits import check_predictions

    gold = np.array([0, 1, 2] * 4)
    found = check_predictions(onehot_logits(gold, 3), gold, ["a", "b", "c"])
    assert codes(found) == ["too-few-examples"]
    ev = found[0].evidence
    assert ev["verdict"] == "label-permutation and random-predictions"
    assert ev["gold_classes"] == 3 and ev["predicted_classes"] == 3 and ev["needed"] == 67


def test_unused_logits_keep_the_identity_in_the_best_mapping():
    from labeldiag.checks.logits import best_mapping, confusion

    gold = np.repeat([0, 1], 50)
    table = confusion(gold, 1 - gold, 10)  # logits 0 and 1 swapped, logits 2..9 never predicted
    assert best_mapping(table).tolist() == [1, 0, 2, 3, 4, 5, 6, 7, 8, 9]


# --- near-uniform probabilities -----------------------------------------------------------------

def test_folded_temperature_is_a_warning_with_its_numbers():
    from labeldiag.catalogue import lookup
    from labeldiag.checks.logits import check_logit_scale

    rng = np.random.default_rng(0)
    gold = np.repeat(np.arange(5), 40)
    pred = gold.copy()
    pred[:4] = (gold[:4] + 1) % 5  # accuracy 0.98
    logits = onehot_logits(pred, 5, scale=8.0) + rng.normal(0, 0.5, (200, 5)).astype(np.float32)
    logits[np.arange(200), pred] += 2.0  # keep the argmax
    found = check_logit_scale(logits / 20, gold)
    assert codes(found) == ["uniform-logits"]
    ev = found[0].evidence
    assert ev["accuracy"] == pytest.approx(0.98) and ev["mean_max_probability"] < 0.3
    assert ev["expected_calibration_error"] > 0.6 and ev["ece_threshold"] == 0.25
    assert lookup("uniform-logits").severity_for("check-logits") == "warning"


def test_mildly_underconfident_head_stays_info():
    from labeldiag.checks.logits import check_logit_scale

    rng = np.random.default_rng(1)
    gold = np.repeat(np.arange(3), 100)
    pred = np.where(rng.random(300) < 0.5, gold, rng.integers(0, 3, 300))  # accuracy ~0.67
    logits = onehot_logits(pred, 3, scale=0.6)  # max probability ~0.48
    found = check_logit_scale(logits, gold)
    assert codes(found) == ["underconfident-predictions"]
    assert found[0].evidence["expected_calibration_error"] < 0.25


# --- smoke-train: "fitted" against what the loss can reach --------------------------------------

def trace(losses, accuracies, classification_losses, source="the model's ce_loss"):
    from labeldiag.records import TrainingTrace

    return TrainingTrace(num_classes=4, batch_classes=4, losses=list(losses), accuracies=list(accuracies),
                         classification_losses=list(classification_losses), classification_source=source)


def test_fit_rule_reads_the_classification_component_of_a_composite_loss():
    from labeldiag.checks.training import fit_rule

    rule = fit_rule(trace([0.9], [1.0], [0.03]), 0.05)
    assert rule is not None and "ce_loss 0.03" in rule
    assert fit_rule(trace([0.9], [0.97], [0.03]), 0.05) is None  # not every example right


def test_fit_rule_accepts_a_total_loss_that_stopped_falling_at_full_accuracy():
    from labeldiag.checks.training import fit_rule

    flat = [2.0, 1.5, 1.2, 1.0, 0.9, 0.89, 0.9, 0.895, 0.9, 0.895]
    rule = fit_rule(trace(flat, [0.8] * 4 + [1.0] * 6, [0.2] * 10), 0.05)
    assert rule is not None and "stopped falling" in rule
    falling = [2.0, 1.5, 1.2, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    assert fit_rule(trace(falling, [1.0] * 10, [0.2] * 10), 0.05) is None


def test_cannot_overfit_states_the_classification_loss():
    from labeldiag.checks.training import check_training
    from labeldiag.options import TrainSettings

    t = trace([1.5] * 10, [0.5] * 10, [1.2] * 10)
    t.initial_loss = 1.6
    found = check_training(t, TrainSettings())
    overfit = next(f for f in found if f.code == "cannot-overfit")
    assert "ce_loss 1.2" in overfit.message and overfit.evidence["final_classification_loss"] == 1.2


# --- heads of another size ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_class_head(trained, tmp_path_factory):
    """The trained 3-class model cut to a 2-class head: classes 0 and 1 kept, class 2 has no logit."""
    path = clone(trained["checkpoint"], tmp_path_factory.mktemp("two") / "model")

    def cut(t):
        t["classifier.weight"] = t["classifier.weight"][:2].clone()
        t["classifier.bias"] = t["classifier.bias"][:2].clone()
        return t

    edit_weights(path, cut)
    edit_config(path, id2label={"0": "LABEL_0", "1": "LABEL_1"}, label2id={"LABEL_0": 0, "LABEL_1": 1})
    return path


@pytest.fixture(scope="module")
def int_rows(trained, tmp_path_factory):
    rows = [json.loads(line) for line in open(trained["data"])]
    index = {"sport": 0, "politics": 1, "tech": 2}
    return write_jsonl([{"text": r["text"], "label": index[r["label"]]} for r in rows],
                       tmp_path_factory.mktemp("ints") / "ints.jsonl")


def test_a_class_outside_the_head_is_an_error_in_smoke_train_not_a_silent_drop(two_class_head, int_rows, tmp_path):
    res = run_cli("smoke-train", two_class_head, int_rows, "--no-progress", "--steps", "3", tmp=tmp_path)
    assert res.code == 1, res.out + res.err
    finding = res.finding("labels-out-of-range")
    assert finding["severity"] == "error" and finding["evidence"]["classes_outside"] == [2]
    assert "--num-labels 3" in finding["hint"]
    assert any("left out of the batch" in n for n in res.report["notes"])


def test_num_labels_attaches_a_fresh_head_of_that_size(two_class_head, int_rows, tmp_path):
    before = (two_class_head / "model.safetensors").read_bytes()
    res = run_cli("smoke-train", two_class_head, int_rows, "--no-progress", "--steps", "3", "--num-labels", "3",
                  tmp=tmp_path)
    assert "labels-out-of-range" not in res.codes(), res.out + res.err
    assert res.severities()["head-uninitialized"] == "info"
    assert res.report["model"]["attached_head"] == {"outputs": 3, "checkpoint_outputs": 2}
    assert res.report["metrics"]["batch"]["classes"] == 3
    assert (two_class_head / "model.safetensors").read_bytes() == before  # never written


def test_labels_name_the_classes_of_a_headless_encoder(trained, tmp_path):
    headless = clone(trained["checkpoint"], tmp_path / "headless")
    edit_weights(headless, lambda t: {k: v for k, v in t.items() if not k.startswith("classifier.")})
    edit_config(headless, id2label=None, label2id=None, num_labels=None)  # transformers' default: 2 generic names
    res = run_cli("grad-flow", headless, trained["data"], "--device", "cpu", tmp=tmp_path)
    assert res.code == 2 and "--labels" in res.err, res.err

    res = run_cli("grad-flow", headless, trained["data"], "--device", "cpu", "--labels", "sport,politics,tech",
                  tmp=tmp_path)
    assert res.code == 0, res.out + res.err
    assert res.severities()["head-uninitialized"] == "info"
    assert res.report["model"]["id2label"] == {"0": "sport", "1": "politics", "2": "tech"}
    assert res.report["model"]["attached_head"]["checkpoint_outputs"] is None

    res = run_cli("check-logits", headless, trained["data"], "--device", "cpu", tmp=tmp_path)
    assert res.severities()["head-uninitialized"] == "error"
    assert not {"random-predictions", "label-permutation", "constant-predictions"} & set(res.codes())
    first = res.report["notes"][0]
    assert "no trained classification head" in first and "labeldiag smoke-train" in first and "--labels" in first


@pytest.mark.parametrize("extra,needle", [
    (["--num-labels", "1"], "--num-labels must be at least 2"),
    (["--labels", "a,b,a"], "names 'a' twice"),
    (["--labels", "a,b", "--num-labels", "3"], "--labels names 2 classes but --num-labels is 3"),
])
def test_bad_head_options_exit_2(trained, tmp_path, extra, needle):
    res = run_cli("check-logits", trained["checkpoint"], trained["data"], *extra, tmp=tmp_path)
    assert res.code == 2 and needle in res.err, res.err


# --- label-token input --------------------------------------------------------------------------

def test_label_token_position_beyond_every_example_exits_2(trained, tmp_path):
    res = run_cli("grad-flow", trained["checkpoint"], trained["data"], "--label-token-positions", "1,2,300",
                  tmp=tmp_path)
    assert res.code == 2, res.out + res.err
    assert "position 300 is beyond every example" in res.err and "0:[CLS]" in res.err
    assert len(res.err.strip().splitlines()) == 1


def test_label_word_outside_the_vocabulary_exits_2_and_shows_its_tokens(trained, tmp_path):
    res = run_cli("grad-flow", trained["checkpoint"], trained["data"], "--label-tokens", "goal,season,qzxvbnmw",
                  tmp=tmp_path)
    assert res.code == 2, res.out + res.err
    assert "'qzxvbnmw'" in res.err and ("vocabulary" in res.err)
    assert len(res.err.strip().splitlines()) == 1


def test_required_examples_counts_only_the_classes_that_occur():
    from labeldiag.checks.logits import required_examples

    assert required_examples(3) == 67
    assert required_examples(3, 10) < required_examples(27)
    assert math.isclose(required_examples(2, 2), 47)


def test_composite_loss_fits_on_its_classification_component(trained, tmp_path):
    """CE + 0.2 x SupCon on the trained encoder: accuracy is 100% at once, the total loss sits on the SupCon
    term's floor far above --target-loss, and the model's ce_loss says the batch is fitted."""
    from pathlib import Path

    supcon = Path(__file__).resolve().parents[1] / "examples" / "supcon_model.py"
    res = run_cli("smoke-train", trained["checkpoint"], trained["data"], "--no-progress", "--device", "cpu",
                  "--model-class", f"{supcon}:BertWithSupCon", tmp=tmp_path)
    m = res.report["metrics"]
    assert res.code == 0 and "cannot-overfit" not in res.codes(), res.out + res.err
    assert m["fitted"] and "ce_loss" in m["fit_rule"] and m["classification_loss_source"] == "the model's ce_loss"
    assert m["final_loss"] > 0.05 > m["final_classification_loss"]
    assert any(n.startswith(f"fitted at step {m['fit_step']}") for n in res.report["notes"])
