"""The issue-11 codes, each planted for real in a tiny model or dataset, and absent from a healthy twin:
padding-sensitive-logits, pad-token-missing, label-order-mismatch, tokenizer-casing-mismatch,
foreign-token-ids, half-precision-weights, learning-rate-too-high."""
from __future__ import annotations

import pytest
import torch

import labeldiag
from labeldiag.synthetic import TOPICS, build_tokenizer, make_examples, tiny_bert

LABELS = list(TOPICS)


@pytest.fixture(scope="module")
def task():
    rows = make_examples(48, seed=3)
    return build_tokenizer([r["text"] for r in rows]), rows


def codes(report) -> set[str]:
    return {f.code for f in report.findings}


def finding(report, code):
    return next(f for f in report.findings if f.code == code)


class MeanOverPads(torch.nn.Module):
    """A custom head that mean-pools every position, pads included (the sentence-transformers-style bug)."""

    def __init__(self, clf):
        super().__init__()
        self.bert, self.classifier, self.config = clf.bert, clf.classifier, clf.config

    def forward(self, input_ids, attention_mask=None):
        hidden = self.bert(input_ids, attention_mask=attention_mask).last_hidden_state
        return self.classifier(hidden.mean(1))


class MaskedMean(MeanOverPads):
    def forward(self, input_ids, attention_mask=None):
        hidden = self.bert(input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return self.classifier((hidden * m).sum(1) / m.sum(1))


# --- padding-sensitive-logits ---------------------------------------------------------------------

def test_mean_pooling_over_pads_is_padding_sensitive_and_masked_mean_is_not(task):
    tok, rows = task
    bert = tiny_bert(len(tok), LABELS, seed=1)
    bad = labeldiag.check_logits(MeanOverPads(bert), rows, tokenizer=tok, max_examples=24)
    good = labeldiag.check_logits(MaskedMean(bert), rows, tokenizer=tok, max_examples=24)
    f = finding(bad, "padding-sensitive-logits")
    assert f.severity == "error" and f.evidence["padding_side"] == "right"
    assert f.evidence["relative_delta"] > 10 * f.evidence["threshold"]
    assert f.evidence["repeat_abs_delta"] == 0.0  # measured once a delta passed the limit: eval is deterministic
    assert "padding-sensitive-logits" not in codes(good)


def test_left_padding_is_probed_when_the_tokenizer_pads_left(task):
    from labeldiag.checks.padding import padding_sensitive_logits
    from labeldiag.load.data import examples_from_rows
    from labeldiag.measure.encode import encode
    from labeldiag.measure.padding import padding_sides, probe_padding
    from labeldiag.measure.runtime import pick_runtime

    tok, rows = task
    tok.padding_side = "left"
    try:
        sides = padding_sides(tok)
        enc = encode(examples_from_rows("rows", iter(rows), 100, None, None, None), tok, 64, None, None)
    finally:
        tok.padding_side = "right"
    assert sides == ["right", "left"]
    # BERT's learnt absolute positions: left padding without position ids shifts every real token
    probes = probe_padding(tiny_bert(len(tok), LABELS, seed=1), enc, pick_runtime("cpu", "fp32"), sides, seed=0)
    by_side = {p.side: p for p in probes}
    assert by_side["right"].max_abs_delta < 1e-4 < by_side["left"].max_abs_delta
    assert by_side["right"].repeat_abs_delta == by_side["left"].repeat_abs_delta == 0.0
    right_only = probe_padding(tiny_bert(len(tok), LABELS, seed=1), enc, pick_runtime("cpu", "fp32"), ["right"], 0)
    assert right_only[0].repeat_abs_delta is None  # no delta past the limit: the repeat pass is skipped
    assert padding_sensitive_logits(probes)[0].evidence["padding_side"] == "left"


def test_a_model_that_differs_from_itself_is_not_blamed_on_padding():
    from labeldiag.checks.padding import padding_sensitive_logits
    from labeldiag.records import PaddingProbe

    def probe(repeat):
        return PaddingProbe(side="right", examples=12, max_abs_delta=0.5, logit_scale=1.0, changed_predictions=0.3,
                            precision="fp32", repeat_abs_delta=repeat)
    assert padding_sensitive_logits([probe(0.0)])
    assert not padding_sensitive_logits([probe(0.4)])  # dropout in eval moves logits as much (nondeterministic-eval)


# --- label-order-mismatch --------------------------------------------------------------------------

def test_classlabel_in_another_order_is_a_label_order_mismatch(task, tmp_path):
    import datasets

    tok, rows = task
    model = tiny_bert(len(tok), LABELS, seed=1)

    def dataset(names):
        feats = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names)})
        return datasets.Dataset.from_list([{"text": r["text"], "label": names.index(r["label"])} for r in rows],
                                          features=feats)

    swapped = dataset(["tech", "sport", "politics"])
    bad = labeldiag.check_logits(model, swapped, tokenizer=tok, max_examples=16)
    f = finding(bad, "label-order-mismatch")
    assert f.evidence["declared"] == ["tech", "sport", "politics"] and f.evidence["id2label"] == LABELS
    same = labeldiag.check_logits(model, dataset(LABELS), tokenizer=tok, max_examples=16)
    assert "label-order-mismatch" not in codes(same)
    # the same order carried through files: save_to_disk and parquet written by datasets
    swapped.save_to_disk(str(tmp_path / "disk"))
    swapped.to_parquet(str(tmp_path / "data.parquet"))
    from labeldiag.load.data import read_examples

    for path in (tmp_path / "disk", tmp_path / "data.parquet"):
        assert read_examples(str(path), 10).declared_label_names == ["tech", "sport", "politics"]


