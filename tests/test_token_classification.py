"""Token classifiers (issue 22): a tiny BERT NER tagger trained in the fixture; each defect planted for real
(all-O head, gold independent of the words, labels one position off, every label -100, a malformed id2label,
entities beyond --max-length) gets its code, the healthy tagger none."""
from __future__ import annotations

import random

import numpy as np
import pytest

from helpers import clone, edit_config, edit_weights, run_cli, write_jsonl
import token_zoo

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.xdist_group("test_token_classification")]  # one worker builds the module's models


@pytest.fixture(scope="module")
def built(tmp_path_factory, one_thread):
    return token_zoo.build(tmp_path_factory.mktemp("tagger"), steps=120)


@pytest.fixture
def model(built, tmp_path):
    return clone(built["checkpoint"], tmp_path / "model")


def test_healthy_tagger_gets_token_and_entity_metrics_and_no_problem(built, tmp_path):
    r = run_cli("check-logits", built["checkpoint"], built["data"], "--no-progress", "--plot", tmp_path / "tags.png",
                "--html", tmp_path / "report.html", tmp=tmp_path)
    assert r.code == 0 and r.problems() == [], r.out
    assert r.report["model"]["task"] == "token" and "task   token" in r.out
    m = r.report["metrics"]["token"]
    assert m["accuracy"] > 0.95 and m["accuracy_without_o"] > 0.9 and m["entity_f1"] > 0.9
    assert {t["name"] for t in m["tags"]} == set(token_zoo.TAGS) and len(m["confusion"]) == 5
    assert "entity F1" in r.out
    assert (tmp_path / "tags.png").stat().st_size > 1000
    html = (tmp_path / "report.html").read_text()
    assert "Confusion matrix" in html and "I-LOC" in html and "<img" in html


def test_all_o_head_is_constant_per_token(model, built, tmp_path):
    def all_o(t):
        bias = t["classifier.bias"] * 0
        bias[0] = 10.0
        return {**t, "classifier.weight": t["classifier.weight"] * 0, "classifier.bias": bias}

    edit_weights(model, all_o)
    r = run_cli("check-logits", model, built["data"], "--no-progress", tmp=tmp_path)
    assert "constant-predictions" in r.codes(), r.out
    f = r.finding("constant-predictions")
    assert f["evidence"]["class"] == "O" and f["evidence"]["p_value"] < 1e-10
    assert r.report["metrics"]["token"]["entity_f1"] == 0.0


def test_gold_tags_independent_of_the_words_are_random_predictions(built, tmp_path):
    rng = random.Random(0)
    rows = [{"tokens": r["tokens"], "ner_tags": [rng.choice(token_zoo.TAGS) for _ in r["tokens"]]}
            for r in built["rows"]]
    r = run_cli("check-logits", built["checkpoint"], write_jsonl(rows, tmp_path / "shuffled.jsonl"),
                "--no-progress", tmp=tmp_path)
    assert "random-predictions" in r.codes(), r.out
    assert "label-alignment-off" not in r.codes()


def test_labels_placed_on_sub_words_without_word_ids_are_one_position_off(built, tmp_path):
    """The classic bug: the word tags written from position 0 of the sub-words, [CLS] and ##pieces ignored."""
    import torch
    from safetensors.torch import save_file

    enc = token_zoo.encode(built["tokenizer"], built["rows"])
    naive = torch.full_like(enc["labels"], -100)
    for i, row in enumerate(built["rows"]):
        tags = [token_zoo.TAGS.index(t) for t in row["ner_tags"]]
        naive[i, :len(tags)] = torch.tensor(tags)
    path = tmp_path / "naive.safetensors"
    save_file({"input_ids": enc["input_ids"].contiguous(), "attention_mask": enc["attention_mask"].contiguous(),
               "labels": naive.contiguous()}, str(path))
    r = run_cli("check-logits", built["checkpoint"], path, "--no-progress", tmp=tmp_path)
    assert "label-alignment-off" in r.codes(), r.out
    f = r.finding("label-alignment-off")
    assert f["evidence"]["offset"] == 1 and f["evidence"]["gain"] > 0.2 and f["evidence"]["p_value"] < 1e-6
    assert "bio-labels-malformed" not in r.codes()  # a consequence of the shift, not a second fault
    assert r.report["data"]["alignment"].startswith("as given")


