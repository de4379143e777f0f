"""doctor ranks the root cause over its symptoms; fix writes a corrected copy and never touches the original."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from helpers import clone, edit_config, edit_weights, run_cli

ZOO = Path(__file__).parent / "zoo_models.py"


def doctor(*args, tmp):
    return run_cli("doctor", *args, "--max-examples", "300", "--steps", "30", tmp=tmp)


def _diagnosis(res):
    assert res.report is not None, res.err
    return res.report["diagnosis"]


def test_healthy_model_gets_no_diagnosis(trained, tmp_path):
    res = doctor(trained["checkpoint"], trained["data"], tmp=tmp_path)
    assert res.code == 0, res.out + res.err
    assert _diagnosis(res) == [] and res.problems() == []
    assert all(s["ran"] for s in res.report["metrics"]["stages"].values())


def test_missing_head_is_the_root_of_uniform_and_chance_predictions(trained, tmp_path):
    ckpt = clone(trained["checkpoint"], tmp_path / "headless")
    edit_weights(ckpt, lambda t: {k: v for k, v in t.items() if not k.startswith("classifier")})
    res = doctor(ckpt, trained["data"], tmp=tmp_path)
    top = _diagnosis(res)[0]
    assert res.code == 1 and top["code"] == "head-uninitialized" and top["rank"] == 1, _diagnosis(res)
    symptoms = set(res.problems()) - {"head-uninitialized"}
    assert symptoms and symptoms <= set(top["explains"]), (symptoms, top)
    assert len(_diagnosis(res)) == 1  # nothing else stands as a problem of its own


def test_detached_pooled_vector_is_the_root_of_what_training_shows(trained, tmp_path):
    res = doctor(trained["checkpoint"], trained["data"], "--model-class", f"{ZOO}:DetachedPooledBert", tmp=tmp_path)
    top = _diagnosis(res)[0]
    assert top["code"] == "disconnected-parameters", _diagnosis(res)
    training = {"cannot-overfit", "parameters-unchanged"} & set(res.codes())
    assert training and training <= set(top["explains"]), (res.codes(), top)


def test_swapped_names_are_the_whole_story(trained, tmp_path):
    ckpt = clone(trained["checkpoint"], tmp_path / "swapped")
    names = json.loads((ckpt / "config.json").read_text())["id2label"]
    names["0"], names["1"] = names["1"], names["0"]
    edit_config(ckpt, id2label=names, label2id={v: int(k) for k, v in names.items()})
    res = doctor(ckpt, trained["data"], tmp=tmp_path)
    assert [e["code"] for e in _diagnosis(res)] == ["label-permutation"], _diagnosis(res)
    assert res.report["metrics"]["stages"]["grad-flow"]["ran"]
    assert "label names" in res.report["metrics"]["stages"]["smoke-train"]["skipped"]


def test_a_stage_made_moot_is_skipped_with_the_reason(trained, tmp_path):
    res = doctor(trained["checkpoint"], trained["data"], "--model-class", f"{ZOO}:AllFrozenBert", tmp=tmp_path)
    stages = res.report["metrics"]["stages"]
    assert stages["smoke-train"] == {"ran": False, "skipped": "nothing is trainable"}
    assert any("smoke-train skipped" in n for n in res.report["notes"])
    assert _diagnosis(res)[0]["code"] == "nothing-trainable"


def test_doctor_from_python(trained):
    from labeldiag import doctor as run_doctor

    report = run_doctor(trained["checkpoint"], trained["data"], max_examples=200, steps=20)
    assert report.command == "doctor" and report.diagnosis == [] and report.exit_code() == 0
    assert "diagnosis" in report.to_dict()


def test_doctor_reads_data_once_for_the_stages_that_read_as_many_rows(trained, monkeypatch):
    from labeldiag import doctor as run_doctor
    from labeldiag import thresholds as T
    from labeldiag.diagnose import SMOKE_EXAMPLES
    from labeldiag.load import objects

    counts, read = [], objects.read
    monkeypatch.setattr(objects, "read", lambda data, opts: counts.append(opts.max_examples) or read(data, opts))
    report = run_doctor(trained["checkpoint"], trained["data"], max_examples=24, steps=10)
    assert all(stage["ran"] for stage in report.metrics["stages"].values()), report.metrics["stages"]
    # check-logits and grad-flow (24 <= its 32 rows) measure the rows doctor read; smoke-train reads its pool
    assert counts == [24, SMOKE_EXAMPLES * T.SMOKE_POOL_FACTOR]


# --- fix ------------------------------------------------------------------------------------------------

def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).iterdir())}


def test_fix_writes_a_corrected_copy_and_leaves_the_original(trained, tmp_path):
    ckpt = clone(trained["checkpoint"], tmp_path / "swapped")
    names = json.loads((ckpt / "config.json").read_text())["id2label"]
    names["0"], names["2"] = names["2"], names["0"]
    edit_config(ckpt, id2label=names, label2id={v: int(k) for k, v in names.items()})
    before = _digest(ckpt)
    out = tmp_path / "fixed"
    res = run_cli("fix", ckpt, trained["data"], "--out", out)
    assert res.code == 0, res.out + res.err
    assert _digest(ckpt) == before  # the original is byte-identical
    assert "label-permutation" in res.out and "fixed" in res.out
    fixed = json.loads((out / "config.json").read_text())
    original = json.loads((Path(trained["checkpoint"]) / "config.json").read_text())
    assert fixed["id2label"] == original["id2label"] and fixed["label2id"] == original["label2id"]
    assert _digest(out)["model.safetensors"] == before["model.safetensors"]  # weights unchanged
    assert run_cli("check-logits", out, trained["data"], tmp=tmp_path).problems() == []


def test_fix_refuses_when_nothing_is_fixable(trained, tmp_path):
    res = run_cli("fix", trained["checkpoint"], trained["data"], "--out", tmp_path / "copy")
    assert res.code == 2 and "nothing in MODEL can be fixed" in res.err
    assert not (tmp_path / "copy").exists()


@pytest.mark.parametrize("where", ["inside", "same", "nonempty"])
def test_fix_never_writes_into_the_checkpoint(trained, tmp_path, where):
    ckpt = clone(trained["checkpoint"], tmp_path / "ckpt")
    before = _digest(ckpt)
    target = {"inside": ckpt / "fixed", "same": ckpt, "nonempty": tmp_path}[where]
    res = run_cli("fix", ckpt, trained["data"], "--out", target)
    assert res.code == 2 and res.err.count("\n") == 1, res.err
    assert _digest(ckpt) == before


def test_doctor_attaches_a_head_of_another_size_on_a_checkpoint_path(trained, tmp_path):
    res = doctor(trained["checkpoint"], trained["data"], "--labels", "politics,sport,tech,other", tmp=tmp_path)
    assert res.report is not None, res.err
    assert res.report["model"]["num_labels"] == 4
    assert _diagnosis(res)[0]["code"] == "head-uninitialized"
