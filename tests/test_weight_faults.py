"""Issue 20: faults planted for real inside a small trained BERT, each found by its code, and absent
from the healthy twin: classes-never-predicted, minority-classes-ignored, nondeterministic-eval only for
nondeterminism, layer-weights-anomalous, residual-stream-anomalous, weights-far-from-base."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import labeldiag

NEW_CODES = {"classes-never-predicted", "minority-classes-ignored", "layer-weights-anomalous",
             "residual-stream-anomalous", "weights-far-from-base"}


def rows_of(data: str) -> list[dict]:
    return [json.loads(line) for line in Path(data).read_text().splitlines()]


@pytest.fixture(scope="module")
def loaded(trained):
    from transformers import AutoTokenizer, BertForSequenceClassification

    return (BertForSequenceClassification.from_pretrained(trained["checkpoint"]).eval(),
            AutoTokenizer.from_pretrained(trained["checkpoint"]), rows_of(trained["data"]))


def planted(model, fn):
    """A copy of the model with fn(copy) applied under no_grad."""
    import copy

    twin = copy.deepcopy(model)
    with torch.no_grad():
        fn(twin)
    return twin


def codes(report) -> set[str]:
    return {f.code for f in report.findings}


def check(model, tok, rows, **options):
    return labeldiag.check_logits(model, rows, tokenizer=tok, device="cpu", **options)


def test_healthy_trained_model_gets_none_of_the_new_codes(loaded):
    model, tok, rows = loaded
    report = check(model, tok, rows)
    assert not codes(report) & NEW_CODES, [(f.code, f.message) for f in report.findings]
    assert not [f for f in report.findings if f.severity != "info"]


# --- classes-never-predicted / minority-classes-ignored ---------------------------------------------

def unreachable_class(k):
    def fn(m):
        m.classifier.bias[k] -= 100.0  # the output row of class k can no longer win
    return fn


def test_a_class_the_head_cannot_reach_is_never_predicted(loaded):
    model, tok, rows = loaded
    report = check(planted(model, unreachable_class(2)), tok, rows)
    f = next(f for f in report.findings if f.code == "classes-never-predicted")
    assert f.severity == "warning" and [r["class"] for r in f.evidence["classes"]] == ["tech"]
    assert f.evidence["classes"][0]["p_value"] < 1e-6 and "binomial" in f.evidence["test"]
    assert "minority-classes-ignored" not in codes(report)


def test_a_minority_class_swallowed_by_the_majority_is_ignored(loaded):
    model, tok, rows = loaded
    skewed = [r for r in rows if r["label"] != "tech"] + [r for r in rows if r["label"] == "tech"][:15]
    report = check(planted(model, unreachable_class(2)), tok, skewed)
    f = next(f for f in report.findings if f.code == "minority-classes-ignored")
    assert f.severity == "warning" and f.evidence["classes"][0]["class"] == "tech"
    assert f.evidence["others_recall"] > 0.9
    assert not codes(report) & {"classes-never-predicted", "constant-predictions"}
    healthy = check(model, tok, skewed)
    assert not codes(healthy) & NEW_CODES


def test_class_verdicts_need_support():
    from labeldiag.checks.classes import class_counts, classes_never_predicted, minority_classes_ignored

    gold = torch.tensor([0] * 20 + [1] * 20 + [2] * 3).numpy()
    logits = torch.nn.functional.one_hot(torch.tensor([0] * 20 + [1] * 23), 3).float().numpy()
    counts = class_counts(logits, gold)  # class 2 never predicted, but 3 examples prove nothing
    assert not classes_never_predicted(counts, ["a", "b", "c"]) + minority_classes_ignored(counts, ["a", "b", "c"])


# --- nondeterministic-eval: one symptom, one code ---------------------------------------------------

class MeanOverPads(torch.nn.Module):
    """A head that mean-pools every position, pads included: its logits depend on the batch's padding."""

    def __init__(self, clf):
        super().__init__()
        self.bert, self.classifier, self.config = clf.bert, clf.classifier, clf.config

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        hidden = self.bert(input_ids, attention_mask=attention_mask).last_hidden_state
        return self.classifier(hidden.mean(1))


class DropoutOn(MeanOverPads):
    """Masked pooling, but dropout applied in eval: logits change between identical passes."""

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        hidden = self.bert(input_ids, attention_mask=attention_mask).last_hidden_state[:, 0]
        return self.classifier(torch.nn.functional.dropout(hidden, 0.3, training=True))


def test_padding_is_padding_sensitive_not_nondeterministic_and_dropout_is_nondeterministic(loaded):
    model, tok, rows = loaded
    pads = check(MeanOverPads(model), tok, rows, batch_size=8)
    assert "padding-sensitive-logits" in codes(pads) and "nondeterministic-eval" not in codes(pads)
    dropout = check(DropoutOn(model), tok, rows, batch_size=8)
    assert "nondeterministic-eval" in codes(dropout)


def test_the_second_pass_repeats_whole_batches():
    from labeldiag.measure.encode import Encoded, TokenStats, subset
    from labeldiag.measure.forward import make_batches, whole_batch_rows

    lengths = [3, 7, 7, 2, 9, 7, 4, 4, 5, 7, 1, 6, 8]
    enc = Encoded(ids=[torch.arange(n).numpy() for n in lengths], type_ids=None, pad_id=0, special_ids=set(),
                  blank_id=0, stats=TokenStats(9, None, 9, None, None))
    main = [sorted(b.tolist()) for b in make_batches(enc, 3)]
    for seed in range(5):
        rows = whole_batch_rows(enc, 3, 6, seed)
        again = [sorted(rows[b].tolist()) for b in make_batches(subset(enc, rows), 3)]
        assert all(b in main for b in again) and sum(map(len, again)) == len(rows)