def test_correctly_aligned_pretokenized_labels_are_healthy(built, tmp_path):
    from safetensors.torch import save_file

    enc = token_zoo.encode(built["tokenizer"], built["rows"])
    path = tmp_path / "aligned.safetensors"
    save_file({k: enc[k].contiguous() for k in ("input_ids", "attention_mask", "labels")}, str(path))
    r = run_cli("check-logits", built["checkpoint"], path, "--no-progress", tmp=tmp_path)
    assert r.code == 0 and r.problems() == [], r.out
    assert r.report["model"]["task"] == "token"


def test_every_label_ignored_is_no_token_labels(built, tmp_path):
    rows = [{"tokens": r["tokens"], "ner_tags": [-100] * len(r["tokens"])} for r in built["rows"][:50]]
    r = run_cli("check-logits", built["checkpoint"], write_jsonl(rows, tmp_path / "ignored.jsonl"), "--no-progress",
                tmp=tmp_path)
    assert r.code == 1 and "no-token-labels" in r.codes(), r.out
    assert r.finding("no-token-labels")["evidence"]["tags_in_data"] == 0


def test_i_tag_without_b_tag_in_id2label_is_malformed(model, built, tmp_path):
    edit_config(model, id2label={"0": "O", "1": "PERSON", "2": "I-PER", "3": "B-LOC", "4": "I-LOC"},
                label2id={"O": 0, "PERSON": 1, "I-PER": 2, "B-LOC": 3, "I-LOC": 4})
    rows = [{"tokens": r["tokens"], "ner_tags": [token_zoo.TAGS.index(t) for t in r["ner_tags"]]}
            for r in built["rows"]]
    r = run_cli("check-logits", model, write_jsonl(rows, tmp_path / "indices.jsonl"), "--no-progress", tmp=tmp_path)
    assert "bio-labels-malformed" in r.codes(), r.out
    f = r.finding("bio-labels-malformed")
    assert f["severity"] == "warning" and f["evidence"]["outside_scheme"] == ["PERSON"]
    assert f["evidence"]["inside_without_begin"] == ["I-PER"]


def test_predictions_breaking_the_scheme_are_malformed(model, built, tmp_path):
    """The head's B-PER and I-PER rows swapped: every person starts with I-PER (after O)."""
    def swap(t):
        w, b = t["classifier.weight"].clone(), t["classifier.bias"].clone()
        w[[1, 2]], b[[1, 2]] = w[[2, 1]], b[[2, 1]]
        return {**t, "classifier.weight": w, "classifier.bias": b}

    edit_weights(model, swap)
    r = run_cli("check-logits", model, built["data"], "--no-progress", tmp=tmp_path)
    assert "bio-labels-malformed" in r.codes(), r.out
    assert r.finding("bio-labels-malformed")["evidence"]["predicted_breaks"] > 50
    assert "label-permutation" in r.codes()  # over the tags: logit 1 behaves like I-PER, logit 2 like B-PER


def test_entities_beyond_max_length_are_truncated(built, tmp_path):
    rows = token_zoo.sentences(120, 7, filler=(14, 20))
    r = run_cli("check-logits", built["checkpoint"], write_jsonl(rows, tmp_path / "long.jsonl"), "--max-length", "12",
                "--no-progress", tmp=tmp_path)
    assert "entities-truncated" in r.codes(), r.out
    f = r.finding("entities-truncated")
    assert f["evidence"]["share"] > 0.2 and f["evidence"]["max_length"] == 12
    short = run_cli("check-logits", built["checkpoint"], built["data"], "--max-length", "64", "--no-progress",
                    tmp=tmp_path)
    assert "entities-truncated" not in short.codes()


