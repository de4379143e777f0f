"""The zoo: every defect planted in the tiny trained BERT, with the command that must catch it and the codes it
must get (as sklearn's common tests list estimator checks). tests/test_zoo.py runs each row once.

A row plants its defect in one of three starting checkpoints (`start`): the trained model ("trained"), the
trained encoder with its classifier removed ("fresh-head"), or a BERT with random weights ("random"); by a
model class of tests/zoo_models.py, an edit to a copy of the checkpoint, an edit to the data rows, or an option.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from helpers import clone, edit_config, edit_weights

MODELS = Path(__file__).parent / "zoo_models.py"
LABEL_IDS = {"sport": 0, "politics": 1, "tech": 2}


@dataclass(frozen=True)
class Defect:
    name: str
    command: str  # check-logits, grad-flow or smoke-train
    codes: tuple[str, ...]  # every one must be found
    start: str = "trained"
    model_class: str | None = None  # a class of tests/zoo_models.py
    plant: Callable | None = None  # plant(checkpoint copy)
    rows: Callable | None = None  # rows(held-out rows) -> the rows to run on
    args: tuple = ()
    severities: dict = field(default_factory=dict)  # code -> the severity it must have
    exit_code: int | None = None  # None: 1 when any finding is an error, else 0
    evidence: Callable | None = None  # evidence(result, rows) asserts what the findings say

    def argv(self) -> list[str]:
        model_class = ["--model-class", f"{MODELS}:{self.model_class}"] if self.model_class else []
        return [*model_class, *map(str, self.args)]


# --- plants -------------------------------------------------------------------------------------------

def swap_names(ckpt):
    edit_config(ckpt, id2label={"0": "politics", "1": "sport", "2": "tech"},
                label2id={"politics": 0, "sport": 1, "tech": 2})


def scale_head(factor, bias=None):
    def fn(t):
        import torch

        t["classifier.weight"] = t["classifier.weight"] * factor
        if bias is not None:
            t["classifier.bias"] = torch.tensor(bias, dtype=torch.float32)
        return t
    return fn


def drop(prefix):
    return lambda t: {k: v for k, v in t.items() if not k.startswith(prefix)}


def rename(old, new):
    return lambda t: {(k.replace(old, new, 1) if k.startswith(old) else k): v for k, v in t.items()}


def zero_pooler(t):
    import torch

    t["bert.pooler.dense.weight"] = torch.zeros_like(t["bert.pooler.dense.weight"])
    return t


def shrink_vocab(t):
    t["bert.embeddings.word_embeddings.weight"] = t["bert.embeddings.word_embeddings.weight"][:60].clone()
    return t


def shuffle_labels(rows):
    labels = [x["label"] for x in rows]
    random.Random(7).shuffle(labels)
    return [{**x, "label": y} for x, y in zip(rows, labels)]


def correctly_classified(rows, checkpoint):
    """The rows the trained model gets right (so a x1000 softmax is exactly one-hot and right)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()
    with torch.inference_mode():
        pred = model(**tok([r["text"] for r in rows], padding=True, return_tensors="pt")).logits.argmax(1)
    return [r for r, p in zip(rows, pred.tolist()) if model.config.label2id[r["label"]] == p]


# --- starting checkpoints -----------------------------------------------------------------------------

def fresh_head(trained, folder: Path) -> str:
    """The trained encoder with its classifier weights removed: loaded with a freshly initialized head."""
    path = clone(trained["checkpoint"], folder / "model")
    edit_weights(path, drop("classifier."))
    return str(path)


def random_model(trained, folder: Path) -> str:
    """A tiny BERT with random weights everywhere (nothing learnt yet) and the trained model's tokenizer."""
    from transformers import AutoTokenizer

    from labeldiag.synthetic import TOPICS, tiny_bert

    tok = AutoTokenizer.from_pretrained(trained["checkpoint"])
    path = folder / "model"
    tiny_bert(len(tok), list(TOPICS), seed=3).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


# --- what the findings say ----------------------------------------------------------------------------

def _mapping(r, rows):
    ev = r.finding("label-permutation")["evidence"]
    assert ev["mapping"] == {"0": 1, "1": 0, "2": 2}
    assert ev["mapping_names"]["0"] == "sport"
    assert ev["best_accuracy"] > 0.9 and ev["identity_accuracy"] < 0.5


def _test_and_sample_size(r, rows):
    ev = r.finding("random-predictions")["evidence"]
    assert "chi-square" in ev["test"] and ev["n"] == len(rows) and ev["p_value"] >= 0.01


def _how_many_needed(r, rows):
    assert r.finding("too-few-examples")["evidence"]["needed"] > 10 and "random-predictions" not in r.codes()


def _disconnected_layers(r, rows):
    layers = r.finding("disconnected-parameters")["evidence"]["layers"]
    assert set(layers) == {"embeddings", "layer 0", "layer 1", "pooler"} and "classifier" not in layers


