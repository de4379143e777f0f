"""Token classification on the real pretrained MiniLM-L6 (issue 22): a tagger of rule-tagged BBC News
sentences (examples/token_models.py, head trained on the frozen encoder) gets no error and no warning from
check-logits; its head zeroed to all-O gets constant-predictions."""
from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from helpers import clone, edit_weights, run_cli, skip_without_examples_extra

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def test_real_minilm_tagger_is_healthy_and_its_all_o_head_is_constant(tmp_path):
    skip_without_examples_extra()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    import token_models

    rows = token_models.sentences()
    random.Random(0).shuffle(rows)
    token_models.train_head(tmp_path / "healthy", rows[:300], steps=800)
    data = token_models.write_jsonl(rows[300:400], tmp_path / "test.jsonl")
    r = run_cli("check-logits", tmp_path / "healthy", data, "--no-progress", tmp=tmp_path)
    assert r.code == 0 and r.problems() == [], r.out
    assert r.report["metrics"]["token"]["accuracy"] > 0.93 and r.report["metrics"]["token"]["entity_f1"] > 0.5

    def all_o(t):
        bias = t["classifier.bias"] * 0
        bias[0] = 5.0
        return {**t, "classifier.weight": t["classifier.weight"] * 0, "classifier.bias": bias}

    broken = clone(tmp_path / "healthy", tmp_path / "all_o")
    edit_weights(broken, all_o)
    r = run_cli("check-logits", broken, data, "--no-progress", tmp=tmp_path)
    assert "constant-predictions" in r.codes(), r.out