def test_label_all_subwords_labels_every_piece(built, tmp_path):
    first = run_cli("check-logits", built["checkpoint"], built["data"], "--no-progress", tmp=tmp_path)
    every = run_cli("check-logits", built["checkpoint"], built["data"], "--label-all-subwords", "--no-progress",
                    tmp=tmp_path)
    pieces = sum(t.endswith("son") or t.endswith("sen") for r in built["rows"] for t in r["tokens"])
    assert every.report["metrics"]["labelled_tokens"] == first.report["metrics"]["labelled_tokens"] + pieces
    assert "every sub-word" in every.report["data"]["alignment"]


def test_tag_names_unknown_to_the_head_are_one_line_exit_2(built, tmp_path):
    rows = [{"tokens": ["anna", "left"], "ner_tags": ["B-PERSON", "O"]}]
    r = run_cli("check-logits", built["checkpoint"], write_jsonl(rows, tmp_path / "bad.jsonl"), tmp=tmp_path)
    assert r.code == 2 and "B-PERSON" in r.err and len(r.err.strip().splitlines()) == 1, r.err
    rows = [{"tokens": ["anna", "left"], "ner_tags": ["O"]}]
    r = run_cli("check-logits", built["checkpoint"], write_jsonl(rows, tmp_path / "ragged.jsonl"), tmp=tmp_path)
    assert r.code == 2 and "one tag per word" in r.err, r.err


def test_llama_token_classifier_loads_and_is_judged(tmp_path):
    from labeldiag.synthetic import save_tokenizer

    tok = token_zoo.tokenizer()
    net = token_zoo.tiny_tagger(len(tok), kind="llama")
    token_zoo.train(net, token_zoo.encode(tok, token_zoo.sentences(200, 0)), steps=60)
    net.save_pretrained(tmp_path / "llama")
    save_tokenizer(tok, tmp_path / "llama")
    data = write_jsonl(token_zoo.sentences(80, 1), tmp_path / "test.jsonl")
    r = run_cli("check-logits", tmp_path / "llama", data, "--no-progress", tmp=tmp_path)
    assert r.code in (0, 1) and r.report["model"]["class"] == "LlamaForTokenClassification", r.out + r.err
    assert r.report["model"]["task"] == "token" and r.report["metrics"]["token"]["tokens"] > 300


# --- the span extractor and the scheme, on their own ------------------------------------------------

@pytest.mark.parametrize("tags,spans", [
    (["B-PER", "I-PER", "O", "B-LOC"], {("PER", 0, 1), ("LOC", 3, 3)}),
    (["I-PER", "I-PER", "O"], {("PER", 0, 1)}),  # conlleval: an I- after O starts an entity
    (["B-PER", "I-LOC", "I-LOC"], {("PER", 0, 0), ("LOC", 1, 2)}),
    (["B-PER", "B-PER", "I-PER"], {("PER", 0, 0), ("PER", 1, 2)}),
    (["S-PER", "B-LOC", "E-LOC", "O"], {("PER", 0, 0), ("LOC", 1, 2)}),  # BIOES
    (["O", "NOUN", "O"], set()),
    ([], set()),
], ids=["bio", "i-start", "type-change", "b-b", "bioes", "outside", "empty"])
def test_entity_spans(tags, spans):
    from labeldiag.records import entity_spans

    assert entity_spans(tags) == spans


def test_scheme_breaks_and_report():
    from labeldiag.records import scheme_breaks, scheme_report

    assert scheme_breaks(["O", "I-PER", "B-LOC", "I-LOC", "I-PER"]).tolist() == [False, True, False, False, True]
    ok = scheme_report(token_zoo.TAGS)
    assert ok.uses_scheme and not ok.outside and not ok.inside_without_begin and ok.has_outside_tag
    assert not scheme_report(["NOUN", "VERB", "ADJ"]).uses_scheme  # POS tags: no scheme, nothing to judge
    bad = scheme_report(["O", "I-PER", "LABEL_2"])
    assert bad.inside_without_begin == ("I-PER",) and bad.outside == ("LABEL_2",)


def test_align_to_subwords_first_and_every_piece():
    from labeldiag.records import align_to_subwords

    word_ids = [None, 0, 1, 1, 2, None]
    assert align_to_subwords([3, 1, 0], word_ids, False).tolist() == [-100, 3, 1, -100, 0, -100]
    assert align_to_subwords([3, 1, 0], word_ids, True).tolist() == [-100, 3, 1, 1, 0, -100]