def test_labels_option_is_compared_when_given():
    from labeldiag.checks.label_order import label_order_mismatch

    id2label = dict(enumerate(LABELS))
    assert label_order_mismatch(["Politics", "sport", "tech"], "--labels", id2label, 3)
    assert not label_order_mismatch(["Sport", "politics", "tech"], "--labels", id2label, 3)
    assert not label_order_mismatch(["a", "b", "c"], "--labels", id2label, 3)  # other names: label-set codes
    assert not label_order_mismatch(["tech", "sport", "politics"], "--labels", {0: "LABEL_0", 1: "LABEL_1",
                                                                                2: "LABEL_2"}, 3)


# --- tokenizer-casing-mismatch / foreign-token-ids --------------------------------------------------

def _wordpiece(words: list[str], lowercase: bool, pieces: bool = False):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    extra = {"##" + w[i:] for w in words for i in (1, 2) if len(w) > i + 1} if pieces else set()
    vocab = {t: i for i, t in enumerate(specials + sorted(set(words) | extra))}  # '##' pieces sort first
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2),
                                                                                               ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=64)


def test_tokenizer_casing_mismatch_both_ways(task):
    from labeldiag.checks.provenance import tokenizer_casing_mismatch
    from labeldiag.measure.provenance import measure_casing

    _, rows = task
    texts = [" ".join(w.capitalize() for w in r["text"].split()) for r in rows]
    lower = sorted({w for t in texts for w in t.lower().split()})
    cased = lower + [w.capitalize() for w in lower]
    planted = {
        "lower-casing tokenizer, cased vocabulary": _wordpiece(cased, lowercase=True),
        "case-keeping tokenizer, uncased vocabulary": _wordpiece(lower, lowercase=False),
    }
    for what, tok in planted.items():
        found = tokenizer_casing_mismatch(measure_casing(tok, texts))
        assert found and found[0].evidence["share"] > 0.9, what
    for tok in (_wordpiece(lower, lowercase=True), _wordpiece(cased, lowercase=False)):
        stats = measure_casing(tok, texts)
        assert stats.changed == 0 and not tokenizer_casing_mismatch(stats)


def test_ids_of_another_tokenizer_are_foreign(task):
    _, rows = task
    words = sorted({w for r in rows for w in r["text"].split()})
    own = _wordpiece(words, lowercase=True, pieces=True)
    other = _wordpiece(words, lowercase=True)  # the same words without the pieces: other ids
    texts = [r["text"] for r in rows[:24]]
    model = tiny_bert(len(own), LABELS, seed=1)
    foreign = dict(other(texts, padding=True, return_tensors="pt"))
    mine = dict(own(texts, padding=True, return_tensors="pt"))
    bad = labeldiag.check_logits(model, foreign, tokenizer=own)
    f = finding(bad, "foreign-token-ids")
    assert f.severity == "warning" and f.evidence["share"] > 0.5
    assert "foreign-token-ids" not in codes(labeldiag.check_logits(model, mine, tokenizer=own))


