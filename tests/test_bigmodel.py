"""Models that outgrow one device (issue 21): --lora on a copy, --device-map auto for check-logits.

Tiny in-memory Llama and BERT sequence classifiers (hidden 32, 2 layers); nothing here launches torchrun.
"""
from __future__ import annotations

import pytest

from helpers import run_cli, save_tiny, write_jsonl

pytest.importorskip("peft")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def task(tokenizer_and_rows):
    tok, rows = tokenizer_and_rows
    return tok, rows[:64], sorted({r["label"] for r in rows})


def tiny(arch: str, tok, labels: list[str]):
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from zoo_architectures import tiny_classifier

    if arch == "llama":
        return tiny_classifier("llama", len(tok), labels)
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=128, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)}))


def state(model) -> dict:
    """Everything a LoRA wrap could change in place: modules, parameter values, requires_grad, class."""
    return {"class": type(model), "modules": [n for n, _ in model.named_modules()],
            "params": {n: (p.detach().clone(), p.requires_grad) for n, p in model.named_parameters()},
            "peft": getattr(model, "peft_config", None)}


def assert_unchanged(model, before: dict) -> None:
    import torch

    after = state(model)
    assert after["class"] is before["class"] and after["modules"] == before["modules"] and after["peft"] is None
    assert after["params"].keys() == before["params"].keys()
    for name, (value, grad) in before["params"].items():
        assert torch.equal(after["params"][name][0], value) and after["params"][name][1] == grad, name


def codes(report) -> set[str]:
    return {f.code for f in report.findings}


# --- --lora ----------------------------------------------------------------------------------------

