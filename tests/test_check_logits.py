"""check-logits: each defect planted for real in a small trained model, asserted through the CLI."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from helpers import clone, edit_config, edit_weights, run_cli, write_jsonl

ZOO = Path(__file__).parent / "zoo_check_models.py"


def rows_of(data: str) -> list[dict]:
    return [json.loads(line) for line in Path(data).read_text().splitlines()]


@pytest.fixture()
def model(trained, tmp_path):
    return clone(trained["checkpoint"], tmp_path / "model")


@pytest.fixture()
def rows(trained):
    return rows_of(trained["data"])


def check(tmp_path, model, data, *extra):
    return run_cli("check-logits", model, data, "--device", "cpu", *extra, tmp=tmp_path)


def test_healthy_model_has_no_error_or_warning(trained, tmp_path):
    res = check(tmp_path, trained["checkpoint"], trained["data"])
    assert res.code == 0, res.out + res.err
    assert res.problems() == []
    assert res.report["metrics"]["accuracy"] > 0.9
    assert res.report["model"]["id2label"] == {"0": "sport", "1": "politics", "2": "tech"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_healthy_model_under_other_orders_and_seeds(trained, tmp_path, rows, seed):
    random.Random(seed).shuffle(rows)
    data = write_jsonl(rows[: 150 + 50 * seed], tmp_path / "shuffled.jsonl")
    res = check(tmp_path, trained["checkpoint"], data, "--seed", seed)
    assert res.code == 0 and res.problems() == [], res.out


def swap_names(ckpt):
    edit_config(ckpt, id2label={"0": "politics", "1": "sport", "2": "tech"},
                label2id={"politics": 0, "sport": 1, "tech": 2})


def scale_head(factor, bias=None):
    def fn(t):
        t["classifier.weight"] = t["classifier.weight"] * factor
        if bias is not None:
            t["classifier.bias"] = torch.tensor(bias, dtype=torch.float32)
        return t
    return fn


def drop(prefix):
    return lambda t: {k: v for k, v in t.items() if not k.startswith(prefix)}


def rename(old, new):
    return lambda t: {(k.replace(old, new, 1) if k.startswith(old) else k): v for k, v in t.items()}


def zero_pooler(t):
    t["bert.pooler.dense.weight"] = torch.zeros_like(t["bert.pooler.dense.weight"])
    return t


def shrink_vocab(t):
    t["bert.embeddings.word_embeddings.weight"] = t["bert.embeddings.word_embeddings.weight"][:60].clone()
    return t


# (id, change to the checkpoint, change to the data rows, extra CLI args, expected code, expected exit)
DEFECTS = [
    ("swapped-id2label", swap_names, None, [], "label-permutation", 1),
    ("dataset-label-order", None, lambda r: [{**x, "label": {"sport": 1, "politics": 0, "tech": 2}[x["label"]]} for x in r],
     [], "label-permutation", 1),
    ("bias-dominated-head", lambda c: edit_weights(c, scale_head(0.0, [8.0, 0.0, 0.0])), None, [], "constant-predictions", 1),
    ("constant-pooler", lambda c: edit_weights(c, zero_pooler), None, [], "input-independent-logits", 1),
    ("constant-pooler-features", lambda c: edit_weights(c, zero_pooler), None, [], "representation-collapse", 1),
    ("shuffled-gold-labels", None, lambda r: _shuffle_labels(r), [], "random-predictions", 1),
    ("near-zero-head-unlabelled", lambda c: edit_weights(c, scale_head(0.002, [0.0, 0.0, 0.0])),
     lambda r: [{"text": x["text"]} for x in r], [], "uniform-logits", 0),
    # accurate argmax, probabilities ~1/3 (ECE ~0.6): a folded temperature misleads, so a warning
    ("near-zero-head-still-right", lambda c: edit_weights(c, scale_head(0.002, [0.0, 0.0, 0.0])), None, [],
     "uniform-logits", 0),
    ("unscaled-head", lambda c: edit_weights(c, scale_head(300.0)), None, [], "logit-saturation", 0),
    ("dropout-in-eval", None, None, ["--model-class", f"{ZOO}:AlwaysDropout"], "nondeterministic-eval", 0),
    ("vocab-larger-than-embeddings", lambda c: (edit_weights(c, shrink_vocab), edit_config(c, vocab_size=60)), None,
     [], "tokenizer-model-mismatch", 1),
    ("foreign-script", None, lambda r: [{**x, "text": x["text"] + " ξψζ ωφχ θλμ ξψζ ωφχ θλμ ξψζ"} for x in r],
     [], "unk-heavy", 0),
    ("max-length-too-short", None, None, ["--max-length", "5"], "truncation-heavy", 0),
    ("unshuffled-one-class", None, lambda r: [x for x in r if x["label"] == "tech"][:40], [], "single-class-batch", 0),
    ("ten-examples", None, lambda r: r[:10], [], "too-few-examples", 0),
    ("label2id-not-inverse", lambda c: edit_config(c, label2id={"sport": 0, "politics": 2, "tech": 1}), None, [],
     "label-map-inconsistent", 1),
    ("generic-names", lambda c: edit_config(c, id2label={"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"},
                                            label2id={"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2}),
     lambda r: [{**x, "label": {"sport": 0, "politics": 1, "tech": 2}[x["label"]]} for x in r], [],
     "label-names-generic", 0),
    ("misspelt-label-name", None, lambda r: [{**x, "label": "sports" if x["label"] == "sport" else x["label"]} for x in r],
     [], "label-set-mismatch", 1),
    ("one-based-labels", None, lambda r: [{**x, "label": {"sport": 1, "politics": 2, "tech": 3}[x["label"]]} for x in r],
     [], "labels-out-of-range", 1),
    ("float-labels", None, lambda r: [{**x, "label": float({"sport": 0, "politics": 1, "tech": 2}[x["label"]])} for x in r],
     [], "problem-type-mismatch", 1),
    ("regression-problem-type", lambda c: edit_config(c, problem_type="regression"), None, [], "problem-type-mismatch", 1),
    ("head-missing", lambda c: edit_weights(c, drop("classifier.")), None, [], "head-uninitialized", 1),
    ("encoder-layer-missing", lambda c: edit_weights(c, drop("bert.encoder.layer.0.")), None, [],
     "weights-reinitialized", 1),
    ("head-saved-under-other-name", lambda c: edit_weights(c, rename("classifier.", "head.")), None, [],
     "unused-checkpoint-weights", 1),
]


def _shuffle_labels(rows):
    labels = [x["label"] for x in rows]
    random.Random(7).shuffle(labels)
    return [{**x, "label": y} for x, y in zip(rows, labels)]


@pytest.mark.parametrize("name,plant,data_fn,extra,code,exit_code", DEFECTS, ids=[d[0] for d in DEFECTS])
def test_planted_defect_is_found(model, rows, tmp_path, name, plant, data_fn, extra, code, exit_code):
    if plant is not None:
        plant(model)
    data = write_jsonl(data_fn(rows) if data_fn else rows, tmp_path / "data.jsonl")
    res = check(tmp_path, model, data, *extra)
    assert code in res.codes(), f"{name}: {res.codes()}\n{res.out}{res.err}"
    assert res.code == exit_code, f"{name}: exit {res.code}, findings {res.codes()}"
    finding = res.finding(code)
    assert finding["hint"] and finding["message"]
    json.dumps(res.report)  # plain JSON, no NaN


def test_permutation_evidence_gives_the_mapping(model, trained, tmp_path):
    swap_names(model)
    res = check(tmp_path, model, trained["data"])
    ev = res.finding("label-permutation")["evidence"]
    assert ev["mapping"] == {"0": 1, "1": 0, "2": 2}
    assert ev["mapping_names"]["0"] == "sport"
    assert ev["best_accuracy"] > 0.9 and ev["identity_accuracy"] < 0.5


def test_random_predictions_states_test_and_sample_size(model, rows, tmp_path):
    data = write_jsonl(_shuffle_labels(rows), tmp_path / "d.jsonl")
    ev = check(tmp_path, model, data).finding("random-predictions")["evidence"]
    assert "chi-square" in ev["test"] and ev["n"] == len(rows) and ev["p_value"] >= 0.01


def test_too_few_examples_says_how_many_are_needed(model, rows, tmp_path):
    data = write_jsonl(rows[:10], tmp_path / "d.jsonl")
    res = check(tmp_path, model, data)
    ev = res.finding("too-few-examples")["evidence"]
    assert ev["needed"] > 10 and "random-predictions" not in res.codes()


def test_fresh_head_in_check_logits_is_an_error_and_predicts_nothing_useful(model, trained, tmp_path):
    edit_weights(model, drop("classifier."))
    res = check(tmp_path, model, trained["data"])
    assert res.severities()["head-uninitialized"] == "error"


def test_unlabelled_data_runs_the_label_free_checks(model, rows, tmp_path):
    data = write_jsonl([{"text": r["text"]} for r in rows], tmp_path / "d.jsonl")
    res = check(tmp_path, model, data)
    assert res.code == 0 and res.report["data"]["labelled"] is False
    assert sum(res.report["metrics"]["prediction_histogram"].values()) == len(rows)


def test_unlabelled_constant_model_still_flags_input_independence(model, rows, tmp_path):
    edit_weights(model, zero_pooler)
    data = write_jsonl([{"text": r["text"]} for r in rows], tmp_path / "d.jsonl")
    found = [f for f in check(tmp_path, model, data).report["findings"] if f["code"] == "input-independent-logits"]
    # logits that barely move get the blanked-input baseline (a healthy run skips that pass)
    assert found and found[0]["evidence"]["blank_agreement"] >= 0.9 and found[0]["evidence"]["blank_n"] > 0


@pytest.mark.parametrize("cls", ["ListOfArrays", "TupleOutput"])
def test_other_output_shapes_are_normalised(trained, tmp_path, cls):
    res = check(tmp_path, trained["checkpoint"], trained["data"], "--model-class", f"{ZOO}:{cls}")
    assert res.code == 0 and res.report["metrics"]["accuracy"] > 0.9, res.out + res.err


def test_json_to_stdout_and_plot(trained, tmp_path):
    png = tmp_path / "cm.png"
    res = run_cli("check-logits", trained["checkpoint"], trained["data"], "--json", "-", "--plot", png)
    report = json.loads(res.out)
    assert report["command"] == "check-logits" and report["labeldiag_version"]
    assert set(report) >= {"model", "data", "device", "findings", "metrics", "elapsed_s"}
    assert "confusion matrix" in res.err  # the rich report went to stderr
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_fail_on_warning_turns_warnings_into_exit_1(model, trained, tmp_path):
    edit_weights(model, scale_head(300.0))
    assert check(tmp_path, model, trained["data"], "--fail-on", "warning").code == 1
    assert check(tmp_path, model, trained["data"], "--fail-on", "never").code == 0


def test_text_pairs_are_tokenized_as_pairs(trained, tmp_path, rows):
    pairs = [{"premise": r["text"], "hypothesis": "and so on", "label": r["label"]} for r in rows[:60]]
    res = check(tmp_path, trained["checkpoint"], write_jsonl(pairs, tmp_path / "p.jsonl"))
    assert res.report["data"]["text_field"] == "premise" and res.report["data"]["text_pair_field"] == "hypothesis"
    assert res.code in (0, 1)


def test_trainer_checkpoint_folder_loads_and_its_pickled_optimizer_is_left_alone(trained, tmp_path):
    ckpt = clone(trained["checkpoint"], tmp_path / "out" / "checkpoint-500")
    torch.save({"state": {}}, ckpt / "optimizer.pt")  # Trainer's pickled side files are never opened
    (ckpt / "trainer_state.json").write_text("{}")
    res = check(tmp_path, ckpt, trained["data"])
    assert res.code == 0 and res.problems() == [], res.err


def test_tokenized_pt_batch_needs_allow_pickle_then_runs(trained, tmp_path):
    from transformers import AutoTokenizer

    rows = rows_of(trained["data"])[:120]
    tok = AutoTokenizer.from_pretrained(trained["checkpoint"])
    enc = tok([r["text"] for r in rows], padding=True, return_tensors="pt")
    label2id = {"sport": 0, "politics": 1, "tech": 2}
    torch.save({**enc, "labels": torch.tensor([label2id[r["label"]] for r in rows])}, tmp_path / "batch.pt")
    refused = check(tmp_path, trained["checkpoint"], tmp_path / "batch.pt")
    assert refused.code == 2 and "--allow-pickle" in refused.err
    res = check(tmp_path, trained["checkpoint"], tmp_path / "batch.pt", "--allow-pickle")
    assert res.code == 0 and res.report["metrics"]["accuracy"] > 0.85, res.out + res.err