def _first_nonfinite_module(r, rows):
    assert r.finding("nonfinite-loss")["evidence"]["first_nonfinite_module"] == "bert.pooler.activation"


def _backward_origin(r, rows):
    assert r.finding("nonfinite-gradients")["evidence"]["backward_origin_module"] == "bert.pooler.activation"


def _nothing_ran(r, rows):
    assert "no parameter is trainable" in r.finding("cannot-overfit")["hint"]
    assert r.report["metrics"]["steps_run"] == 0


def _unchanged_layers(r, rows):
    layers = r.finding("parameters-unchanged")["evidence"]["layers"]
    assert "bert.encoder.layer.0" in layers and "bert.encoder.layer.1" in layers
    assert not any(layer.startswith("classifier") for layer in layers)  # the head did move
    assert "got no gradient" in r.finding("cannot-overfit")["hint"] or "cannot-overfit" not in r.codes()


def _stopped_at_once(r, rows):
    assert r.report["metrics"]["steps_run"] == r.finding("loss-diverged")["evidence"]["step"] < 20
    assert "lower --lr" in r.finding("cannot-overfit")["hint"]


def _init_loss_ratio(r, rows):
    assert r.finding("loss-at-init-off")["evidence"]["ratio"] > 2


# --- the zoo ------------------------------------------------------------------------------------------

CL, GF, ST = "check-logits", "grad-flow", "smoke-train"
GF_ARGS = ("--max-examples", 32)
ST_ARGS = ("--no-progress", "--steps", 20)