def bert_with_fresh_head(trained):
    """The session's trained small BERT with its head re-drawn: a pretrained encoder under a new head, the
    situation LoRA is for (a random tiny BERT's [CLS] barely depends on the input, so nothing fits it)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(trained["checkpoint"])
    torch.manual_seed(0)
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 0.02)
        model.classifier.bias.zero_()
    return model, AutoTokenizer.from_pretrained(trained["checkpoint"]), trained["data"]


@pytest.mark.parametrize("arch", ["llama", "bert"])
def test_lora_smoke_train_fits_trains_adapter_and_head_and_leaves_the_model(task, trained, arch):
    from labeldiag import api

    tok, rows, labels = task
    model, data = tiny(arch, tok, labels), rows
    if arch == "bert":
        model, tok, data = bert_with_fresh_head(trained)
    before = state(model)
    report = api.smoke_train(model, data, tokenizer=tok, device="cpu", lora=4, lr=3e-3, steps=80, max_examples=16)
    m = report.metrics
    assert m["fitted"], m.get("curve", [])[-3:]
    lora = m["lora"]
    assert lora["rank"] == 4 and lora["adapter_tensors"] == 8 and lora["head_tensors"] >= 1
    assert lora["modules_to_save"] == (["score"] if arch == "llama" else ["classifier"])
    assert m["preflight"]["trainable"] == lora["adapter_tensors"] + lora["head_tensors"]
    # every adapter and head tensor moved (else parameters-unchanged); the frozen base is no finding
    assert not {"parameters-unchanged", "frozen-parameters", "disconnected-parameters", "nothing-trainable"} \
        & codes(report)
    assert "LoRA rank 4" in report.device and any("frozen by design" in n for n in report.notes)
    assert_unchanged(model, before)


def test_lora_is_the_default_above_the_stated_size_and_lora_0_turns_it_off(task, monkeypatch):
    from labeldiag import api
    from labeldiag import thresholds as T

    tok, rows, labels = task
    model = tiny("llama", tok, labels)
    monkeypatch.setattr(T, "LORA_DEFAULT_ABOVE_PARAMETERS", 1000)
    picked = api.smoke_train(model, rows, tokenizer=tok, device="cpu", steps=1, max_examples=8)
    assert picked.metrics["lora"]["rank"] == T.LORA_DEFAULT_RANK
    assert picked.metrics["lora"]["why"].startswith("picked:") and "--lora 0" in picked.metrics["lora"]["why"]
    assert "frozen-parameters" not in codes(picked)
    assert picked.metrics["lr"] == T.LORA_DEFAULT_LR and any("LoRA's default" in n for n in picked.notes)
    off = api.smoke_train(model, rows, tokenizer=tok, device="cpu", steps=1, max_examples=8, lora=0)
    assert "lora" not in off.metrics and "LoRA" not in off.device and off.metrics["lr"] == 1e-4
    chosen = api.smoke_train(model, rows, tokenizer=tok, device="cpu", steps=1, max_examples=8, lr=5e-4)
    assert chosen.metrics["lora"]["rank"] == T.LORA_DEFAULT_RANK and chosen.metrics["lr"] == 5e-4


def test_lora_trains_a_regression_head_too(task):
    """The other task shapes (here a one-output regression head, as reward models have) take --lora as well."""
    from labeldiag import api

    tok, rows, _ = task
    model = tiny("llama", tok, ["score"])
    model.config.problem_type = "regression"
    before = state(model)
    data = [{"text": r["text"], "label": float(len(r["text"].split()) % 5) - 2.0} for r in rows]
    report = api.smoke_train(model, data, tokenizer=tok, device="cpu", lora=4, steps=3, max_examples=16)
    assert report.model["task"] == "regression" and report.metrics["lora"]["modules_to_save"] == ["score"]
    assert report.metrics["lr"] == 1e-3 and not {"frozen-parameters", "disconnected-parameters"} & codes(report)
    assert_unchanged(model, before)


def test_lora_grad_flow_reaches_adapters_and_head_without_false_verdicts(task):
    from labeldiag import api

    tok, rows, labels = task
    model = tiny("llama", tok, labels)
    before = state(model)
    report = api.grad_flow(model, rows, tokenizer=tok, device="cpu", lora=4)
    layers = {r["name"]: r for r in report.metrics["layers"]}
    assert layers["layer 0"]["grad_norm"] > 0 and layers["score"]["grad_norm"] > 0  # adapters, head
    assert layers["model.embed_tokens"]["grad_norm"] is None  # frozen base: no gradient asked for
    assert not {"zero-gradients", "frozen-parameters", "disconnected-parameters"} & codes(report)
    assert any("lora_A" in n and "by design" in n for n in report.notes)
    assert_unchanged(model, before)


def test_lora_plan_and_option_values():
    from labeldiag import thresholds as T
    from labeldiag.errors import UsageError
    from labeldiag.measure.lora import plan_lora
    from labeldiag.options import build

    assert plan_lora(None, T.LORA_DEFAULT_ABOVE_PARAMETERS + 1, False).rank == T.LORA_DEFAULT_RANK
    assert plan_lora(None, T.LORA_DEFAULT_ABOVE_PARAMETERS, False).rank == 0
    assert plan_lora(None, 10**12, True).rank == 0  # a peft model trains its own adapters
    with pytest.raises(UsageError, match="already carries peft adapters"):
        plan_lora(8, 10, True)
    assert plan_lora(0, 10**12, False).rank == 0 and plan_lora(16, 10, False).rank == 16
    assert build("smoke-train", {"lora": "8"})[0].lora == 8
    for bad in (-1, 1.5, "x", 10**6):
        with pytest.raises(UsageError, match="--lora"):
            build("smoke-train", {"lora": bad})


# --- --device-map auto ----------------------------------------------------------------------------

def files_of(folder) -> dict:
    from pathlib import Path

    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def swapped_bert(trained, tmp_path_factory):
    """The trained BERT with two class names swapped in id2label: label-permutation, a verdict to compare."""
    import json

    from helpers import clone, edit_config

    ckpt = clone(trained["checkpoint"], tmp_path_factory.mktemp("dispatch") / "swapped")
    id2label = json.loads((ckpt / "config.json").read_text())["id2label"]
    id2label["0"], id2label["1"] = id2label["1"], id2label["0"]
    edit_config(ckpt, id2label=id2label, label2id={v: int(k) for k, v in id2label.items()})
    return ckpt, trained["data"]


def test_device_map_with_a_cpu_disk_split_gives_the_plain_logits_and_verdicts(swapped_bert, tmp_path, monkeypatch):
    import gc
    import tempfile
    from pathlib import Path

    from labeldiag import api

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # our offload folder only, whatever else runs
    ckpt, data = swapped_bert
    weights = (ckpt / "model.safetensors").stat().st_size
    before = files_of(ckpt)
    offload_before = set(Path(tempfile.gettempdir()).glob("labeldiag-offload-*"))
    plain = api.check_logits(str(ckpt), data, device="cpu", max_examples=256)
    split = api.check_logits(str(ckpt), data, device="cpu", max_examples=256, device_map="auto",
                             max_memory={"cpu": weights * 2 // 3})
    placed = split.metrics["device_map"]
    assert set(placed["placement"].values()) == {"cpu", "disk"} and placed["offloaded_tensors"] > 0
    assert "device_map auto" in split.device and any("offloaded" in n for n in split.notes)
    assert "label-permutation" in {f.code for f in plain.findings}
    assert [(f.code, f.severity) for f in split.sorted_findings()] == \
        [(f.code, f.severity) for f in plain.sorted_findings()]
    assert split.metrics["confusion_matrix"] == plain.metrics["confusion_matrix"]
    for key in ("accuracy", "macro_f1", "logit_stats", "representation_mean_cosine"):
        assert split.metrics.get(key) == pytest.approx(plain.metrics.get(key), rel=1e-5, abs=1e-6), key
    assert files_of(ckpt) == before  # nothing written into the checkpoint
    del split
    gc.collect()
    assert set(Path(tempfile.gettempdir()).glob("labeldiag-offload-*")) <= offload_before  # our folder is gone


@pytest.mark.parametrize("args, says", [
    (["--max-memory", "cpu=1GiB"], "--device-map auto"),
    (["--device-map", "balanced"], "--device-map auto"),
    (["--device-map", "auto", "--max-memory", "cpu=lots"], "20GiB"),
], ids=["max-memory-alone", "not-auto", "bad-size"])
def test_bad_device_map_options_exit_2_with_one_line(swapped_bert, tmp_path, args, says):
    ckpt, data = swapped_bert
    r = run_cli("check-logits", ckpt, data, *args, "--no-progress", tmp=tmp_path)
    assert r.code == 2 and says in r.err and len(r.err.strip().splitlines()) == 1, r.err


def test_device_map_does_not_combine_with_shard_lora_training_or_a_model_object(task):
    import torch

    from labeldiag import api
    from labeldiag.errors import UsageError

    tok, rows, labels = task
    model = tiny("llama", tok, labels)
    for call, options, says in [
        (api.check_logits, {"device_map": "auto", "shard": "fsdp"}, "--shard"),
        (api.smoke_train, {"device_map": "auto"}, "--device-map is for check-logits"),
        (api.grad_flow, {"device_map": "auto", "lora": 4}, "--lora"),
        (api.check_logits, {"device_map": "auto"}, "checkpoint path"),
    ]:
        with pytest.raises(UsageError, match=says):
            call(model, rows, tokenizer=tok, device="cpu", **options)
    model.hf_device_map = {"model": "cpu", "score": "disk"}  # what accelerate's dispatch leaves on a model
    with pytest.raises(UsageError, match="dispatched"):
        api.smoke_train(model, rows, tokenizer=tok, device="cpu", max_examples=8)
    assert all(p.device == torch.device("cpu") for p in model.parameters())


# --- grad-flow's activation-gradient mode (--device-map) ----------------------------------------

def test_activation_gradients_equal_plain_autograd(task):
    import torch

    from labeldiag.measure.activation_grads import ActivationGradients

    tok, rows, labels = task
    model = tiny("llama", tok, labels).eval()
    enc = tok([r["text"] for r in rows[:6]], padding=True, return_tensors="pt")
    y = torch.tensor([labels.index(r["label"]) for r in rows[:6]])
    flags = [p.requires_grad for p in model.parameters()]
    with ActivationGradients(model, {"score.weight"}) as mode:
        torch.nn.functional.cross_entropy(model(**enc).logits, y).backward()
    got = mode.result()
    assert [p.requires_grad for p in model.parameters()] == flags  # put back
    assert model.score.weight.grad is not None and model.model.layers[0].mlp.up_proj.weight.grad is None
    model.zero_grad(set_to_none=True)
    leaves = []

    def leaf(module, args, output):  # the embeddings' output as the one leaf that requires a gradient
        leaves.append(output.detach().requires_grad_())
        return leaves[-1]

    handle = model.get_input_embeddings().register_forward_hook(leaf)
    out = model(**enc, output_hidden_states=True)
    handle.remove()
    embeds, hidden = leaves[0], out.hidden_states
    for h in hidden[1:]:
        h.retain_grad()
    torch.nn.functional.cross_entropy(out.logits, y).backward()
    last = enc["attention_mask"].sum(1) - 1
    for measured, h in zip(got[:2], [embeds, hidden[1]]):  # the last entry of hidden_states is after the norm
        assert measured.grad_norm == pytest.approx(float(h.grad.norm()), rel=1e-5)
        assert measured.pooled_grad_norm == pytest.approx(float(h.grad[range(6), last].norm()), rel=1e-5)
    assert [g.name for g in got] == ["embeddings", "layer 0", "layer 1"]


def test_grad_flow_under_device_map_reads_hidden_state_gradients_without_false_verdicts(task, tmp_path):
    tok, rows, labels = task
    ckpt = save_tiny(tiny("llama", tok, labels), tok, tmp_path / "llama")
    data = write_jsonl(rows, tmp_path / "data.jsonl")
    weights = (ckpt / "model.safetensors").stat().st_size
    plain = run_cli("grad-flow", ckpt, data, "--device", "cpu", "--no-progress", tmp=tmp_path)
    split = run_cli("grad-flow", ckpt, data, "--device", "cpu", "--no-progress", "--device-map", "auto",
                    "--max-memory", f"cpu={weights * 3 // 4}", tmp=tmp_path)
    assert split.code == 0 and split.problems() == [], split.out + split.err
    m = split.report["metrics"]
    assert "disk" in m["device_map"]["placement"].values()
    assert m["loss"] == pytest.approx(plain.report["metrics"]["loss"], rel=1e-6)
    hidden = m["activation_gradients"]
    assert [h["name"] for h in hidden] == ["embeddings", "layer 0", "layer 1"]
    assert all(h["grad_norm"] > 0 and 0 < h["pooled_grad_norm"] <= h["grad_norm"] * (1 + 1e-9) for h in hidden)
    assert not {"nothing-trainable", "frozen-parameters", "disconnected-parameters"} & set(split.codes())
    assert "activation-gradient mode" in split.out


# --- faults at scale (one torchrun launch) ----------------------------------------------------------

@pytest.mark.slow
def test_a_rank_that_raises_ends_every_rank_with_a_line_naming_it(task, tmp_path):
    """Rank 1's forward raises: it names itself and the cause in one line, and the launcher ends rank 0."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    import labeldiag

    tok, rows, labels = task
    ckpt = save_tiny(tiny("llama", tok, labels), tok, tmp_path / "llama")
    data = write_jsonl(rows, tmp_path / "data.jsonl")
    before = files_of(ckpt)
    zoo = str(Path(__file__).parent / "zoo_sharding.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "labeldiag",
           "smoke-train", str(ckpt), str(data), "--shard", "fsdp", "--lora", "4", "--device", "cpu", "--no-progress",
           "--model-class", f"{zoo}:FaultOnRank1ForSequenceClassification", "--json", str(tmp_path / "r.json")]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=150,
                          env=dict(os.environ, OMP_NUM_THREADS="1", LABELDIAG_TEST_FAULT="raise",
                                   LABELDIAG_DIST_TIMEOUT="20"))
    seconds = time.monotonic() - started
    output = proc.stdout + proc.stderr
    named = [line for line in output.splitlines() if line.startswith("labeldiag: error: rank 1 of 2")]
    assert proc.returncode != 0 and len(named) == 1, output[-3000:]
    assert "a fault planted on rank 1" in named[0] and "every rank stops" in named[0]
    # torchrun's own summary is a traceback of its launcher; none comes from labeldiag
    assert "Traceback (most recent call last)" not in proc.stdout
    package = str(Path(labeldiag.__file__).parent)  # not "labeldiag/": the checkout may be named so too
    assert not [line for line in output.splitlines() if line.strip().startswith("File") and package in line]
    assert not (tmp_path / "r.json").exists() and files_of(ckpt) == before
    assert seconds < 120


