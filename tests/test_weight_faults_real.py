"""Issue 20 on the real pretrained MiniLM-L6 (a fresh 5-class head, BBC texts): the unchanged encoder gets
none of the inside-the-model codes; a LayerNorm gain multiplied in one layer is named, and a query projection
re-initialised there is far from the base. The full fault table: examples/fault_injection.py."""
from __future__ import annotations

import copy
import random
import sys
from pathlib import Path

import pytest

from helpers import skip_without_examples_extra

import labeldiag

pytestmark = pytest.mark.slow
skip_without_examples_extra()

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import realmodels

INSIDE = {"layer-weights-anomalous", "residual-stream-anomalous", "attention-degenerate", "weights-far-from-base"}


def test_real_minilm_healthy_then_damaged_in_one_layer():
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    labels = realmodels.BBC_LABELS
    torch.manual_seed(0)
    base = str(realmodels.model_path())
    model = BertForSequenceClassification.from_pretrained(
        base, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
    tok = AutoTokenizer.from_pretrained(base)
    rows = realmodels.bbc_examples(30)
    random.Random(0).shuffle(rows)
    rows = rows[:64]

    def check(m):
        report = labeldiag.check_logits(m, rows, tokenizer=tok, device="cpu", base_model=base)
        return {f.code: f for f in report.findings}

    assert not set(check(model)) & INSIDE
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.bert.encoder.layer[2].output.LayerNorm.weight.mul_(3.0)
        broken.bert.encoder.layer[4].attention.self.query.weight.normal_(0.0, 0.02)
    found = check(broken)
    assert "bert.encoder.layer.2.output.LayerNorm.weight" in str(found["layer-weights-anomalous"].evidence)
    far = [t["tensor"] for t in found["weights-far-from-base"].evidence["tensors"]]
    assert "bert.encoder.layer.4.attention.self.query.weight" in far
