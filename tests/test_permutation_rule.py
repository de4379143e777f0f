"""label-permutation only when the best mapping explains the model; predictions-weakly-informative otherwise
(issue 23). Faults are planted for real in the tiny trained BERT (reordered output rows, a Xavier head,
noise on every layer's output projections), as examples/damaged_models.py does on the real MiniLM."""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import clone, edit_config, run_cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from damaged_models import reorder_rows, residual_noise, xavier_head  # noqa: E402


@pytest.fixture(scope="module")
def loaded(trained, one_thread):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(trained["checkpoint"]).eval()
    return model, AutoTokenizer.from_pretrained(trained["checkpoint"]), trained["data"]


def _check(loaded, *plants):
    from labeldiag import check_logits

    base, tokenizer, data = loaded
    model = copy.deepcopy(base)
    for plant in plants:
        plant(model)
    return check_logits(model, data, tokenizer=tokenizer)


def test_reordered_output_rows_keep_label_permutation_with_the_rule_in_the_evidence(loaded):
    report = _check(loaded, reorder_rows)
    f = report.get("label-permutation")
    assert f is not None and not report.has("predictions-weakly-informative"), [x.code for x in report.findings]
    ev = f.evidence
    assert ev["best_accuracy"] > 0.9 and ev["identity_accuracy"] < 0.1
    assert abs(ev["best_accuracy"] - ev["mean_max_probability"]) < 0.05
    assert ev["identity_p_value"] < 1e-10 and "McNemar" in ev["identity_test"] and "kappa" in ev["rule"]
    assert ev["suggested_id2label"] == {"0": "tech", "1": "sport", "2": "politics"}


@pytest.mark.parametrize("plant", [lambda m: xavier_head(m, 1), lambda m: residual_noise(m, 16.0)],
                         ids=["xavier-head", "residual-noise"])
def test_damaged_weights_get_weakly_informative_not_a_renaming(loaded, plant):
    report = _check(loaded, plant)
    assert not report.has("label-permutation"), report.get("label-permutation").message
    f = report.get("predictions-weakly-informative")
    assert f is not None and f.severity == "warning", [x.code for x in report.findings]
    assert "renaming labels would not repair" in f.message and "suggested_id2label" not in f.evidence
    assert "id2label" not in f.hint and "doctor" in f.hint and "weights" in f.hint


def test_healthy_model_gets_neither(loaded):
    report = _check(loaded)
    assert not report.has("label-permutation") and not report.has("predictions-weakly-informative")


def test_judge_on_tables_a_mapping_must_match_the_confidence():
    from labeldiag.checks.mapping import judge_mapping
    from labeldiag.checks.logits import best_mapping

    names = ["a", "b", "c"]
    swapped = np.array([[0, 95, 5], [95, 0, 5], [5, 5, 90]])  # logit 0 is 'b', logit 1 is 'a'
    mapping = best_mapping(swapped)
    assert judge_mapping(swapped, mapping, 0.92, names, {})[0].code == "label-permutation"
    assert judge_mapping(swapped, mapping, 0.45, names, {})[0].code == "predictions-weakly-informative"
    weak = np.array([[20, 45, 35], [45, 20, 35], [33, 33, 34]])  # a mapping helps, but barely above chance
    found = judge_mapping(weak, best_mapping(weak), 0.45, names, {})
    assert [f.code for f in found] == ["predictions-weakly-informative"] and "chance" in found[0].message
    right_but_overclaiming = np.array([[60, 20, 20], [20, 60, 20], [20, 20, 60]])
    found = judge_mapping(right_but_overclaiming, best_mapping(right_but_overclaiming), 0.99, names, {})
    assert [f.code for f in found] == ["predictions-weakly-informative"]
    assert judge_mapping(right_but_overclaiming, best_mapping(right_but_overclaiming), 0.62, names, {}) == []


def test_smoke_train_reports_swapped_names_before_training(trained, tmp_path):
    ckpt = clone(trained["checkpoint"], tmp_path / "swapped")
    names = json.loads((ckpt / "config.json").read_text())["id2label"]
    names["0"], names["1"] = names["1"], names["0"]
    edit_config(ckpt, id2label=names, label2id={v: int(k) for k, v in names.items()})
    res = run_cli("smoke-train", ckpt, trained["data"], "--steps", "5", tmp=tmp_path)
    assert res.code == 1 and "label-permutation" in res.codes(), res.out + res.err
    assert "cannot-overfit" not in res.codes() and "slow-convergence" not in res.codes()
    assert any("relearn the names" in n for n in res.report["notes"])


def test_doctor_healthy_model_has_no_diagnosis_through_the_api(trained):
    from labeldiag import doctor

    report = doctor(trained["checkpoint"], trained["data"], max_examples=200)
    assert report.diagnosis == [] and report.exit_code("warning") == 0, [f.code for f in report.findings]
    assert not report.has("slow-convergence") and report.metrics["stages"]["smoke-train"]["ran"]


def test_truncation_under_the_users_max_length_is_a_note_not_a_cause():
    from rich.console import Console

    import labeldiag.render.doctor  # noqa: F401  (registers doctor's section)
    from labeldiag.checks.diagnosis import rank_findings
    from labeldiag.findings import Finding, Report
    from labeldiag.render.console import render_report

    report = Report(command="doctor")
    report.add(Finding("truncation-heavy", "100% of 400 examples are cut at --max-length 128", {}))
    report.diagnosis = rank_findings(report.findings)
    assert report.diagnosis == []
    console = Console(record=True, width=200)
    render_report(report, console)
    text = console.export_text()
    assert "note truncation-heavy (follows from the options given" in text and "diagnosis" not in text
