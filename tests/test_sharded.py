"""smoke-train and grad-flow under torchrun with FSDP2 (gloo, CPU): whole-parameter statistics, the checks only
a sharded run needs, and ranks that die or stall.

The launches are marked slow (each starts 2 or 4 Python processes with torch: ~15-25 s on a shared 2-core
machine); the judges, option and batch-split rules run in-process.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import run_cli, save_tiny, write_jsonl

ZOO = str(Path(__file__).parent / "zoo_sharding.py")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def llama(tokenizer_and_rows, tmp_path_factory):
    """A tiny random Llama classifier (2 blocks, hidden 32) and 64 labelled rows of the 3-topic task."""
    from zoo_architectures import tiny_classifier

    tok, rows = tokenizer_and_rows
    root = tmp_path_factory.mktemp("sharded")
    model = tiny_classifier("llama", len(tok), sorted({r["label"] for r in rows}))
    return {"checkpoint": str(save_tiny(model, tok, root / "llama")),
            "data": str(write_jsonl(rows[:64], root / "data.jsonl"))}


def torchrun(ranks: int, *args, tmp: Path, env: dict | None = None, timeout: int = 150):
    out = tmp / f"report-{ranks}.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks),
           "-m", "labeldiag", *map(str, args), "--device", "cpu", "--no-progress", "--json", str(out)]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, OMP_NUM_THREADS="1", **(env or {})))
    report = json.loads(out.read_text()) if out.exists() else None
    return proc, report, time.monotonic() - started


def codes(report) -> list[str]:
    return [f["code"] for f in report["findings"]]


# --- in-process: options, batch split, judges ---------------------------------------------------

def test_fsdp_without_a_launcher_exits_2(llama, tmp_path):
    r = run_cli("grad-flow", llama["checkpoint"], llama["data"], "--shard", "fsdp", "--no-progress", tmp=tmp_path)
    assert r.code == 2 and "torchrun" in r.err and len(r.err.strip().splitlines()) == 1


def test_unknown_shard_mode_exits_2(llama, tmp_path):
    r = run_cli("smoke-train", llama["checkpoint"], llama["data"], "--shard", "zero3", tmp=tmp_path)
    assert r.code == 2 and "--shard" in r.err


def test_a_batch_the_ranks_cannot_split_evenly_is_refused():
    from labeldiag.distributed import Dist, check_batch_split
    from labeldiag.errors import UsageError

    check_batch_split(32, Dist(rank=0, world=4))
    with pytest.raises(UsageError, match="multiple of 4"):
        check_batch_split(30, Dist(rank=0, world=4))


def test_judges_from_numbers():
    from labeldiag.checks.sharding import head_differs_across_ranks, sharded_forward_mismatch
    from labeldiag.records import HeadAcrossRanks, ShardedForward

    same = HeadAcrossRanks(world=2, head_parameters=["score.weight"], digests=["ab", "ab"], norms=[1.0, 1.0],
                           max_relative_difference=0.0)
    other = HeadAcrossRanks(world=2, head_parameters=["score.weight"], digests=["ab", "cd"], norms=[1.0, 1.2],
                            max_relative_difference=0.3)
    assert head_differs_across_ranks(same) == []
    assert head_differs_across_ranks(other)[0].evidence["differing_ranks"] == [1]
    healthy = ShardedForward(world=2, layers=2, examples=8, precision="fp32", tolerance=1e-4,
                             logits_relative_difference=1e-7, head_grad_relative_difference=0.0)
    bad = ShardedForward(world=2, layers=2, examples=8, precision="fp32", tolerance=1e-4,
                         logits_relative_difference=0.0, head_grad_relative_difference=float("inf"))
    assert sharded_forward_mismatch(healthy) == []
    assert "head gradients" in sharded_forward_mismatch(bad)[0].message


# --- launched -----------------------------------------------------------------------------------

@pytest.mark.slow
def test_grad_flow_table_under_fsdp_equals_one_process(llama, tmp_path):
    from labeldiag import api

    one = api.run("grad-flow", llama["checkpoint"], llama["data"], device="cpu").to_dict()
    proc, report, _ = torchrun(2, "grad-flow", llama["checkpoint"], llama["data"], "--shard", "fsdp", tmp=tmp_path)
    assert report is not None, proc.stderr[-3000:]
    m = report["metrics"]
    assert m["shard"]["mode"] == "fsdp" and "FSDP2" in report["device"]
    assert [r["name"] for r in m["layers"]] == [r["name"] for r in one["metrics"]["layers"]]
    for sharded, whole in zip(m["layers"], one["metrics"]["layers"]):
        for key in ("grad_norm", "grad_weight_ratio", "update_weight_ratio", "zero_share", "max_abs_grad", "no_grad"):
            assert sharded[key] == pytest.approx(whole[key], rel=1e-5, abs=1e-9), (sharded["name"], key)
    assert m["loss"] == pytest.approx(one["metrics"]["loss"], rel=1e-6)
    assert not {"head-differs-across-ranks", "sharded-forward-mismatch"} & set(codes(report))
    assert m["sharded_forward"]["logits_relative_difference"] <= 1e-6
    assert proc.stdout.count("labeldiag grad-flow") == 1  # rank 0 alone renders


@pytest.mark.slow
def test_four_rank_fsdp_smoke_train_of_a_bert_fits(trained, tmp_path):
    proc, report, _ = torchrun(4, "smoke-train", trained["checkpoint"], trained["data"], "--shard", "fsdp",
                               "--lr", "3e-3", "--steps", "40", tmp=tmp_path)
    assert proc.returncode == 0 and report is not None, proc.stderr[-3000:]
    m = report["metrics"]
    assert m["world_size"] == 4 and m["fitted"] and m["ranks_max_relative_difference"] == 0.0
    assert m["sharded_forward"]["logits_relative_difference"] <= 1e-6
    assert not {"ranks-diverged", "head-differs-across-ranks", "sharded-forward-mismatch",
                "parameters-unchanged"} & set(codes(report))


@pytest.mark.slow
def test_rank_dependent_initialisation_is_caught(llama, tmp_path):
    proc, report, _ = torchrun(2, "grad-flow", llama["checkpoint"], llama["data"], "--shard", "fsdp",
                               "--model-class", f"{ZOO}:BothPerRankForSequenceClassification", tmp=tmp_path)
    assert report is not None, proc.stderr[-3000:]
    found = {f["code"]: f for f in report["findings"]}
    assert found["head-differs-across-ranks"]["severity"] == "error"
    assert found["head-differs-across-ranks"]["evidence"]["differing_ranks"] == [1]
    assert found["sharded-forward-mismatch"]["severity"] == "error"
    assert found["sharded-forward-mismatch"]["evidence"]["logits_relative_difference"] > 1e-2


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["die", "stall"])
def test_a_rank_that_dies_or_stalls_ends_the_run(llama, tmp_path, fault):
    timeout = 5
    proc, report, seconds = torchrun(2, "grad-flow", llama["checkpoint"], llama["data"], "--shard", "fsdp",
                                     "--model-class", f"{ZOO}:FaultOnRank1ForSequenceClassification", tmp=tmp_path,
                                     env={"LABELDIAG_TEST_FAULT": fault, "LABELDIAG_DIST_TIMEOUT": str(timeout)})
    assert proc.returncode != 0 and report is None
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("labeldiag: error: rank")]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert ("closed its connection" if fault == "die" else f"within {timeout} s") in lines[0] \
        or "stopped by the launcher" in lines[0]
    assert "Traceback (most recent call last)" not in proc.stdout
    assert seconds < 120