DEFECTS = [
    # check-logits: the model's labels, head, inputs and outputs
    Defect("swapped-id2label", CL, ("label-permutation",), plant=swap_names, exit_code=1, evidence=_mapping),
    Defect("dataset-label-order", CL, ("label-permutation",), exit_code=1,
           rows=lambda r: [{**x, "label": {"sport": 1, "politics": 0, "tech": 2}[x["label"]]} for x in r]),
    Defect("bias-dominated-head", CL, ("constant-predictions",), exit_code=1,
           plant=lambda c: edit_weights(c, scale_head(0.0, [8.0, 0.0, 0.0]))),
    Defect("constant-pooler", CL, ("input-independent-logits", "representation-collapse"), exit_code=1,
           plant=lambda c: edit_weights(c, zero_pooler)),
    Defect("shuffled-gold-labels", CL, ("random-predictions",), rows=shuffle_labels, exit_code=1,
           evidence=_test_and_sample_size),
    Defect("near-zero-head-unlabelled", CL, ("uniform-logits",), exit_code=0,
           plant=lambda c: edit_weights(c, scale_head(0.002, [0.0, 0.0, 0.0])),
           rows=lambda r: [{"text": x["text"]} for x in r]),
    # accurate argmax, probabilities ~1/3 (ECE ~0.6): a folded temperature misleads, so a warning
    Defect("near-zero-head-still-right", CL, ("uniform-logits",), exit_code=0,
           plant=lambda c: edit_weights(c, scale_head(0.002, [0.0, 0.0, 0.0]))),
    Defect("unscaled-head", CL, ("logit-saturation",), exit_code=0, plant=lambda c: edit_weights(c, scale_head(300.0))),
    Defect("dropout-in-eval", CL, ("nondeterministic-eval",), model_class="AlwaysDropoutBert", exit_code=0),
    Defect("vocab-larger-than-embeddings", CL, ("tokenizer-model-mismatch",), exit_code=1,
           plant=lambda c: (edit_weights(c, shrink_vocab), edit_config(c, vocab_size=60))),
    Defect("foreign-script", CL, ("unk-heavy",), exit_code=0,
           rows=lambda r: [{**x, "text": x["text"] + " ξψζ ωφχ θλμ ξψζ ωφχ θλμ ξψζ"} for x in r]),
    Defect("max-length-too-short", CL, ("truncation-heavy",), args=("--max-length", 5), exit_code=0),
    Defect("unshuffled-one-class", CL, ("single-class-batch",), exit_code=0,
           rows=lambda r: [x for x in r if x["label"] == "tech"][:40]),
    Defect("ten-examples", CL, ("too-few-examples",), rows=lambda r: r[:10], exit_code=0, evidence=_how_many_needed),
    Defect("label2id-not-inverse", CL, ("label-map-inconsistent",), exit_code=1,
           plant=lambda c: edit_config(c, label2id={"sport": 0, "politics": 2, "tech": 1})),
    Defect("generic-names", CL, ("label-names-generic",), exit_code=0,
           plant=lambda c: edit_config(c, id2label={"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"},
                                       label2id={"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2}),
           rows=lambda r: [{**x, "label": LABEL_IDS[x["label"]]} for x in r]),
    Defect("misspelt-label-name", CL, ("label-set-mismatch",), exit_code=1,
           rows=lambda r: [{**x, "label": "sports" if x["label"] == "sport" else x["label"]} for x in r]),
    Defect("one-based-labels", CL, ("labels-out-of-range",), exit_code=1,
           rows=lambda r: [{**x, "label": LABEL_IDS[x["label"]] + 1} for x in r]),
    Defect("float-labels", CL, ("problem-type-mismatch",), exit_code=1,
           rows=lambda r: [{**x, "label": float(LABEL_IDS[x["label"]])} for x in r]),
    Defect("regression-problem-type", CL, ("problem-type-mismatch",), exit_code=1,
           plant=lambda c: edit_config(c, problem_type="regression")),
    Defect("head-missing", CL, ("head-uninitialized",), exit_code=1, severities={"head-uninitialized": "error"},
           plant=lambda c: edit_weights(c, drop("classifier."))),
    Defect("encoder-layer-missing", CL, ("weights-reinitialized",), exit_code=1,
           plant=lambda c: edit_weights(c, drop("bert.encoder.layer.0."))),
    Defect("head-saved-under-other-name", CL, ("unused-checkpoint-weights",), exit_code=1,
           plant=lambda c: edit_weights(c, rename("classifier.", "head."))),
    # grad-flow: one backward pass
    Defect("detached-pooled-output", GF, ("disconnected-parameters",), model_class="DetachedPooledBert",
           args=GF_ARGS, severities={"disconnected-parameters": "error"}, evidence=_disconnected_layers),
    Defect("unscaled-logits-x1000-fresh-head", GF, ("exploding-gradients",), start="fresh-head",
           model_class="UnscaledLogitsBert", args=GF_ARGS, severities={"exploding-gradients": "error"}),
    # trained and x1000 on examples it gets right: softmax is exactly one-hot and right, so p - y == 0
    Defect("unscaled-logits-x1000-one-hot", GF, ("zero-gradients",), model_class="UnscaledLogitsBert", args=GF_ARGS,
           rows=correctly_classified, severities={"zero-gradients": "warning"}),
    Defect("log-of-tanh-nan", GF, ("nonfinite-loss",), model_class="NaNPoolerBert", args=GF_ARGS,
           severities={"nonfinite-loss": "error"}, evidence=_first_nonfinite_module),
    Defect("zero-vector-norm-nan-grad", GF, ("nonfinite-gradients",), model_class="NaNGradientBert", args=GF_ARGS,
           severities={"nonfinite-gradients": "error"}, evidence=_backward_origin),
    Defect("encoder-frozen-on-purpose", GF, ("frozen-parameters",), model_class="FrozenEncoderBert", args=GF_ARGS,
           severities={"frozen-parameters": "info"}),
    Defect("nothing-trainable", GF, ("nothing-trainable",), model_class="AllFrozenBert", args=GF_ARGS,
           severities={"nothing-trainable": "error"}),
    Defect("gradient-damped-block", GF, ("vanishing-gradients",), model_class="GradientDampedBert", args=GF_ARGS,
           severities={"vanishing-gradients": "warning"}),
    Defect("unscaled-logits-fresh-head", GF, ("loss-at-init-off",), start="fresh-head",
           model_class="UnscaledLogitsBert", args=GF_ARGS, severities={"loss-at-init-off": "warning"}),
    # smoke-train: overfitting one batch from random weights
    Defect("frozen-everything", ST, ("nothing-trainable", "frozen-parameters", "cannot-overfit"), start="random",
           model_class="AllFrozenBert", args=ST_ARGS, exit_code=1, evidence=_nothing_ran,
           severities={"nothing-trainable": "error", "frozen-parameters": "info", "cannot-overfit": "error"}),
    Defect("logits-detached-from-every-parameter", ST, ("disconnected-parameters", "cannot-overfit"), start="random",
           model_class="DetachedFrozenHeadBert", args=ST_ARGS, exit_code=1,
           severities={"disconnected-parameters": "error", "cannot-overfit": "error"}),
    Defect("encoder-detached", ST, ("disconnected-parameters", "parameters-unchanged"), start="random",
           model_class="DetachedPooledBert", args=(*ST_ARGS, "--lr", "3e-3"), exit_code=1, evidence=_unchanged_layers,
           severities={"disconnected-parameters": "error", "parameters-unchanged": "error"}),
    Defect("absurd-learning-rate", ST, ("loss-diverged", "cannot-overfit"), start="random",
           args=(*ST_ARGS, "--lr", "10"), exit_code=1, evidence=_stopped_at_once,
           severities={"loss-diverged": "error", "cannot-overfit": "error"}),
    Defect("unscaled-logits-fresh-head", ST, ("loss-at-init-off",), start="fresh-head",
           model_class="UnscaledLogitsBert", args=("--no-progress", "--steps", 2), evidence=_init_loss_ratio),
]
