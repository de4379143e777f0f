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
    _same_records(report, again)


RECORDS = ("grad_flow", "training", "batch", "diagnosis", "logits", "doctor", "device_map", "shard",
           "sharded_forward", "lora", "forward", "representation", "token_stats", "logit_stats")


def _same_records(report, again) -> None:
    for name in RECORDS:
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
    batch = reports["smoke-train"].batch
    assert batch.examples == sum(n for _, n in batch.label_counts) and batch.world_size == 1
    assert train.steps_budget == 6 and reports["grad-flow"].batch is None


def test_diagnosis_reads_as_records(reports):
    doctor = reports["doctor-fresh-head"]
    ranked = doctor.diagnosis
    assert ranked and ranked[0].rank == 1 and ranked[0].code == doctor.to_dict()["diagnosis"][0]["code"]


def test_logits_read_as_attributes(reports):
    logits = reports["check-logits"].logits
    assert logits.accuracy == reports["check-logits"].metrics["accuracy"] > 0.9
    assert [c.name for c in logits.per_class] == list(logits.confusion_labels)
    assert reports["check-predictions"].logits.examples == 60 and reports["grad-flow"].logits is None


# --- models that outgrow one device (issue 21): --lora, --device-map, a launched sharded run -----------------

@pytest.fixture(scope="module")
def big_reports(trained, tokenizer_and_rows, one_thread):
    """A LoRA smoke-train and grad-flow of a tiny Llama, and a check-logits and a grad-flow whose weights are split
    cpu / disk."""
    pytest.importorskip("peft")
    pytest.importorskip("accelerate")
    from pathlib import Path

    from labeldiag import api
    from zoo_architectures import tiny_classifier

    tok, rows = tokenizer_and_rows
    model = tiny_classifier("llama", len(tok), sorted({r["label"] for r in rows}))
    weights = (Path(trained["checkpoint"]) / "model.safetensors").stat().st_size
    return {"smoke-train-lora": api.smoke_train(model, rows[:16], tokenizer=tok, device="cpu", lora=4, steps=2),
            "grad-flow-lora": api.grad_flow(model, rows[:16], tokenizer=tok, device="cpu", lora=4),
            **{f"{command}-device-map": run(trained["checkpoint"], trained["data"], device="cpu", device_map="auto",
                                            max_memory={"cpu": weights * 2 // 3}, **FEW)
               for command, run in (("check-logits", api.check_logits), ("grad-flow", api.grad_flow))}}


@pytest.mark.parametrize("kind", ["smoke-train-lora", "grad-flow-lora", "check-logits-device-map",
                                  "grad-flow-device-map"])
def test_big_model_report_reads_back_from_its_json(big_reports, kind):
    from labeldiag import Report

    report = big_reports[kind]
    again = Report.from_dict(json.loads(report.to_json()))
    assert again.to_json() == report.to_json()
    _same_records(report, again)
    if kind.endswith("device-map"):
        assert report.device_map.offloaded_tensors > 0 and "disk" in dict(report.device_map.placement).values()
        assert report.metrics["device_map"]["tensors"] == report.device_map.tensors and report.lora is None
    else:
        assert report.lora.rank == 4 and report.lora.adapter_tensors > 0 and report.device_map is None
        assert report.metrics["lora"]["modules_to_save"] == list(report.lora.modules_to_save) == ["score"]


def test_sharded_run_reads_back_from_its_json(reports):
    """A launched FSDP2 run's JSON (torchrun writes it; here its sharding entries put into a grad-flow report's
    metrics where the run writes them, after the precision) reads back into ShardMode and ShardedAgreement."""
    from labeldiag import Report

    d = json.loads(reports["grad-flow"].to_json())
    metrics = d["metrics"]
    d["metrics"] = {"precision": metrics.pop("precision"),
                    "shard": {"mode": "fsdp", "world_size": 2, "why": "--shard fsdp",
                              "collective_timeout_seconds": 600.0},
                    "sharded_forward": {"layers": 2, "examples": 8, "tolerance": 1e-4,
                                        "logits_relative_difference": 0.0, "head_grad_relative_difference": None},
                    **metrics}
    again = Report.from_dict(d)
    assert again.to_dict() == d
    assert again.shard.mode == "fsdp" and again.shard.world_size == 2
    assert again.sharded_forward.logits_relative_difference == 0.0 and again.grad_flow.layers
    assert reports["grad-flow"].shard is None and reports["grad-flow"].sharded_forward is None
