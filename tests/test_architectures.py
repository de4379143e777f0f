"""Decoder classifiers (Llama, Qwen2, Mistral, Gemma, GPT-2) and other encoders (DeBERTa-v2, ModernBERT,
ELECTRA, XLM-RoBERTa, MPNet) on tiny configs: every command runs, the layer table is in depth order
with the architecture's own names, the load audit tells head from encoder, the features feeding the
head are captured (the last non-pad token for decoders), label-token gradients reach every block, and
a decoder without a pad token is diagnosed instead of crashing."""
from __future__ import annotations

import inspect

import numpy as np
import pytest
from zoo_architectures import DECODERS, ENCODERS, SEP, tiny_classifier, tiny_pretrained

import labeldiag
from labeldiag.synthetic import TOPICS, build_tokenizer, make_examples, save_tokenizer

LABELS = list(TOPICS)
LABEL_WORDS = ["goal", "party", "chip"]  # single tokens of the synthetic vocabulary, present in the rows
EMBEDDINGS = {"llama": "model.embed_tokens", "qwen2": "model.embed_tokens", "mistral": "model.embed_tokens",
              "gemma": "model.embed_tokens", "gpt2": "transformer.wte"}
HEAD = {"deberta-v2": "classifier", "modernbert": "classifier", "electra": "classifier",
        "xlm-roberta": "classifier", "mpnet": "classifier"}


@pytest.fixture(scope="module")
def task():
    rows = make_examples(24, seed=5)
    return build_tokenizer([r["text"] for r in rows]), rows


def codes(report) -> set[str]:
    return {f.code for f in report.findings}


@pytest.mark.parametrize("arch", DECODERS + ENCODERS)
def test_every_command_runs(arch, task):
    tok, rows = task
    model = tiny_classifier(arch, len(tok), LABELS)
    logits = labeldiag.check_logits(model, rows[:12], tokenizer=tok)
    assert logits.metrics["representation_source"] in ("score", "classifier")
    assert not codes(logits) & {"pad-token-missing", "padding-sensitive-logits", "nondeterministic-eval"}

    flow = labeldiag.grad_flow(model, rows, tokenizer=tok, max_examples=6, label_tokens=LABEL_WORDS)
    names = [layer["name"] for layer in flow.metrics["layers"]]
    blocks = [n for n in names if n.startswith("layer ")]
    assert blocks == ["layer 0", "layer 1"]
    # depth order: input embeddings first, then the blocks, the head last
    assert names.index(EMBEDDINGS.get(arch, "embeddings")) < names.index("layer 0")
    assert names[-1] == HEAD.get(arch, "score")
    heat = flow.metrics["label_token_gradients"]["layers"]
    assert [row["layer"] for row in heat] == ["embeddings", "layer 0", "layer 1"]
    # the head reads one position ([CLS] / the last token), so below the top block the label words get gradient
    assert heat[0]["label_mean"] > 0 and heat[1]["label_mean"] > 0
    assert not codes(flow) & {"disconnected-parameters", "nonfinite-gradients", "pad-token-missing"}

    train = labeldiag.smoke_train(model, rows, tokenizer=tok, steps=2, max_examples=6)
    assert train.metrics["steps_run"] == 2 and train.metrics["preflight"]["disconnected"] == 0


@pytest.mark.parametrize("arch", DECODERS + ENCODERS)
def test_load_audit_tells_the_fresh_head_from_the_pretrained_encoder(arch, task, tmp_path):
    from labeldiag.load.model import load_model

    tok, _ = task
    tiny_pretrained(arch, len(tok), LABELS).save_pretrained(tmp_path)
    save_tokenizer(tok, tmp_path)
    audit = load_model(str(tmp_path)).audit
    assert audit.missing_head and not audit.missing_body
    assert all(k.split(".")[0] in ("score", "classifier", "pooler") for k in audit.missing_head)
    assert not audit.unused  # the pretraining head (lm_head, decoder, discriminator) is recognised as one


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_decoder_features_are_the_last_non_pad_token(arch, task):
    import torch

    from labeldiag.load.data import examples_from_rows
    from labeldiag.measure.encode import encode
    from labeldiag.measure.forward import run_forward
    from labeldiag.measure.runtime import pick_runtime

    tok, rows = task
    model = tiny_classifier(arch, len(tok), LABELS).eval()
    enc = encode(examples_from_rows("rows", iter(rows[:6]), 6, None, None, None), tok, 64, None, None, 0)
    got = run_forward(model, enc, pick_runtime("cpu", "fp32"), batch_size=6)
    assert got.feature_source == "score" and got.features.shape == (6, 32)
    base = getattr(model, model.base_model_prefix)
    with torch.no_grad():
        for i, ids in enumerate(enc.ids):  # alone, unpadded: the last position is the last real token
            inputs = {"input_ids": torch.as_tensor(ids)[None]}
            if "token_type_ids" in inspect.signature(base.forward).parameters:  # GPT-2 embeds segment ids too
                inputs["token_type_ids"] = torch.as_tensor(enc.type_ids[i])[None]
            hidden = base(**inputs).last_hidden_state[0, -1]
            np.testing.assert_allclose(got.features[i], hidden.numpy(), atol=1e-4)


def test_decoder_without_pad_token_is_diagnosed_and_measured(task):
    tok, rows = task
    model = tiny_classifier("llama", len(tok), LABELS, pad=None)
    tok_no_pad = build_tokenizer([r["text"] for r in rows])
    tok_no_pad.pad_token = None
    tok_no_pad.eos_token = "[SEP]"
    report = labeldiag.check_logits(model, rows, tokenizer=tok_no_pad)
    f = next(f for f in report.findings if f.code == "pad-token-missing")
    assert f.severity == "error" and f.evidence["temporary_pad_id"] == SEP
    assert "model.config.pad_token_id" in f.hint and "eos_token" in f.hint
    assert report.metrics["representation_source"] == "score"
    flow = labeldiag.grad_flow(tiny_classifier("gpt2", len(tok), LABELS, pad=None), rows, tokenizer=tok,
                               max_examples=8)
    assert "pad-token-missing" in codes(flow)
