"""On a real fine-tuned MiniLM (BBC News, 5 topics): reordered output rows keep label-permutation, a
Xavier-initialised head does not get it (issue 23; the full calibration is examples/damaged_models.py).

Uses the session's real BBC build (conftest's real_bbc, shared with the other real-model modules).
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("real-models")]

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from damaged_models import reorder_rows, xavier_head  # noqa: E402


def test_real_reordered_rows_keep_the_verdict_and_a_xavier_head_does_not_get_it(real_bbc):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from labeldiag import check_logits

    checkpoint, test = real_bbc
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    base = AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()
    verdicts = {}
    for name, plant in (("reordered", reorder_rows), ("xavier", lambda m: xavier_head(m, 0))):
        model = copy.deepcopy(base)
        plant(model)
        report = check_logits(model, str(test), tokenizer=tokenizer, max_examples=120, max_length=48,
                              device="cpu")
        verdicts[name] = report
    permuted = verdicts["reordered"].get("label-permutation")
    assert permuted is not None and permuted.evidence["best_accuracy"] > 0.85
    assert not verdicts["xavier"].has("label-permutation")
    assert verdicts["xavier"].has("predictions-weakly-informative"), [f.code for f in verdicts["xavier"].findings]
