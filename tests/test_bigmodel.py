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
    off = api.smoke_train(model, rows, tokenizer=tok, device="cpu", steps=1, max_examples=8, lora=0)
    assert "lora" not in off.metrics and "LoRA" not in off.device


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
    assert plan_lora(0, 10**12, False).rank == 0 and plan_lora(16, 10, False).rank == 16
    assert build("smoke-train", {"lora": "8"})[0].lora == 8
    for bad in (-1, 1.5, "x", 10**6):
        with pytest.raises(UsageError, match="--lora"):
            build("smoke-train", {"lora": bad})