# --- half-precision-weights --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_half_precision_weights_are_measured_before_the_fp32_copy(task, dtype):
    tok, rows = task
    model = tiny_bert(len(tok), LABELS, seed=1).to(dtype)
    report = labeldiag.smoke_train(model, rows, tokenizer=tok, steps=2, max_examples=6, lr=2e-5)
    f = finding(report, "half-precision-weights")
    if dtype == torch.bfloat16:  # bf16 keeps 8 bits: a 2e-5 step is below half an ulp of most weights
        assert f.evidence["lost_share"] > 0.5 and not f.evidence["overflow_elements"]
    else:  # fp16 keeps 11 bits, so init-sized weights still move, but AdamW's fp16 state overflows
        assert f.evidence["overflow_elements"] == f.evidence["half_elements"]["float16"]
    assert f.severity == "warning"
    assert next(iter(model.parameters())).dtype == dtype  # the caller's model is left as it was


def test_fp32_and_frozen_half_weights_are_fine(task):
    from labeldiag.checks.precision import half_precision_weights
    from labeldiag.measure.precision import measure_half_precision

    tok, _ = task
    assert measure_half_precision(tiny_bert(len(tok), LABELS, seed=1), 2e-5) is None
    frozen = tiny_bert(len(tok), LABELS, seed=1)
    frozen.bert.half().requires_grad_(False)
    assert measure_half_precision(frozen, 2e-5) is None
    # at a large rate bf16 still moves most weights: the share is what is judged, not the dtype
    assert not half_precision_weights(measure_half_precision(tiny_bert(len(tok), LABELS).bfloat16(), 1.0))


# --- learning-rate-too-high --------------------------------------------------------------------------

def test_grad_flow_update_ratios_flag_a_far_too_high_rate(task):
    tok, rows = task
    model = tiny_bert(len(tok), LABELS, seed=1)
    high = labeldiag.grad_flow(model, rows, tokenizer=tok, lr=1e-1, max_examples=16)
    usual = labeldiag.grad_flow(model, rows, tokenizer=tok, lr=2e-5, max_examples=16)
    f = finding(high, "learning-rate-too-high")
    assert f.severity == "warning" and f.evidence["median_update_weight_ratio"] > 1
    assert "learning-rate-too-high" not in codes(usual)


def test_smoke_train_reruns_at_a_tenth_when_training_fails():
    from labeldiag.checks.learning_rate import learning_rate_too_high
    from labeldiag.measure.learning_rate import went_wrong
    from labeldiag.records import LowerRateRerun, TrainingTrace

    diverged = TrainingTrace(num_classes=3, batch_classes=3, losses=[1.1, 9.0], accuracies=[0.3, 0.3],
                             distinct_predictions=[3, 1], diverged_step=2, initial_loss=1.1)
    assert went_wrong(diverged, 1e-5) == "diverged at step 2"
    stuck = TrainingTrace(num_classes=3, batch_classes=3, losses=[1.1] * 10, accuracies=[0.3] * 10,
                          distinct_predictions=[2] * 10, initial_loss=1.1)
    assert went_wrong(stuck, 1e-1) and went_wrong(stuck, 1e-5) is None  # at usual rates: not the rate's fault
    always_one = TrainingTrace(num_classes=3, batch_classes=3, losses=[1.0] * 10, accuracies=[0.3] * 10,
                               distinct_predictions=[1] * 10, initial_loss=1.1)
    assert went_wrong(always_one, 1e-5) is None  # one class from the start: the input, not the rate

    def rerun(fitted):
        return LowerRateRerun(lr=0.1, rerun_lr=0.01, problem="diverged at step 2", final_loss=9.0,
                              rerun_fitted=fitted, rerun_fit_step=12 if fitted else None, rerun_final_loss=0.01,
                              rerun_steps=12)
    assert learning_rate_too_high(rerun=rerun(True))[0].evidence["rerun_lr"] == 0.01
    assert not learning_rate_too_high(rerun=rerun(False))


def test_smoke_train_at_a_far_too_high_rate_names_the_rate(task):
    tok, rows = task
    model = tiny_bert(len(tok), LABELS, seed=0)
    # at 0.2 the loss diverges within a few steps; the rerun at 0.02 fits the 6 examples
    report = labeldiag.smoke_train(model, rows, tokenizer=tok, lr=0.2, steps=20, max_examples=6)
    f = finding(report, "learning-rate-too-high")
    assert f.severity == "warning" and f.evidence["problem"].startswith("diverged at step")
    assert f.evidence["rerun_lr"] == pytest.approx(0.02) and f.evidence["rerun_fit_step"] <= 20
    assert "loss-diverged" in codes(report)
