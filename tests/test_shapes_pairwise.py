"""Pairwise scorers (issue 19): TRL chosen / rejected pairs, pairwise accuracy with a binomial test, the
margins; score-collapse and pairwise-chance planted for real in a tiny Bradley-Terry-trained reward model;
smoke-train with the Bradley-Terry loss; a pair with one side missing."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers import clone, edit_weights, run_cli, write_jsonl
import shapes_zoo

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.xdist_group("test_shapes_pairwise")]  # one worker builds the module's models


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return shapes_zoo.build(tmp_path_factory.mktemp("pairwise"), "pairwise", steps=100)


def test_healthy_reward_model_gets_metrics_and_no_problem(built, tmp_path):
    r = run_cli("check-logits", built["checkpoint"], built["data"], "--no-progress", "--plot", tmp_path / "figure.png",
                tmp=tmp_path)
    assert (tmp_path / "figure.png").stat().st_size > 1000
    assert r.code == 0 and r.problems() == [], r.out
    assert r.report["model"]["task"] == "pairwise" and "task   pairwise" in r.out
    m = r.report["metrics"]["pairwise"]
    assert m["accuracy"] > 0.9 and m["binomial_p"] < 1e-6 and m["pairs"] == len(built["rows"])
    assert "pairwise accuracy" in r.out


def test_head_that_ignores_its_input_collapses_the_scores(built, tmp_path):
    model = clone(built["checkpoint"], tmp_path / "model")
    edit_weights(model, lambda t: {**t, "classifier.weight": t["classifier.weight"] * 0})
    r = run_cli("check-logits", model, built["data"], "--no-progress", tmp=tmp_path)
    assert {"score-collapse", "pairwise-chance"} <= set(r.codes()), r.out


def test_swapped_pairs_are_at_chance(built, tmp_path):
    swapped = write_jsonl([{"chosen": r["rejected"], "rejected": r["chosen"]} for r in built["rows"]],
                          tmp_path / "swapped.jsonl")
    r = run_cli("check-logits", built["checkpoint"], swapped, "--no-progress", tmp=tmp_path)
    assert "pairwise-chance" in r.codes() and "score-collapse" not in r.codes(), r.out
    assert r.finding("pairwise-chance")["evidence"]["test"] == "one-sided binomial against 1/2"


def test_pair_fields_name_other_columns(built, tmp_path):
    renamed = write_jsonl([{"good": r["chosen"], "bad": r["rejected"]} for r in built["rows"]],
                          tmp_path / "renamed.jsonl")
    r = run_cli("check-logits", built["checkpoint"], renamed, "--pair-fields", "good,bad", "--no-progress",
                tmp=tmp_path)
    assert r.code == 0 and r.report["metrics"]["pairwise"]["accuracy"] > 0.9, r.out + r.err


def test_pair_with_one_side_missing_is_one_line_exit_2(built, tmp_path):
    rows = [dict(r) for r in built["rows"][:20]]
    rows[5]["rejected"] = ""
    r = run_cli("check-logits", built["checkpoint"], write_jsonl(rows, tmp_path / "bad.jsonl"), tmp=tmp_path)
    assert r.code == 2 and "pair 5" in r.err and len(r.err.strip().splitlines()) == 1, r.err


def test_smoke_train_bradley_terry_from_a_fresh_head(built, tmp_path):
    model = clone(built["checkpoint"], tmp_path / "fresh")
    edit_weights(model, lambda t: {k: v for k, v in t.items() if not k.startswith("classifier.")})
    r = run_cli("smoke-train", model, built["data"], "--max-examples", "16", "--lr", "3e-3", "--no-progress",
                tmp=tmp_path)
    assert r.report["metrics"]["fitted"] and r.problems() == [], r.out
    assert abs(r.report["metrics"]["initial_loss"] - 0.693) < 0.2
    zoo = Path(__file__).parent / "zoo_models.py"
    r = run_cli("smoke-train", model, built["data"], "--max-examples", "16", "--steps", "3", "--no-progress",
                "--model-class", f"{zoo}:UnscaledLogitsBert", tmp=tmp_path)
    assert "loss-at-init-off" in r.codes(), r.out


def test_doctor_runs_every_stage_a_pairwise_scorer_takes(built, tmp_path):
    r = run_cli("doctor", built["checkpoint"], built["data"], "--max-examples", "64", "--steps", "5", "--no-progress",
                tmp=tmp_path)
    assert r.code == 0 and r.problems() == [], r.out
    stages = r.report["metrics"]["stages"]
    assert stages["smoke-train"]["ran"] and stages["grad-flow"]["ran"]
    assert "pairwise accuracy" in r.out


@pytest.mark.parametrize("side", ["missing", None, " "], ids=["no-key", "none", "blank"])
def test_pair_with_one_side_missing_in_memory_raises_one_line_usage_error(built, side):
    from labeldiag import UsageError, check_logits

    rows = [dict(r) for r in built["rows"][:20]]
    if side == "missing":
        del rows[4]["rejected"]
    else:
        rows[4]["rejected"] = side
    with pytest.raises(UsageError, match="pair 4 .* no 'rejected' text") as raised:
        check_logits(str(built["checkpoint"]), rows)
    assert "\n" not in str(raised.value)


# --- rerankers: query / passage rows with a 0/1 label (sentence-transformers CrossEncoder data)

def reranker_rows(built) -> list[dict]:
    """Per query, relevant passages (the sport texts the reward model prefers) and irrelevant ones (politics)."""
    from labeldiag.synthetic import FILLER

    rows = []
    for i, pair in enumerate(built["rows"][:120]):
        query = FILLER[i % 30]  # words the tiny tokenizer knows
        rows += [{"query": query, "passage": pair["chosen"], "label": 1},
                 {"query": query, "passage": pair["rejected"], "label": 0}]
    return rows


def test_healthy_reranker_rows_are_judged_as_pairs(built, tmp_path):
    data = write_jsonl(reranker_rows(built), tmp_path / "rerank.jsonl")
    r = run_cli("check-logits", built["checkpoint"], data, "--no-progress", tmp=tmp_path)
    assert r.code == 0 and r.problems() == [], r.out + r.err
    assert r.report["model"]["task"] == "pairwise" and r.report["data"]["text_pair_field"] == "passage"
    assert "reranker" in r.report["model"]["task_source"]
    m = r.report["metrics"]["pairwise"]
    assert m["pairs"] == 120 and m["accuracy"] > 0.9
    assert any("same query" in n for n in r.report["notes"])


def test_reranker_with_a_dead_head_is_score_collapse(built, tmp_path):
    model = clone(built["checkpoint"], tmp_path / "dead")
    edit_weights(model, lambda t: {**t, "classifier.weight": t["classifier.weight"] * 0})
    data = write_jsonl(reranker_rows(built), tmp_path / "rerank.jsonl")
    r = run_cli("check-logits", model, data, "--no-progress", tmp=tmp_path)
    assert {"score-collapse", "pairwise-chance"} <= set(r.codes()), r.out


def test_reranker_rows_of_one_label_are_one_line_exit_2(built, tmp_path):
    rows = [dict(row, label=1) for row in reranker_rows(built)]
    r = run_cli("check-logits", built["checkpoint"], write_jsonl(rows, tmp_path / "all1.jsonl"), tmp=tmp_path)
    assert r.code == 2 and "all relevant or all irrelevant" in r.err and len(r.err.strip().splitlines()) == 1, r.err


def test_smoke_train_fits_reranker_pairs(built, tmp_path):
    data = write_jsonl(reranker_rows(built), tmp_path / "rerank.jsonl")
    r = run_cli("smoke-train", built["checkpoint"], data, "--max-examples", "16", "--lr", "3e-3", "--no-progress",
                tmp=tmp_path)
    assert r.code == 0 and r.report["metrics"]["fitted"], r.out
