"""grad-flow through the CLI: healthy models, evidence, label tokens, usage errors (the zoo's defects are in
tests/zoo.py)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import zoo
from helpers import clone, edit_weights, run_cli, save_tiny, write_jsonl
LABELS = ["sport", "politics", "tech"]


def model_class(cls: str) -> list[str]:
    return ["--model-class", f"{zoo.MODELS}:{cls}"]


def grad_flow(ckpt, data, *args, tmp):
    return run_cli("grad-flow", ckpt, data, "--max-examples", 32, *args, tmp=tmp)


@pytest.fixture(scope="module")
def fresh_head(trained, tmp_path_factory):
    return zoo.fresh_head(trained, tmp_path_factory.mktemp("fresh"))


@pytest.fixture(scope="module")
def label_token_data(tmp_path_factory):
    """Texts that start with the three label words (positions 1, 2, 3 after [CLS]) and their tokenizer."""
    from labeldiag.synthetic import build_tokenizer, make_examples

    rows = [{"text": "sport politics tech " + r["text"], "label": r["label"]} for r in make_examples(120, seed=3)]
    tok = build_tokenizer([r["text"] for r in rows])
    for word in LABELS:
        assert len(tok(word, add_special_tokens=False)["input_ids"]) == 1
    out = tmp_path_factory.mktemp("labeltok")
    return tok, write_jsonl(rows, out / "data.jsonl"), out


def _label_token_ckpt(tok, out: Path, cls_name: str) -> Path:
    import torch

    import zoo_models
    from transformers import BertConfig

    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=3,
                        id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)})
    return save_tiny(getattr(zoo_models, cls_name)(config), tok, out / cls_name)


# --- healthy -----------------------------------------------------------------------------

def test_trained_model_is_healthy(trained, tmp_path):
    plot = tmp_path / "flow.png"
    r = grad_flow(trained["checkpoint"], trained["data"], "--plot", plot, tmp=tmp_path)
    assert r.code == 0, r.err
    assert r.problems() == []
    m = r.report["metrics"]
    assert m["dropout_disabled"] is True and m["loss"] < m["ln_num_labels"]
    names = [row["name"] for row in m["layers"]]
    assert names == ["embeddings", "layer 0", "layer 1", "pooler", "classifier"]
    assert all(row["grad_norm"] > 0 for row in m["layers"])
    assert plot.stat().st_size > 1000


def test_fresh_head_is_healthy_and_only_info(fresh_head, trained, tmp_path):
    r = grad_flow(fresh_head, trained["data"], tmp=tmp_path)
    assert r.code == 0, r.err
    assert r.problems() == []
    assert r.severities()["head-uninitialized"] == "info"
    m = r.report["metrics"]
    assert 0.5 < m["loss"] / m["ln_num_labels"] < 1.5


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_init_bert_is_healthy(tokenizer_and_rows, tmp_path, seed):
    from labeldiag.synthetic import tiny_bert

    tok, rows = tokenizer_and_rows
    ckpt = save_tiny(tiny_bert(len(tok), LABELS, seed=seed), tok, tmp_path / "m")
    r = grad_flow(ckpt, write_jsonl(rows[:32], tmp_path / "d.jsonl"), tmp=tmp_path)
    assert r.code == 0 and r.problems() == [], (r.err, r.codes())


def test_saturated_pooler(trained, tmp_path):
    import torch

    ckpt = clone(trained["checkpoint"], tmp_path / "sat")
    edit_weights(ckpt, lambda t: {**t, "bert.pooler.dense.bias": torch.full_like(t["bert.pooler.dense.bias"], 20.0)})
    r = grad_flow(ckpt, trained["data"], tmp=tmp_path)
    ev = r.finding("saturated-activations")["evidence"]["modules"]
    assert ev["bert.pooler.activation"]["share"] == 1.0


def test_dead_relu_pre_classifier_distilbert(tokenizer_and_rows, tmp_path):
    """DistilBERT applies ReLU functionally after pre_classifier; a bias of -100 kills every unit."""
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    tok, rows = tokenizer_and_rows
    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=len(tok), dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                              max_position_embeddings=128, num_labels=3, id2label=dict(enumerate(LABELS)),
                              label2id={n: i for i, n in enumerate(LABELS)})
    model = DistilBertForSequenceClassification(config)
    with torch.no_grad():
        model.pre_classifier.bias.fill_(-100.0)
    ckpt = save_tiny(model, tok, tmp_path / "distil")
    r = grad_flow(ckpt, write_jsonl(rows[:32], tmp_path / "d.jsonl"), tmp=tmp_path)
    dead = r.finding("dead-units")["evidence"]["modules"]["pre_classifier"]
    assert dead["dead"] == dead["units"] == 32
    zero = r.finding("zero-gradients")["evidence"]["layers"]
    assert {"pre_classifier", "layer 0", "layer 1"} <= set(zero)
    # the same model without the planted bias: no dead units
    with torch.no_grad():
        model.pre_classifier.bias.zero_()
    ok = grad_flow(save_tiny(model, tok, tmp_path / "distil-ok"), tmp_path / "d.jsonl", tmp=tmp_path)
    assert "dead-units" not in ok.codes() and ok.problems() == [], ok.codes()


# --- label tokens ------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["--label-tokens", "--label-token-positions"])
@pytest.mark.parametrize("cls,broken", [("LabelTokenBert", False), ("DetachedLabelTokenBert", True)],
                         ids=["healthy-label-tokens", "detached-label-tokens"])
def test_label_token_gradient(label_token_data, tmp_path, how, cls, broken):
    tok, data, out = label_token_data
    ckpt = out / cls
    if not ckpt.exists():
        _label_token_ckpt(tok, out, cls)
    value = ",".join(LABELS) if how == "--label-tokens" else "1,2,3"
    r = grad_flow(ckpt, data, *model_class(cls), how, value, tmp=tmp_path)
    assert ("no-grad-to-label-tokens" in r.codes()) is broken, (r.err, r.codes())
    lt = r.report["metrics"]["label_token_gradients"]
    assert [row["layer"] for row in lt["layers"]] == ["embeddings", "layer 0", "layer 1"]
    assert lt["occurrences"] == 3 * 32
    # through attention the input embeddings still get gradient at the label positions
    assert lt["layers"][0]["label_mean"] > 0
    if broken:
        assert lt["layers"][-1]["label_mean"] == 0.0 and r.code == 1
    else:
        assert r.problems() == [], r.codes()
    if how == "--label-tokens":
        assert set(lt["embedding_rows"]) == set(LABELS) and all(v > 0 for v in lt["embedding_rows"].values())


def test_label_token_heatmap_plot(label_token_data, tmp_path):
    tok, data, out = label_token_data
    ckpt = out / "DetachedLabelTokenBert"
    if not ckpt.exists():
        _label_token_ckpt(tok, out, "DetachedLabelTokenBert")
    plot = tmp_path / "heat.png"
    r = grad_flow(ckpt, data, *model_class("DetachedLabelTokenBert"), "--label-token-positions", "1,2,3", "--plot", plot,
                  tmp=tmp_path)
    heat = r.report["metrics"]["label_token_heatmap"]["grad_norm"]
    assert len(heat) == 3 and plot.stat().st_size > 1000


# --- usage ------------------------------------------------------------------------------------

def test_unlabelled_data_is_a_usage_error(trained, tmp_path):
    rows = [{"text": "goal match team"}] * 4
    r = grad_flow(trained["checkpoint"], write_jsonl(rows, tmp_path / "u.jsonl"), tmp=tmp_path)
    assert r.code == 2 and "grad-flow needs labelled examples" in r.err


def test_label_tokens_absent_from_data_is_a_usage_error(trained, tmp_path):
    r = grad_flow(trained["checkpoint"], trained["data"], "--label-tokens", "[MASK],[MASK],[MASK]", tmp=tmp_path)
    assert r.code == 2 and "none of these tokens occurs" in r.err


def test_bad_lr_is_a_usage_error(trained, tmp_path):
    r = grad_flow(trained["checkpoint"], trained["data"], "--lr", "-1", tmp=tmp_path)
    assert r.code == 2 and "--lr" in r.err


# --- oracle: the measurement against plain autograd --------------------------------------------

def test_micro_batches_match_plain_autograd(trained):
    """Accumulated micro-batch gradients equal one full-batch backward; the model is left as it was."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from labeldiag.load.data import read_examples
    from labeldiag.measure.encode import encode
    from labeldiag.measure.gradients import measure_grad_flow
    from labeldiag.measure.runtime import pick_runtime

    model = AutoModelForSequenceClassification.from_pretrained(trained["checkpoint"])
    tok = AutoTokenizer.from_pretrained(trained["checkpoint"])
    ex = read_examples(trained["data"], 20, None, None, None, False)
    enc = encode(ex, tok, 64, None, None)
    labels = np.array([model.config.label2id[x] for x in ex.labels])
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flow = measure_grad_flow(model, enc, labels, pick_runtime("cpu", "fp32"), 7, 2e-5, num_labels=3,
                             base_prefix="bert")
    assert flow.micro_batches == 3 and not model.training
    assert all(m.p > 0 for m in model.modules() if isinstance(m, torch.nn.Dropout))  # restored
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    ours = {k: p.grad.clone() for k, p in model.named_parameters()}

    model.zero_grad(set_to_none=True)
    batch = tok([t for t in ex.texts], padding=True, return_tensors="pt")
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    model.train()
    out = model(**batch, labels=torch.as_tensor(labels))
    out.loss.backward()
    assert math.isclose(flow.loss, float(out.loss), rel_tol=1e-4)
    for k, p in model.named_parameters():
        torch.testing.assert_close(ours[k], p.grad, rtol=1e-3, atol=1e-6)
    total = math.sqrt(sum(float(p.grad.norm()) ** 2 for p in model.parameters()))
    assert math.isclose(flow.total_grad_norm, total, rel_tol=1e-4)