def test_summary_shift_finds_a_one_position_offset():
    from labeldiag.records import summarize_tokens

    rng = np.random.default_rng(0)
    gold = [rng.integers(0, 3, 30) for _ in range(20)]
    logits = []
    for g in gold:  # the model predicts each tag one position later than the gold puts it
        pred = np.r_[0, g[:-1]]
        logits.append(np.eye(3, dtype=np.float32)[pred] * 5)
    s = summarize_tokens(logits, gold, ["O", "B-X", "I-X"])
    best = max(s.shifts, key=lambda x: x.shifted_correct)
    assert best.unit == "sub-word" and best.offset == 1 and best.only_shifted > 300 and best.p_value < 1e-20


# --- grad-flow, smoke-train and check_predictions on token classifiers ----------------------------

def test_smoke_train_fits_a_token_batch(built, tmp_path):
    from labeldiag.synthetic import save_tokenizer

    fresh = token_zoo.tiny_tagger(len(built["tokenizer"]), seed=1)
    fresh.save_pretrained(tmp_path / "fresh")
    save_tokenizer(built["tokenizer"], tmp_path / "fresh")
    r = run_cli("smoke-train", tmp_path / "fresh", built["data"], "--max-examples", "8", "--lr", "3e-3",
                "--no-progress", tmp=tmp_path)
    assert r.code == 0 and r.report["metrics"]["fitted"], r.out
    assert r.report["model"]["task"] == "token"
    assert "every labelled token" in " ".join(r.report["notes"])


def test_smoke_train_on_ignored_labels_is_no_token_labels(built, tmp_path):
    rows = [{"tokens": r["tokens"], "ner_tags": [-100] * len(r["tokens"])} for r in built["rows"][:20]]
    r = run_cli("smoke-train", built["checkpoint"], write_jsonl(rows, tmp_path / "ignored.jsonl"), "--no-progress",
                tmp=tmp_path)
    assert r.code == 1 and "no-token-labels" in r.codes(), r.out


def test_grad_flow_runs_on_a_token_classifier(built, tmp_path):
    r = run_cli("grad-flow", built["checkpoint"], built["data"], "--max-examples", "16", "--batch-size", "5",
                "--no-progress", tmp=tmp_path)
    assert r.code == 0, r.out
    m = r.report["metrics"]
    assert m["loss_source"] == "model" and m["total_grad_norm"] > 0 and m["micro_batches"] == 4


def test_check_predictions_takes_token_logits_with_ignored_positions():
    import labeldiag

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, (60, 12))
    labels[:, 0] = labels[:, -3:] = -100  # [CLS] and padding
    healthy = np.eye(5)[np.clip(labels, 0, 4)] * 4 + rng.normal(0, 0.3, (60, 12, 5))
    r = labeldiag.check_predictions(healthy, labels, token_zoo.TAGS)
    assert r.metrics["token"]["accuracy"] > 0.99 and not [f for f in r.findings if f.severity != "info"]
    all_o = np.zeros((60, 12, 5))
    all_o[..., 0] = 5
    codes = [f.code for f in labeldiag.check_predictions(all_o, labels, token_zoo.TAGS).findings]
    assert "constant-predictions" in codes


# --- fix and doctor ------------------------------------------------------------------------------

def _swap_person_rows(t):
    w, b = t["classifier.weight"].clone(), t["classifier.bias"].clone()
    w[[1, 2]], b[[1, 2]] = w[[2, 1]], b[[2, 1]]
    return {**t, "classifier.weight": w, "classifier.bias": b}


def test_fix_rewrites_id2label_of_swapped_tags_from_the_evidence(model, built, tmp_path):
    import json

    edit_weights(model, _swap_person_rows)
    r = run_cli("fix", model, built["data"], "--out", tmp_path / "fixed", "--no-progress")
    assert r.code == 0, r.out + r.err
    fixed = json.loads((tmp_path / "fixed" / "config.json").read_text())["id2label"]
    assert fixed["1"] == "I-PER" and fixed["2"] == "B-PER"


