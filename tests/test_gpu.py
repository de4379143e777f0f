"""The same commands on a CUDA device: bf16 training fits, and predictions match the CPU's.

Run with `pytest -m gpu` (benchmarks/gpu.sh does); every test skips where there is no CUDA device.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers import run_cli

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


def logits_on(device: str, precision: str, trained) -> np.ndarray:
    """The trained model's logits on its held-out data, through labeldiag's own forward pass."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from labeldiag.records import Examples
    from labeldiag.measure.encode import encode
    from labeldiag.measure.forward import run_forward
    from labeldiag.measure.runtime import pick_runtime

    texts = [json.loads(line)["text"] for line in open(trained["data"], encoding="utf-8")]
    tok = AutoTokenizer.from_pretrained(trained["checkpoint"])
    model = AutoModelForSequenceClassification.from_pretrained(trained["checkpoint"]).eval()
    cfg = model.config
    enc = encode(Examples(path=trained["data"], columns=["text"], texts=texts), tok, 64, cfg.vocab_size,
                 cfg.max_position_embeddings, cfg.pad_token_id)
    runtime = pick_runtime(device, precision)
    return run_forward(model.to(runtime.device), enc, runtime, 32).logits


def test_cuda_logits_match_cpu(trained):
    cpu = logits_on("cpu", "fp32", trained)
    cuda = logits_on("cuda", "fp32", trained)  # TF32 matmuls: close, not bit-equal
    assert cuda.shape == cpu.shape
    assert np.abs(cuda - cpu).max() < 2e-2 * max(1.0, np.abs(cpu).max())
    assert (cuda.argmax(1) == cpu.argmax(1)).mean() >= 0.99


def test_check_logits_on_cuda_bf16_agrees_with_cpu(trained, tmp_path):
    on_cpu = run_cli("check-logits", trained["checkpoint"], trained["data"], "--device", "cpu", "--no-progress",
                     tmp=tmp_path)
    on_gpu = run_cli("check-logits", trained["checkpoint"], trained["data"], "--device", "cuda",
                     "--precision", "bf16", "--no-progress", tmp=tmp_path)
    assert on_cpu.code == 0 and on_gpu.code == 0, (on_cpu.err, on_gpu.err)
    assert "cuda" in on_gpu.report["device"] and on_gpu.report["metrics"]["precision"] == "bf16"
    assert on_gpu.problems() == on_cpu.problems() == []
    assert abs(on_gpu.report["metrics"]["accuracy"] - on_cpu.report["metrics"]["accuracy"]) <= 0.02


def test_smoke_train_bf16_on_cuda_fits(trained, tmp_path):
    r = run_cli("smoke-train", trained["checkpoint"], trained["data"], "--device", "cuda", "--precision", "bf16",
                "--no-progress", tmp=tmp_path)
    assert r.code == 0, (r.err, r.codes())
    m = r.report["metrics"]
    assert m["precision"] == "bf16" and m["fitted"] and m["final_accuracy"] == 1.0
    assert m["peak_memory_kind"] == "cuda_max_allocated"  # measured on the device, not the host process
    assert m["steps_per_second"] > 0
