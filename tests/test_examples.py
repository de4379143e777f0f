"""The situations of SEEDS.md, built from examples/ and diagnosed through the CLI."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from helpers import run_cli

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import build_examples

    return build_examples.build_all(tmp_path_factory.mktemp("examples"))


def cls(file: str, name: str) -> list[str]:
    return ["--model-class", f"{EXAMPLES / file}:{name}"]


LABEL_TOKEN = cls("label_token_model.py", "LabelTokenRoberta")
SUPCON = cls("supcon_model.py", "BertWithSupCon")
DISTIL = cls("distilbert_head.py", "DistilStyleClassifier")
COLLAPSE = cls("collapse_model.py", "CollapsedBert")

# (id, command, variant, extra args, codes that must appear, codes that must not)
CASES = [
    ("label-token-broken", "grad-flow", "label_token/broken", LABEL_TOKEN + ["--label-token-positions", "1,2,3"],
     {"no-grad-to-label-tokens", "exploding-gradients"}, set()),
    ("label-token-detached-by-word", "grad-flow", "label_token/detached",
     LABEL_TOKEN + ["--label-tokens", "contradiction,neutral,entailment"], {"no-grad-to-label-tokens"}, set()),
    ("label-token-healthy", "grad-flow", "label_token/healthy", LABEL_TOKEN + ["--label-token-positions", "1,2,3"],
     set(), {"no-grad-to-label-tokens", "exploding-gradients", "disconnected-parameters"}),
    ("supcon-views-bug", "grad-flow", "supcon/broken", SUPCON, {"loss-term-without-gradient"}, set()),
    ("supcon-healthy", "grad-flow", "supcon/healthy", SUPCON, set(), {"loss-term-without-gradient"}),
    ("distil-dead-pre-classifier", "grad-flow", "distil_head/broken", DISTIL, {"dead-units"}, set()),
    ("distil-healthy", "grad-flow", "distil_head/healthy", DISTIL, set(), {"dead-units", "zero-gradients"}),
    ("distil-float-labels", "check-logits", "distil_head/float_labels", DISTIL, {"problem-type-mismatch"}, set()),
    ("simcse-collapsed", "check-logits", "collapse/broken", COLLAPSE,
     {"representation-collapse", "input-independent-logits"}, set()),
    ("simcse-healthy", "check-logits", "collapse/healthy", COLLAPSE, set(),
     {"representation-collapse", "input-independent-logits"}),
]


@pytest.mark.parametrize("name,command,variant,extra,present,absent", CASES, ids=[c[0] for c in CASES])
def test_situation_is_diagnosed(built, tmp_path, name, command, variant, extra, present, absent):
    ckpt, data = built[variant]
    res = run_cli(command, ckpt, data, "--device", "cpu", "--no-progress", *extra, tmp=tmp_path)
    assert res.report is not None, res.err
    codes = set(res.codes())
    assert present <= codes, f"{name}: {sorted(codes)}"
    assert not (absent & codes), f"{name}: {sorted(codes)}"
    if any(f["severity"] == "error" for f in res.report["findings"]):
        assert res.code == 1