def test_fix_refuses_a_renamed_tag_it_cannot_prove(model, built, tmp_path):
    edit_config(model, id2label={"0": "O", "1": "PERSON", "2": "I-PER", "3": "B-LOC", "4": "I-LOC"},
                label2id={"O": 0, "PERSON": 1, "I-PER": 2, "B-LOC": 3, "I-LOC": 4})
    rows = [{"tokens": r["tokens"], "ner_tags": [token_zoo.TAGS.index(t) for t in r["ner_tags"]]}
            for r in built["rows"][:60]]
    r = run_cli("fix", model, write_jsonl(rows, tmp_path / "idx.jsonl"), "--out", tmp_path / "fixed", "--no-progress")
    assert r.code == 2 and "bio-labels-malformed" in r.err and not (tmp_path / "fixed" / "config.json").exists()


def test_doctor_runs_every_stage_on_a_token_classifier(built, tmp_path):
    r = run_cli("doctor", built["checkpoint"], built["data"], "--max-examples", "60", "--no-progress", tmp=tmp_path)
    assert r.code == 0 and r.problems() == [], r.out
    stages = r.report["metrics"]["stages"]
    assert all(stages[s]["ran"] for s in ("check-logits", "grad-flow", "smoke-train"))
    assert r.report["metrics"]["smoke_train"]["fitted"]


def test_callback_judges_a_token_classifier_evaluation(built, tmp_path):
    import torch
    from transformers import AutoModelForTokenClassification, Trainer, TrainingArguments

    from labeldiag import LabelDiagCallback

    net = AutoModelForTokenClassification.from_pretrained(built["checkpoint"])
    with torch.no_grad():  # the all-O head
        net.classifier.weight.zero_()
        net.classifier.bias.copy_(torch.tensor([10.0, 0, 0, 0, 0]))
    enc = token_zoo.encode(built["tokenizer"], built["rows"])
    rows = [{k: enc[k][i] for k in ("input_ids", "attention_mask", "labels")} for i in range(len(built["rows"]))]
    args = TrainingArguments(output_dir=str(tmp_path / "out"), per_device_eval_batch_size=64, report_to=[],
                             use_cpu=True, disable_tqdm=True)
    callback = LabelDiagCallback(verbose=False)
    Trainer(model=net, args=args, eval_dataset=rows, callbacks=[callback]).evaluate()
    codes = [f.code for report in callback.reports for f in report.findings]
    assert "constant-predictions" in codes, codes


def test_plain_texts_on_a_tagger_give_predicted_rates_and_one_tag_per_text_is_refused(built, tmp_path):
    texts = write_jsonl([{"text": " ".join(r["tokens"])} for r in built["rows"][:40]], tmp_path / "texts.jsonl")
    r = run_cli("check-logits", built["checkpoint"], texts, "--no-progress", tmp=tmp_path)
    assert r.code == 0 and r.report["model"]["task"] == "token", r.out
    assert r.report["metrics"]["token"]["predicted_rate"]["O"] > 0.5
    labelled = write_jsonl([{"text": " ".join(r["tokens"]), "label": "O"} for r in built["rows"][:40]],
                           tmp_path / "one_tag.jsonl")
    r = run_cli("check-logits", built["checkpoint"], labelled, "--task", "token", tmp=tmp_path)
    assert r.code == 2 and "one tag per word" in r.err and len(r.err.strip().splitlines()) == 1, r.err
    r = run_cli("check-logits", built["checkpoint"], built["data"], "--task", "multi-label", tmp=tmp_path)
    assert r.code == 2 and "one tag per word" in r.err and len(r.err.strip().splitlines()) == 1, r.err


def test_dataset_class_label_names_in_another_order_are_label_order_mismatch(built):
    import datasets

    import labeldiag

    order = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]  # the dataset's own ClassLabel order, not the head's
    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=order))})
    rows = {"tokens": [r["tokens"] for r in built["rows"]],
            "ner_tags": [[order.index(t) for t in r["ner_tags"]] for r in built["rows"]]}
    report = labeldiag.check_logits(str(built["checkpoint"]), datasets.Dataset.from_dict(rows, features=features))
    assert report.model["task"] == "token"
    assert "label-order-mismatch" in [f.code for f in report.findings]
