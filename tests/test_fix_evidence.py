"""fix writes only what evidence proves and a clean re-check confirms (issue 23): each change listed with its
evidence, a copy that does not re-check clean removed, nothing from unlabelled data, the tokenizer's pad id."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import clone, edit_config, run_cli, save_tiny, write_jsonl
from labeldiag.errors import UsageError


@pytest.fixture(scope="module")
def swapped(trained, tmp_path_factory, one_thread):
    ckpt = clone(trained["checkpoint"], tmp_path_factory.mktemp("fix") / "swapped")
    names = json.loads((ckpt / "config.json").read_text())["id2label"]
    names["0"], names["2"] = names["2"], names["0"]
    edit_config(ckpt, id2label=names, label2id={v: int(k) for k, v in names.items()})
    return ckpt


def test_fix_lists_each_change_with_its_evidence_and_reaches_the_promised_accuracy(swapped, trained, tmp_path):
    from labeldiag import fix

    report = fix(swapped, trained["data"], tmp_path / "fixed", max_examples=300)
    assert report.command == "fix" and not report.has("label-permutation")
    (entry,) = report.metrics["fixes"]
    assert entry["code"] == "label-permutation" and entry["evidence"]["best_accuracy"] > 0.9
    changes = {c["key"]: c for c in entry["changes"]}
    assert set(changes) == {"id2label", "label2id"} and changes["id2label"]["file"] == "config.json"
    assert changes["id2label"]["before"]["0"] == "tech" and changes["id2label"]["after"]["0"] == "sport"
    assert report.metrics["accuracy"] >= entry["promised_accuracy"] - 1e-9
    res = run_cli("fix", swapped, trained["data"], "--out", tmp_path / "again", "--max-examples", "300",
                  "--max-length", "64", "--json", tmp_path / "fix.json")
    assert res.code == 0, res.err
    written = json.loads((tmp_path / "fix.json").read_text())
    assert written["command"] == "fix" and written["metrics"]["fixes"][0]["changes"][0]["file"] == "config.json"
    assert "config.json id2label:" in res.out


def test_a_copy_that_does_not_recheck_clean_is_removed(swapped, trained, tmp_path, monkeypatch):
    from labeldiag import fix, repair

    def wrong_names(finding, ckpt):  # a mapping that renames nothing: the re-check still sees the permutation
        return repair.Fix("label-permutation", "renames nothing",
                          [repair.Change(repair.CONFIG, "id2label", ckpt.config["id2label"], ckpt.config["id2label"])],
                          promised_accuracy=finding.evidence["best_accuracy"])

    monkeypatch.setitem(repair.FIXERS, "label-permutation", wrong_names)
    with pytest.raises(UsageError, match="did not re-check clean .*label-permutation is still reported"):
        fix(swapped, trained["data"], tmp_path / "fixed", max_examples=300)
    assert not (tmp_path / "fixed").exists()
    (tmp_path / "empty").mkdir()
    res = run_cli("fix", swapped, trained["data"], "--out", tmp_path / "empty", "--max-examples", "300")
    assert res.code == 2 and res.err.count("\n") == 1 and "removed" in res.err, res.err
    assert list((tmp_path / "empty").iterdir()) == []


def test_multi_label_config_on_unlabelled_text_writes_nothing(trained, tmp_path):
    from labeldiag import check_logits
    from labeldiag.render.console import next_step

    ckpt = clone(trained["checkpoint"], tmp_path / "multi")
    edit_config(ckpt, problem_type="multi_label_classification")
    rows = [json.loads(line) for line in Path(trained["data"]).read_text().splitlines()][:120]
    data = write_jsonl([{"text": r["text"]} for r in rows], tmp_path / "unlabelled.jsonl")
    res = run_cli("fix", ckpt, data, "--out", tmp_path / "fixed")
    assert res.code == 2 and "nothing in MODEL can be fixed" in res.err, res.out + res.err
    assert not (tmp_path / "fixed").exists()
    step = next_step(check_logits(str(ckpt), str(data)))
    assert step is None or "labeldiag fix" not in step[1]


@pytest.mark.parametrize("tokenizer_has_pad", [True, False], ids=["tokenizer-pad", "no-pad-anywhere"])
def test_decoder_without_pad_token_gets_the_tokenizers_pad_id(tokenizer_and_rows, tmp_path, tokenizer_has_pad):
    from zoo_architectures import PAD, SEP, tiny_classifier
    from transformers import AutoTokenizer

    from labeldiag import check_logits, fix

    tokenizer, rows = tokenizer_and_rows
    model = tiny_classifier("llama", len(tokenizer), ["politics", "sport", "tech"], pad=None)
    tokenizer = AutoTokenizer.from_pretrained(save_tiny(model, tokenizer, tmp_path / "src"))
    if not tokenizer_has_pad:  # a decoder's tokenizer: an eos token, no pad token
        tokenizer.pad_token = None
        tokenizer.eos_token = "[SEP]"
        tokenizer.save_pretrained(tmp_path / "src")
        assert AutoTokenizer.from_pretrained(tmp_path / "src").pad_token is None
    data = write_jsonl(rows[:96], tmp_path / "data.jsonl")
    before = check_logits(str(tmp_path / "src"), str(data))
    assert before.has("pad-token-missing")
    report = fix(tmp_path / "src", data, tmp_path / "fixed")
    (entry,) = report.metrics["fixes"]
    changes = {(c["file"], c["key"]): c["after"] for c in entry["changes"]}
    expected = PAD if tokenizer_has_pad else SEP
    assert json.loads((tmp_path / "fixed" / "config.json").read_text())["pad_token_id"] == expected
    assert changes[("config.json", "pad_token_id")] == expected
    if tokenizer_has_pad:
        assert len(changes) == 1 and "tokenizer's pad id" in entry["what"]
    else:  # said so, and the copy's tokenizer now pads with its eos token
        assert changes[("tokenizer_config.json", "pad_token")] == "[SEP]" and "had no pad token" in entry["what"]
        assert AutoTokenizer.from_pretrained(tmp_path / "fixed").pad_token_id == SEP
    assert not report.has("pad-token-missing") and not report.has("padding-sensitive-logits")
    hint = before.get("pad-token-missing").hint
    assert ("eos_token" in hint) == (not tokenizer_has_pad) and "model.config.pad_token_id" in hint


def test_fix_reads_as_attributes_and_back_from_its_json(swapped, trained, tmp_path):
    from labeldiag import Report, fix

    report = fix(swapped, trained["data"], tmp_path / "fixed", max_examples=100)
    (made,) = report.fix.fixes
    assert made.code == "label-permutation" and [c.key for c in made.changes] == ["id2label", "label2id"]
    assert made.changes[0].file == "config.json" and report.metrics["fixes"][0]["changes"][0]["file"] == "config.json"
    assert "label-permutation" in [f.code for f in report.fix.before] and not report.has("label-permutation")
    assert report.fix.accuracy_before == report.metrics["accuracy_before"] < report.logits.accuracy
    again = Report.from_dict(json.loads(report.to_json()))
    assert again.to_json() == report.to_json()
    assert again.fix.fixes[0].changes == made.changes and again.fix.before == report.fix.before