def test_weight_statistics_read_offloaded_weights(task, tmp_path):
    """A head left uninitialised (1e6 in a row) is found from the offload as from the plain load: the weight
    checks read offloaded tensors (one at a time, from accelerate's weights map), not only those in memory."""
    import torch

    from labeldiag import api

    tok, rows, labels = task
    model = tiny("llama", tok, labels)
    with torch.no_grad():
        model.score.weight[0] = 1e6
    ckpt = save_tiny(model, tok, tmp_path / "llama")
    data = write_jsonl(rows, tmp_path / "data.jsonl")
    plain = api.check_logits(str(ckpt), str(data), device="cpu")
    split = api.check_logits(str(ckpt), str(data), device="cpu", device_map="auto", max_memory={"cpu": 10_000})
    assert split.metrics["device_map"]["offloaded_tensors"] == split.metrics["device_map"]["tensors"]
    assert split.metrics["device_map"]["unreadable_tensors"] == 0
    found = [f for f in split.findings if f.code == "head-weights-garbage"]
    assert found and "score.weight" in str(found[0].evidence)
    assert [(f.code, f.evidence) for f in split.sorted_findings()] == \
        [(f.code, f.evidence) for f in plain.sorted_findings()]


def test_device_map_without_accelerate_says_what_to_install(monkeypatch):
    import importlib.util

    from labeldiag.errors import UsageError
    from labeldiag.load.dispatch import dispatch_kwargs

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "accelerate" else real(name, *a))
    with pytest.raises(UsageError, match="pip install accelerate"):
        dispatch_kwargs("auto", None)
