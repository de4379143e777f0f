"""smoke-train: a zoo of tiny models with one training defect each, plus the healthy ones.

Tiny BERTs (hidden 32, 2 layers) on the synthetic 3-topic task; each CLI run takes about a second.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import zoo
from helpers import run_cli, write_jsonl


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def random_model(trained, tmp_path_factory):
    return zoo.random_model(trained, tmp_path_factory.mktemp("random"))


@pytest.fixture(scope="module")
def fresh_head(trained, tmp_path_factory):
    return zoo.fresh_head(trained, tmp_path_factory.mktemp("fresh_head"))


def smoke(model, data, *extra, tmp):
    return run_cli("smoke-train", model, data, "--no-progress", *extra, tmp=tmp)


# --- healthy -----------------------------------------------------------------------------------

def test_trained_model_fits(trained, tmp_path):
    png = tmp_path / "curve.png"
    r = smoke(trained["checkpoint"], trained["data"], "--plot", png, tmp=tmp_path)
    assert r.code == 0, (r.err, r.codes())
    assert r.problems() == []
    m = r.report["metrics"]
    assert m["fitted"] and m["fit_step"] >= 1 and m["final_accuracy"] == 1.0
    for key in ("steps_run", "fit_step", "final_loss", "initial_loss", "ln_num_labels", "steps_per_second",
                "examples_per_second", "tokens_per_second", "peak_memory_bytes", "peak_memory_kind",
                "device_name", "precision", "curve"):
        assert key in m, key
    assert m["peak_memory_kind"] == "process_peak_rss" and m["peak_memory_bytes"] > 10_000_000
    assert m["precision"] == "fp32" and math.isclose(m["ln_num_labels"], math.log(3))
    assert set(m["curve"][0]) == {"step", "loss", "accuracy", "grad_norm"}
    assert m["batch"]["examples"] == 32 and m["batch"]["classes"] == 3
    assert png.stat().st_size > 1000


def test_fresh_head_on_trained_encoder_fits(fresh_head, trained, tmp_path):
    r = smoke(fresh_head, trained["data"], "--lr", "3e-3", "--steps", "100", tmp=tmp_path)
    assert r.code == 0, (r.err, r.codes())
    assert r.severities().get("head-uninitialized") == "info"
    m = r.report["metrics"]
    assert m["fitted"] and m["preflight"]["head_fresh"]
    assert abs(m["initial_loss"] - math.log(3)) < 0.2  # a fresh head starts near ln C
    assert "loss-at-init-off" not in r.codes()


def test_checkpoint_on_disk_is_not_written(trained, tmp_path):
    ckpt = Path(trained["checkpoint"]) / "model.safetensors"
    before = (ckpt.stat().st_mtime_ns, ckpt.read_bytes())
    smoke(trained["checkpoint"], trained["data"], "--steps", "3", "--target-loss", "1e-9", tmp=tmp_path)
    assert (ckpt.stat().st_mtime_ns, ckpt.read_bytes()) == before


# --- defects beyond the zoo (tests/zoo.py) ------------------------------------------------------

def test_relu_on_logits_collapses_to_one_class(fresh_head, trained, tmp_path):
    # Where exactly the ReLU'd logits die depends on float details of the trained encoder, so try
    # the high learning rates that kill them and require the collapse to be caught in at least one.
    seen = []
    for lr in ("0.03", "0.1", "0.3"):
        r = smoke(fresh_head, trained["data"], "--steps", "20", "--lr", lr, "--model-class",
                  f"{zoo.MODELS}:ReluOnLogitsBert", tmp=tmp_path)
        seen.append((lr, r.codes()))
        if "collapse-during-training" in r.codes():
            assert r.code == 1
            f = r.finding("collapse-during-training")
            assert f["severity"] == "error" and not f["evidence"]["constant_from_start"]
            assert "predictions collapsed" in r.finding("cannot-overfit")["hint"]
            return
    raise AssertionError(f"no collapse caught: {seen}")


def test_triage_finds_the_learning_rate_that_fits(fresh_head, trained, tmp_path):
    r = smoke(fresh_head, trained["data"], "--steps", "60", "--lr", "3e-4", "--triage", tmp=tmp_path)
    assert "cannot-overfit" in r.codes()
    tri = {t["variant"]: t for t in r.report["metrics"]["triage"]}
    assert set(tri) == {"head only", "lr 3e-05", "lr 0.003"}  # fp32 already: no fp32 variant
    assert tri["lr 0.003"]["fitted"] and not tri["lr 3e-05"]["fitted"]
    assert "lr 0.003" in r.finding("cannot-overfit")["hint"]
    assert "triage" in r.out


# --- data --------------------------------------------------------------------------------------

def test_batch_is_stratified_from_class_sorted_data(random_model, tmp_path):
    from labeldiag.synthetic import make_examples

    rows = sorted(make_examples(120, seed=5), key=lambda r: r["label"])  # all politics, then sport, then tech
    data = write_jsonl(rows, tmp_path / "sorted.jsonl")
    r = smoke(random_model, data, "--max-examples", "6", "--steps", "1", tmp=tmp_path)
    assert r.report["metrics"]["batch"]["label_counts"] == {"sport": 2, "politics": 2, "tech": 2}
    assert "single-class-batch" not in r.codes()


def test_single_class_data_warns(random_model, tmp_path):
    from labeldiag.synthetic import make_examples

    rows = [r for r in make_examples(120, seed=2) if r["label"] == "sport"]
    data = write_jsonl(rows, tmp_path / "one.jsonl")
    r = smoke(random_model, data, "--steps", "2", tmp=tmp_path)
    assert r.severities()["single-class-batch"] == "warning"


@pytest.mark.parametrize("extra,needle", [
    (["--steps", "0"], "--steps"), (["--lr", "-1"], "--lr"), (["--target-loss", "0"], "--target-loss")],
    ids=["zero-steps", "negative-lr", "zero-target"])
def test_bad_options_exit_2(trained, tmp_path, extra, needle):
    r = smoke(trained["checkpoint"], trained["data"], *extra, tmp=tmp_path)
    assert r.code == 2 and needle in r.err and "Traceback" not in r.err


def test_unlabelled_data_exits_2(trained, tmp_path):
    data = write_jsonl([{"text": "goal match team"}] * 10, tmp_path / "nolabels.jsonl")
    r = smoke(trained["checkpoint"], data, tmp=tmp_path)
    assert r.code == 2 and "labels" in r.err


# --- data parallel -----------------------------------------------------------------------------

@pytest.mark.slow  # a whole process or a 10 MB input: the full suite runs it, the fast tier does not
def test_two_cpu_ranks_train_in_lockstep(fresh_head, trained, tmp_path):
    out = tmp_path / "ddp.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", LABELDIAG_DEBUG="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "labeldiag", "smoke-train", fresh_head, trained["data"], "--device", "cpu", "--lr", "3e-3",
           "--steps", "100", "--no-progress", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    m = report["metrics"]
    assert m["world_size"] == 2 and m["fitted"]
    assert m["ranks_max_relative_difference"] == 0.0
    assert [r["rank"] for r in m["ranks"]] == [0, 1]
    assert "ranks-diverged" not in [f["code"] for f in report["findings"]]
    assert proc.stdout.count("labeldiag smoke-train") == 1  # rank 0 alone renders


# --- pure checks -------------------------------------------------------------------------------

def _trace(**kw):
    from labeldiag.records import ParameterCensus, TrainingTrace

    census = ParameterCensus(trainable=("a.weight",), frozen=(), trainable_elements=10, frozen_elements=0)
    base = dict(num_classes=3, batch_classes=3, census=census, initial_loss=1.1)
    base.update(kw)
    return TrainingTrace(**base)


def _settings():
    from labeldiag.options import TrainSettings

    return TrainSettings(steps=100, target_loss=0.05, lr=1e-4)


def test_check_slow_convergence_from_numbers():
    from labeldiag.checks.training import check_training

    late = _trace(losses=[1.0] * 90, accuracies=[1.0] * 90, distinct_predictions=[3] * 90, fit_step=90)
    early = _trace(losses=[1.0] * 20, accuracies=[1.0] * 20, distinct_predictions=[3] * 20, fit_step=20)
    assert [f.code for f in check_training(late, _settings())] == ["slow-convergence"]
    assert check_training(early, _settings()) == []


def test_check_collapse_needs_several_classes_and_the_last_steps():
    from labeldiag.checks.training import check_training

    def codes(distinct, batch_classes=3):
        t = _trace(losses=[1.1] * len(distinct), accuracies=[0.3] * len(distinct), distinct_predictions=distinct,
                   batch_classes=batch_classes)
        return [f.code for f in check_training(t, _settings())]

    assert "collapse-during-training" in codes([3, 3, 2, 1, 1, 1, 1, 1])
    assert "collapse-during-training" not in codes([3, 1, 1, 1, 1, 2])
    assert "collapse-during-training" not in codes([1] * 8, batch_classes=1)


def test_check_ranks_and_layer_grouping():
    from labeldiag.checks.training import check_ranks, group_layers

    assert check_ranks(0.0, 2) == [] and check_ranks(None, 1) == []
    assert [f.code for f in check_ranks(1e-3, 2)] == ["ranks-diverged"]
    assert group_layers(["bert.encoder.layer.3.attention.self.query.weight", "bert.encoder.layer.3.output.bias",
                         "classifier.weight"]) == ["bert.encoder.layer.3", "classifier"]


def test_stratified_rows_cover_every_class():
    import numpy as np

    from labeldiag.measure.training import stratified_rows

    gold = np.array([0] * 50 + [1] * 3 + [2] * 50 + [-1] * 5)
    rows = stratified_rows(gold, 10, seed=0)
    assert len(rows) == 10 and set(gold[rows]) == {0, 1, 2}
    assert len(set(rows.tolist())) == 10


def test_head_parameters_of_a_bert():
    from labeldiag.measure.parameters import head_parameter_names
    from labeldiag.synthetic import tiny_bert

    assert head_parameter_names(tiny_bert(50, ["a", "b"])) == {"classifier.weight", "classifier.bias"}
