"""check-logits through the CLI: healthy runs, data forms and outputs (the planted defects are in tests/zoo.py)."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from helpers import clone, edit_weights, run_cli, write_jsonl
from zoo import MODELS, scale_head, zero_pooler


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


@pytest.mark.parametrize("cls", ["ListOfArraysBert", "TupleOutputBert"])
def test_other_output_shapes_are_normalised(trained, tmp_path, cls):
    res = check(tmp_path, trained["checkpoint"], trained["data"], "--model-class", f"{MODELS}:{cls}")
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
