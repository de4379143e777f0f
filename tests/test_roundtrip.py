"""Report.from_dict reads every command's JSON report back: to_dict() of the copy is the same JSON, and the
typed records (grad_flow, training, diagnosis) come back equal."""
from __future__ import annotations

import json

import numpy as np
import pytest

import shapes_zoo
import token_zoo

pytestmark = pytest.mark.xdist_group("test_roundtrip")  # one worker builds the module's reports

FEW = {"max_examples": 24, "batch_size": 8}


@pytest.fixture(scope="module")
def reports(trained, tmp_path_factory, one_thread):
    from labeldiag import check_logits, check_predictions, doctor, grad_flow, smoke_train

    ckpt, data = trained["checkpoint"], trained["data"]
    out = {
        "check-logits": check_logits(ckpt, data, **FEW),
        "grad-flow": grad_flow(ckpt, data, **FEW),
        "grad-flow-label-positions": grad_flow(ckpt, data, label_token_positions="1,2,3", **FEW),
        "smoke-train": smoke_train(ckpt, data, steps=6, **FEW),
        "smoke-train-triage": smoke_train(_untrained(tmp_path_factory.mktemp("fresh")), data, steps=2, lr=1e-9,
                                          triage=True, **FEW),
        "doctor": doctor(ckpt, data, steps=6, **FEW),
        "doctor-fresh-head": doctor(_untrained(tmp_path_factory.mktemp("fresh-doctor")), data, steps=2, **FEW),
    }
    for kind in ("multi-label", "regression", "pairwise"):
        built = shapes_zoo.build(tmp_path_factory.mktemp(kind), kind, steps=3)
        out[f"check-logits-{kind}"] = check_logits(built["checkpoint"], built["data"], **FEW)
        out[f"smoke-train-{kind}"] = smoke_train(built["checkpoint"], built["data"], steps=3, **FEW)
        if kind != "pairwise":
            out[f"grad-flow-{kind}"] = grad_flow(built["checkpoint"], built["data"], **FEW)
    tagger = token_zoo.build(tmp_path_factory.mktemp("tagger"), steps=3)
    out["check-logits-token"] = check_logits(tagger["checkpoint"], tagger["data"], **FEW)
    out["grad-flow-token"] = grad_flow(tagger["checkpoint"], tagger["data"], **FEW)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    out["check-predictions"] = check_predictions(rng.normal(size=(60, 3)), labels, ["a", "b", "c"])
    return out


def _untrained(out):
    """A tiny BERT that has never trained, so smoke-train cannot fit it in two steps and triages."""
    from labeldiag.synthetic import TOPICS, build_tokenizer, make_examples, save_tokenizer, tiny_bert

    tokenizer = build_tokenizer([r["text"] for r in make_examples(200, seed=0)])
    tiny_bert(len(tokenizer), list(TOPICS)).save_pretrained(out)
    save_tokenizer(tokenizer, out)
    return out


KINDS = ["check-logits", "grad-flow", "grad-flow-label-positions", "smoke-train", "smoke-train-triage", "doctor",
         "doctor-fresh-head",
         *(f"{c}-{k}" for k in ("multi-label", "regression", "pairwise") for c in ("check-logits", "smoke-train")),
         "grad-flow-multi-label", "grad-flow-regression", "check-logits-token", "grad-flow-token",
         "check-predictions"]


@pytest.mark.parametrize("kind", KINDS)
def test_report_reads_back_from_its_json(reports, kind):
    from labeldiag import Report

    report = reports[kind]
    d = report.to_dict()
    again = Report.from_dict(json.loads(json.dumps(d, allow_nan=False)))
    assert again.to_dict() == d
    assert again.to_json() == report.to_json()  # the same bytes, key order included
    assert kind != "smoke-train-triage" or d["metrics"]["triage"]
    assert kind != "grad-flow-label-positions" or d["metrics"]["label_token_heatmap"]["label_share"]
    for name in ("grad_flow", "training", "diagnosis", "logits", "forward", "representation", "token_stats",
                 "logit_stats"):
        if hasattr(report, name):
            assert getattr(again, name) == getattr(report, name), name



def test_grad_flow_reads_as_attributes(reports):
    flow, logits = reports["grad-flow"], reports["check-logits"]
    assert logits.grad_flow is None and flow.grad_flow.layers
    assert flow.grad_flow.layers[0].grad_norm == flow.metrics["layers"][0]["grad_norm"]
    assert reports["grad-flow-label-positions"].grad_flow.heatmap.label_share


def test_training_reads_as_attributes(reports):
    train, triaged = reports["smoke-train"].training, reports["smoke-train-triage"].training
    assert reports["grad-flow"].training is None and train.curve[-1].loss == train.final_loss
    assert train.steps_run == len(train.curve) and train.preflight.trainable > 0
    assert [run.variant for run in triaged.triage][:2] == ["head only", "lr 1e-10"] and not triaged.fitted


def test_diagnosis_reads_as_records(reports):
    doctor = reports["doctor-fresh-head"]
    ranked = doctor.diagnosis
    assert ranked and ranked[0].rank == 1 and ranked[0].code == doctor.to_dict()["diagnosis"][0]["code"]


def test_logits_read_as_attributes(reports):
    logits = reports["check-logits"].logits
    assert logits.accuracy == reports["check-logits"].metrics["accuracy"] > 0.9
    assert [c.name for c in logits.per_class] == list(logits.confusion_labels)
    assert reports["check-predictions"].logits.examples == 60 and reports["grad-flow"].logits is None
