"""PEFT adapter folders load onto their base model; a head lost from modules_to_save is reported."""
from __future__ import annotations

import pytest

from helpers import run_cli

peft = pytest.importorskip("peft")


def save_adapter(base: str, out, drop_head: bool):
    from peft import LoraConfig, TaskType, get_peft_model
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(base)
    get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=4, target_modules=["query", "value"])).save_pretrained(out)
    if drop_head:  # what a broken save gives: modules_to_save named, its weights absent
        weights = out / "adapter_model.safetensors"
        kept = {k: v for k, v in load_file(str(weights)).items() if "classifier" not in k}
        save_file(kept, str(weights))
    return out


def test_adapter_with_its_head_loads_and_is_healthy(trained, tmp_path):
    adapter = save_adapter(trained["checkpoint"], tmp_path / "adapter", drop_head=False)
    res = run_cli("check-logits", adapter, trained["data"], "--tokenizer", trained["checkpoint"], tmp=tmp_path)
    assert res.code == 0 and res.problems() == [], res.out + res.err
    assert res.report["metrics"]["accuracy"] > 0.85


def test_adapter_whose_head_was_lost_is_reported(trained, tmp_path):
    adapter = save_adapter(trained["checkpoint"], tmp_path / "adapter", drop_head=True)
    res = run_cli("check-logits", adapter, trained["data"], "--tokenizer", trained["checkpoint"], tmp=tmp_path)
    assert res.code == 1 and "head-uninitialized" in res.codes(), res.out + res.err
    assert "modules_to_save" in res.finding("head-uninitialized")["message"]
