"""The issue-11 codes on the real pretrained MiniLM-L6 (a fresh 5-class head over its encoder, BBC texts):
each planted defect is found and the unchanged model gets none of them.

Skipped when the `examples` extra is absent. Calibration numbers are in the issue-11 note.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from helpers import skip_without_examples_extra

import labeldiag

# one worker builds the module's real models once (pytest -n 2 --dist loadgroup)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_new_codes_real")]
skip_without_examples_extra()

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import realmodels

NEW_CODES = {"padding-sensitive-logits", "pad-token-missing", "half-precision-weights", "label-order-mismatch",
             "tokenizer-casing-mismatch", "foreign-token-ids", "learning-rate-too-high"}


@pytest.fixture(scope="module")
def minilm():
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    labels = realmodels.BBC_LABELS
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(
        str(realmodels.model_path()), num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)})
    rows = realmodels.bbc_examples(60)
    random.Random(0).shuffle(rows)
    return model, AutoTokenizer.from_pretrained(str(realmodels.model_path())), rows[:96]


def codes(report) -> set[str]:
    return {f.code for f in report.findings}


def test_healthy_minilm_gets_none_of_the_new_codes(minilm):
    model, tok, rows = minilm
    assert not codes(labeldiag.check_logits(model, rows, tokenizer=tok, max_length=128)) & NEW_CODES
    assert not codes(labeldiag.grad_flow(model, rows, tokenizer=tok, max_length=128, max_examples=16)) & NEW_CODES


def test_mean_pooling_over_pads_around_minilm(minilm):
    import torch

    model, tok, rows = minilm

    class MeanOverPads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert, self.classifier, self.config = model.bert, model.classifier, model.config

        def forward(self, input_ids, attention_mask=None):
            return self.classifier(self.bert(input_ids, attention_mask=attention_mask).last_hidden_state.mean(1))

    report = labeldiag.check_logits(MeanOverPads(), rows, tokenizer=tok, max_length=128)
    assert "padding-sensitive-logits" in codes(report)


def test_classlabel_in_another_order(minilm):
    import datasets

    model, tok, rows = minilm
    names = sorted(realmodels.BBC_LABELS, reverse=True)
    feats = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names)})
    data = datasets.Dataset.from_list([{"text": r["text"], "label": names.index(r["label"])} for r in rows],
                                      features=feats)
    assert "label-order-mismatch" in codes(labeldiag.check_logits(model, data, tokenizer=tok, max_length=128))


def test_case_keeping_tokenizer_and_foreign_ids(minilm):
    from transformers import AutoTokenizer

    from labeldiag.synthetic import build_tokenizer

    model, tok, rows = minilm
    keeps_case = AutoTokenizer.from_pretrained(str(realmodels.model_path()), do_lower_case=False)
    assert "tokenizer-casing-mismatch" in codes(labeldiag.check_logits(model, rows, tokenizer=keeps_case,
                                                                      max_length=128))
    texts = [r["text"] for r in rows]
    other = build_tokenizer(texts, model_max_length=128)
    for tokenizer, foreign in ((tok, False), (other, True)):
        data = dict(tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt"))
        data.pop("token_type_ids", None)
        assert ("foreign-token-ids" in codes(labeldiag.check_logits(model, data, tokenizer=tok))) is foreign


def test_fp16_copy_and_far_too_high_rate(minilm, tmp_path):
    model, tok, rows = minilm
    model.half().save_pretrained(tmp_path)
    model.float()
    tok.save_pretrained(tmp_path)
    # the weights' dtype is read from the checkpoint: 4 short examples say it as well as 16 long ones, and
    # a float16 backward on a CPU is ten times slower
    report = labeldiag.grad_flow(str(tmp_path), rows, max_length=32, max_examples=4)
    assert "half-precision-weights" in codes(report)
    high = labeldiag.grad_flow(model, rows, tokenizer=tok, max_length=128, max_examples=16, lr=1e-1)
    assert "learning-rate-too-high" in codes(high)
