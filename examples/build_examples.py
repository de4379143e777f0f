"""Build tiny checkpoints + data for the example models, and self-check them.

    python examples/build_examples.py OUT_DIR            # build (default /tmp/labeldiag-examples)
    python examples/build_examples.py OUT_DIR --check    # build, then assert every variant behaves

Layout (every checkpoint folder holds config.json, model.safetensors and a
fast tokenizer; ``data*.jsonl`` sit beside the variants):

    OUT/label_token/{healthy,broken,unscaled,detached}/   data.jsonl   (premise/hypothesis, MNLI names)
    OUT/supcon/{healthy,broken}/                          data.jsonl   (text/label, 4 topics)
    OUT/distil_head/{healthy,broken}/                     data.jsonl, data_float_labels.jsonl
    OUT/collapse/{healthy,broken}/                        data.jsonl   (text/label, 3 topics)

``build_all(out_root)`` returns ``{"label_token/healthy": (ckpt_dir, data_jsonl), ...}``
-- one entry per variant; ``"distil_head/float_labels"`` pairs the healthy
DistilBERT-style checkpoint with the float-label data file.

Everything is random-init, tiny (hidden 32, 2 layers, 2 heads, intermediate
64), built offline: the tokenizers are trained in memory with the
``tokenizers`` library on the generated text. The model files are loaded by
path (``importlib``), so no relative imports are used anywhere.
"""

import argparse
import importlib.util
import json
import math
import random
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
MAX_LEN = 128

MNLI_LABELS = ["contradiction", "neutral", "entailment"]
SUPCON_LABELS = ["sports", "business", "science", "world"]
SENTIMENT_LABELS = ["negative", "neutral", "positive"]
COLLAPSE_LABELS = ["sports", "business", "science"]

# In the unscaled label-token variants the last layer's LayerNorm gain is
# multiplied by this. Why: at hidden size 32 a fresh init gives unit-rms
# states and small pooler outputs, so even unscaled dot products only differ
# by ~1.3 between classes (and sqrt(32)=5.7 is a small factor compared with
# sqrt(768)=27.7); a random 768-wide model still only reaches gaps of ~12.
# A pretrained roberta-base has last-layer states with norms of tens, which
# is what makes the seed's unscaled dot products explode. Gain x8 gives
# states of norm ~45 at width 32 and class-score gaps of ~60: softmax
# one-hot and a loss at init far above ln 3, as in the seed.
UNSCALED_STATE_GAIN = 8.0

# Init std of the BERT / DistilBERT encoders (heads get the usual 0.02).
# Why: with the stock 0.02 at width 32 the attention/FFN outputs are tiny next
# to the residual stream, so the [CLS] state stays ~LayerNorm(its own
# embedding) whatever the input: pairwise cosine ~0.99999, effective rank ~1,
# and a ReLU head sees the same vector for every example. A "healthy" model
# would then look collapsed. 0.2 makes [CLS] input-dependent (mean cosine
# ~0.8, effective rank ~11), like a pretrained encoder, without any training.
ENCODER_INIT_RANGE = 0.2


# ---------------------------------------------------------------------------
# loading the example model files by path (same way labeldiag does)

def load_class(file_name, class_name):
    path = HERE / file_name
    mod_name = "labeldiag_example_" + path.stem
    if mod_name in sys.modules:
        return getattr(sys.modules[mod_name], class_name)
    spec = importlib.util.spec_from_file_location(mod_name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = mod
    spec.loader.exec_module(mod)
    return getattr(mod, class_name)


# ---------------------------------------------------------------------------
# synthetic data (class-dependent words so a small batch can be fitted)

_PEOPLE = ["a man", "a woman", "the child", "an old farmer", "two students", "the doctor", "a musician", "the chef"]
_ACTIONS = [
    ("playing a guitar", "making music", "sleeping at home"),
    ("cooking dinner", "preparing food", "swimming in a lake"),
    ("reading a book", "looking at pages", "running a marathon"),
    ("riding a bicycle", "outside on a bike", "sitting in an office"),
    ("painting a wall", "holding a brush", "flying a plane"),
    ("walking a dog", "outdoors with an animal", "asleep in bed"),
]
_PLACES = ["in the park", "near the river", "at the market", "in a small town", "on the beach", "inside the station"]
_NEUTRAL_TAILS = ["for a contest", "because it is friday", "with an old friend", "for the first time", "to earn money"]


def mnli_examples(n, rng):
    out = []
    for i in range(n):
        who = rng.choice(_PEOPLE)
        act, entailed, contra = rng.choice(_ACTIONS)
        where = rng.choice(_PLACES)
        label = MNLI_LABELS[i % 3]
        # the three label words come first so they sit at positions 1, 2, 3 after <s>
        premise = f"contradiction neutral entailment {who} is {act} {where} ."
        if label == "entailment":
            hyp = f"{who} is {entailed} ."
        elif label == "contradiction":
            hyp = rng.choice([f"{who} is {contra} .", f"nobody is {act} ."])
        else:
            hyp = f"{who} is {act} {rng.choice(_NEUTRAL_TAILS)} ."
        out.append({"premise": premise, "hypothesis": hyp, "label": label})
    rng.shuffle(out)
    return out


_TOPIC_WORDS = {
    "sports": ["team", "match", "goal", "coach", "league", "season", "score", "player"],
    "business": ["market", "shares", "profit", "company", "bank", "investors", "prices", "deal"],
    "science": ["researchers", "study", "cells", "planet", "experiment", "physics", "data", "lab"],
    "world": ["government", "minister", "election", "border", "summit", "capital", "treaty", "protest"],
}
_SENT_WORDS = {
    "negative": ["terrible", "boring", "awful", "broken", "disappointing", "worst"],
    "neutral": ["ordinary", "average", "standard", "typical", "plain", "usual"],
    "positive": ["wonderful", "great", "excellent", "lovely", "amazing", "best"],
}
_FILLER = ["the", "a", "new", "report", "says", "today", "after", "this", "week", "and", "more", "about", "it"]


def _sentence(rng, words, k=3):
    toks = rng.sample(_FILLER, 4) + rng.sample(words, k)
    rng.shuffle(toks)
    return " ".join(toks) + " ."


def labelled_examples(label_names, vocab, n, rng):
    out = [{"text": _sentence(rng, vocab[label_names[i % len(label_names)]]), "label": label_names[i % len(label_names)]}
           for i in range(n)]
    rng.shuffle(out)
    return out


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


# ---------------------------------------------------------------------------
# tokenizers, trained in memory

BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def train_tokenizer(corpus, style):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = BERT_SPECIALS if style == "bert" else ROBERTA_SPECIALS
    unk = specials[1] if style == "bert" else "<unk>"
    tok = Tokenizer(models.WordPiece(unk_token=unk))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    # vocab larger than the corpus needs, so every corpus word is one token
    trainer = trainers.WordPieceTrainer(vocab_size=2000, min_frequency=1, special_tokens=specials)
    tok.train_from_iterator(corpus, trainer=trainer)
    ids = {t: tok.token_to_id(t) for t in specials}
    if style == "bert":
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
        )
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
            sep_token="[SEP]", mask_token="[MASK]", model_max_length=MAX_LEN,
        )
    else:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>",
            pair="<s> $A </s> </s> $B </s>",
            special_tokens=[("<s>", ids["<s>"]), ("</s>", ids["</s>"])],
        )
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
            cls_token="<s>", sep_token="</s>", mask_token="<mask>", model_max_length=MAX_LEN,
        )
    return fast


def save_tokenizer(tokenizer, out_dir, model_input_names):
    tokenizer.model_input_names = list(model_input_names)
    tokenizer.save_pretrained(out_dir)
    # transformers 5 writes tokenizer_class "TokenizersBackend", which 4.x's
    # AutoTokenizer cannot resolve; "PreTrainedTokenizerFast" works in both
    # and makes both load tokenizer.json as is (post-processor included).
    cfg_path = Path(out_dir) / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg.pop("backend", None)  # 5.x-only key; 4.x would pass it on as an init kwarg
    cfg["model_input_names"] = list(model_input_names)
    cfg["model_max_length"] = MAX_LEN
    cfg_path.write_text(json.dumps(cfg, indent=2))


# ---------------------------------------------------------------------------
# checkpoints

def _label_maps(names):
    return {i: n for i, n in enumerate(names)}, {n: i for i, n in enumerate(names)}


def _save_model(model, tokenizer, out_dir, model_input_names):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    save_tokenizer(tokenizer, out_dir, model_input_names)
    return out_dir


def _roberta_config(tokenizer, **extra):
    from transformers import RobertaConfig

    id2label, label2id = _label_maps(MNLI_LABELS)
    return RobertaConfig(
        vocab_size=len(tokenizer), max_position_embeddings=MAX_LEN + 2, type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, num_labels=3, id2label=id2label, label2id=label2id,
        label_token_positions=[1, 2, 3], **TINY, **extra,
    )


def _bert_config(tokenizer, labels, **extra):
    from transformers import BertConfig

    id2label, label2id = _label_maps(labels)
    return BertConfig(
        vocab_size=len(tokenizer), max_position_embeddings=MAX_LEN, pad_token_id=tokenizer.pad_token_id,
        num_labels=len(labels), id2label=id2label, label2id=label2id, initializer_range=ENCODER_INIT_RANGE,
        **TINY, **extra,
    )


def _distil_config(tokenizer, labels, **extra):
    from transformers import DistilBertConfig

    id2label, label2id = _label_maps(labels)
    return DistilBertConfig(
        vocab_size=len(tokenizer), max_position_embeddings=MAX_LEN, pad_token_id=tokenizer.pad_token_id,
        dim=TINY["hidden_size"], n_layers=TINY["num_hidden_layers"], n_heads=TINY["num_attention_heads"],
        hidden_dim=TINY["intermediate_size"], num_labels=len(labels), id2label=id2label, label2id=label2id,
        initializer_range=ENCODER_INIT_RANGE, **extra,
    )


def _label_ids(rows, names):
    return torch.tensor([names.index(r["label"]) for r in rows])


def _variant_of(model, cls, **flags):
    """Same weights as ``model``, config flags changed (the broken twin)."""
    config = model.config.__class__.from_dict(model.config.to_dict())
    for k, v in flags.items():
        setattr(config, k, v)
    twin = cls(config)
    twin.load_state_dict(model.state_dict())
    return twin.eval()


LABEL_TOKEN_VARIANTS = {
    # name: (config flags, multiply last-layer state scale)
    "healthy": (dict(scale_scores=True, detach_label_tokens=False, numpy_logits=False, loop_loss=False), False),
    # the seed author's model: every defect at once
    "broken": (dict(scale_scores=False, detach_label_tokens=True, numpy_logits=True, loop_loss=True), True),
    # one defect each, for isolating a single finding
    "unscaled": (dict(scale_scores=False, detach_label_tokens=False, numpy_logits=False, loop_loss=False), True),
    "detached": (dict(scale_scores=True, detach_label_tokens=True, numpy_logits=False, loop_loss=False), False),
}


def _encode(tokenizer, rows, model_input_names):
    if "premise" in rows[0]:
        enc = tokenizer([r["premise"] for r in rows], [r["hypothesis"] for r in rows], padding=True,
                        return_tensors="pt")
    else:
        enc = tokenizer([r["text"] for r in rows], padding=True, return_tensors="pt")
    return {k: v for k, v in enc.items() if k in model_input_names}


def fresh_head(model, head_modules, std=0.02):
    """Re-initialise the head like a new fine-tuning head (normal(0, 0.02), zero bias)."""
    with torch.no_grad():
        for name in head_modules:
            mod = model.get_submodule(name)
            mod.weight.normal_(0.0, std)
            mod.bias.zero_()
    return model


def build_all(out_root, seed=0):
    """Write every checkpoint and data file under out_root.

    Returns {"<example>/<variant>": (checkpoint_dir, data_jsonl)} as Paths.
    """
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)

    mnli = mnli_examples(64, rng)
    supcon = labelled_examples(SUPCON_LABELS, _TOPIC_WORDS, 64, rng)
    sentiment = labelled_examples(SENTIMENT_LABELS, _SENT_WORDS, 64, rng)
    collapse = labelled_examples(COLLAPSE_LABELS, _TOPIC_WORDS, 64, rng)
    corpus = [r["premise"] + " " + r["hypothesis"] for r in mnli] + [r["text"] for r in supcon + sentiment + collapse]
    corpus += [" ".join(MNLI_LABELS + SENTIMENT_LABELS + SUPCON_LABELS)] * 20

    bert_tok = train_tokenizer(corpus, "bert")
    rob_tok = train_tokenizer(corpus, "roberta")
    result = {}

    # 1. label-token RoBERTa ------------------------------------------------
    LabelTokenRoberta = load_class("label_token_model.py", "LabelTokenRoberta")
    d = out_root / "label_token"
    d.mkdir(parents=True, exist_ok=True)
    write_jsonl(d / "data.jsonl", mnli)
    for variant, (flags, big_states) in LABEL_TOKEN_VARIANTS.items():
        torch.manual_seed(seed)
        model = LabelTokenRoberta(_roberta_config(rob_tok, **flags))
        if big_states:
            with torch.no_grad():
                model.roberta.encoder.layer[-1].output.LayerNorm.weight.mul_(UNSCALED_STATE_GAIN)
        result[f"label_token/{variant}"] = (
            _save_model(model, rob_tok, d / variant, ["input_ids", "attention_mask"]), d / "data.jsonl")

    # 3. BERT + SupCon ---------------------------------------------------------
    BertWithSupCon = load_class("supcon_model.py", "BertWithSupCon")
    d = out_root / "supcon"
    d.mkdir(parents=True, exist_ok=True)
    write_jsonl(d / "data.jsonl", supcon)
    names = ["input_ids", "token_type_ids", "attention_mask"]
    torch.manual_seed(seed)
    healthy = BertWithSupCon(_bert_config(bert_tok, SUPCON_LABELS, supcon_alpha=0.2, supcon_temperature=0.07,
                                          supcon_views_bug=False))
    fresh_head(healthy, ["classifier"])
    broken = _variant_of(healthy, BertWithSupCon, supcon_views_bug=True)
    for variant, model in (("healthy", healthy), ("broken", broken)):
        result[f"supcon/{variant}"] = (_save_model(model, bert_tok, d / variant, names), d / "data.jsonl")

    # 5. DistilBERT-style head ---------------------------------------------------
    DistilStyleClassifier = load_class("distilbert_head.py", "DistilStyleClassifier")
    d = out_root / "distil_head"
    d.mkdir(parents=True, exist_ok=True)
    write_jsonl(d / "data.jsonl", sentiment)
    # data-side bug: labels as floats (1.0) -> problem_type inferred as multi-label BCE
    label2idx = {n: i for i, n in enumerate(SENTIMENT_LABELS)}
    write_jsonl(d / "data_float_labels.jsonl",
                [{"text": r["text"], "label": float(label2idx[r["label"]])} for r in sentiment])
    names = ["input_ids", "attention_mask"]
    torch.manual_seed(seed)
    healthy = DistilStyleClassifier(_distil_config(bert_tok, SENTIMENT_LABELS, dead_pre_classifier=False))
    fresh_head(healthy, ["pre_classifier", "classifier"])
    broken = _variant_of(healthy, DistilStyleClassifier, dead_pre_classifier=True)
    with torch.no_grad():
        broken.pre_classifier.bias.fill_(float(broken.config.dead_bias_value))
    for variant, model in (("healthy", healthy), ("broken", broken)):
        result[f"distil_head/{variant}"] = (_save_model(model, bert_tok, d / variant, names), d / "data.jsonl")
    result["distil_head/float_labels"] = (d / "healthy", d / "data_float_labels.jsonl")

    # 4. collapsed SimCSE-style encoder ---------------------------------------------
    CollapsedBert = load_class("collapse_model.py", "CollapsedBert")
    d = out_root / "collapse"
    d.mkdir(parents=True, exist_ok=True)
    write_jsonl(d / "data.jsonl", collapse)
    names = ["input_ids", "token_type_ids", "attention_mask"]
    torch.manual_seed(seed)
    healthy = CollapsedBert(_bert_config(bert_tok, COLLAPSE_LABELS, collapse=False, collapse_eps=1e-4))
    fresh_head(healthy, ["mlp", "classifier"])
    broken = _variant_of(healthy, CollapsedBert, collapse=True)
    for variant, model in (("healthy", healthy), ("broken", broken)):
        result[f"collapse/{variant}"] = (_save_model(model, bert_tok, d / variant, names), d / "data.jsonl")
    return result


# ---------------------------------------------------------------------------
# self-check (plain torch, no labeldiag)

def _batch(ckpt, data_path, n=32):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(ckpt))
    rows = [json.loads(l) for l in open(data_path, encoding="utf-8")][:n]
    if "premise" in rows[0]:
        enc = tok([r["premise"] for r in rows], [r["hypothesis"] for r in rows], padding=True, return_tensors="pt")
    else:
        enc = tok([r["text"] for r in rows], padding=True, return_tensors="pt")
    return tok, rows, dict(enc)


def _labels(model, rows):
    lab = [r["label"] for r in rows]
    if isinstance(lab[0], str):
        return torch.tensor([model.config.label2id[x] for x in lab])
    return torch.tensor(lab)


def _trainable_without_grad(model):
    return [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]


def _capture_last_layer(model, layer):
    store = {}

    def hook(_mod, _inp, out):
        h = out[0] if isinstance(out, tuple) else out
        h.retain_grad()
        store["h"] = h

    return store, layer.register_forward_hook(hook)


def check(built):
    from transformers import AutoTokenizer

    ok = True

    def report(name, cond, msg):
        nonlocal ok
        print(f"  [{'ok' if cond else 'FAIL'}] {name}: {msg}")
        ok = ok and bool(cond)

    # every checkpoint loads with its class and with AutoTokenizer
    classes = {
        "label_token": ("label_token_model.py", "LabelTokenRoberta"),
        "supcon": ("supcon_model.py", "BertWithSupCon"),
        "distil_head": ("distilbert_head.py", "DistilStyleClassifier"),
        "collapse": ("collapse_model.py", "CollapsedBert"),
    }
    models = {}
    for key, (ckpt, data) in built.items():
        ex = key.split("/")[0]
        cls = load_class(*classes[ex])
        torch.manual_seed(0)
        models[key] = cls.from_pretrained(str(ckpt))
        AutoTokenizer.from_pretrained(str(ckpt))
    print("loaded %d checkpoints with Class.from_pretrained + AutoTokenizer" % len(models))

    # --- label token -----------------------------------------------------------
    print("label_token")
    lnC = math.log(3)
    ckpt, data = built["label_token/healthy"]
    tok, rows, enc = _batch(ckpt, data)
    pos_tokens = [tok.convert_ids_to_tokens(int(enc["input_ids"][0, p])) for p in (1, 2, 3)]
    report("label tokens", pos_tokens == MNLI_LABELS, f"positions 1,2,3 hold {pos_tokens}")
    for variant in LABEL_TOKEN_VARIANTS:
        m = models[f"label_token/{variant}"]
        m.train()
        labels = _labels(m, rows)
        store, h = _capture_last_layer(m, m.roberta.encoder.layer[-1])
        out = m(**enc, labels=labels)
        h.remove()
        loss = out[0] if isinstance(out, tuple) else out.loss
        logits = out[1] if isinstance(out, tuple) else out.logits
        if isinstance(logits, list):
            import numpy as np

            kind = f"list of {len(logits)} {type(logits[0]).__name__}"
            logits = torch.from_numpy(np.stack(logits))
        else:
            kind = type(out).__name__
        loss.backward()
        g = store["h"].grad
        g_lab = g[:, 1:4].abs().sum().item() if g is not None else 0.0
        g_cls = g[:, 0].abs().sum().item() if g is not None else 0.0
        gap = (logits.max(1).values - logits.min(1).values).median().item()
        print(f"    {variant:9s} loss={loss.item():8.3f} (ln3={lnC:.3f})  median score gap={gap:7.2f}  "
              f"grad@label-tokens={g_lab:.2e} grad@<s>={g_cls:.2e}  logits: {kind}")
        if variant == "healthy":
            report("healthy loss", abs(loss.item() - lnC) < 0.15, f"{loss.item():.3f} ~ ln3")
            report("healthy grads", not _trainable_without_grad(m), "every trainable tensor has nonzero gradient"
                   if not _trainable_without_grad(m) else f"no grad: {_trainable_without_grad(m)[:5]}")
            report("healthy label-token grad", g_lab > 0, f"{g_lab:.2e} > 0")
        if variant in ("broken", "detached"):
            report(f"{variant} detached", g_lab == 0.0 and g_cls > 0, f"label-token grad {g_lab} == 0, <s> grad {g_cls:.2e} > 0")
        if variant in ("broken", "unscaled"):
            report(f"{variant} unscaled", gap > 20 and loss.item() > 3 * lnC, f"score gap {gap:.1f} >> 10, loss {loss.item():.1f} >> ln3")
        if variant == "broken":
            report("broken numpy logits", isinstance(out, tuple) and kind.startswith("list"), kind)

    # --- supcon --------------------------------------------------------------------
    print("supcon")
    ckpt, data = built["supcon/healthy"]
    _, rows, enc = _batch(ckpt, data)
    res = {}
    for variant in ("healthy", "broken"):
        m = models[f"supcon/{variant}"]
        m.train()
        labels = _labels(m, rows)
        torch.manual_seed(0)
        out = m(**enc, labels=labels)
        out.loss.backward()
        # gradient the SupCon term alone sends into the encoder
        m.zero_grad()
        torch.manual_seed(0)
        out2 = m(**enc, labels=labels)
        out2.supcon_loss.backward()
        enc_grad = sum(p.grad.norm().item() ** 2 for n, p in m.named_parameters()
                       if n.startswith("bert.") and p.grad is not None) ** 0.5
        res[variant] = (out.ce_loss.item(), out.supcon_loss.item(), enc_grad, out.loss.item())
        print(f"    {variant:8s} loss={out.loss.item():.3f} ce={out.ce_loss.item():.3f} "
              f"supcon={out.supcon_loss.item():.3f} |grad encoder from supcon|={enc_grad:.3e}")
    m = models["supcon/healthy"]
    m.zero_grad()
    out = m(**enc, labels=_labels(m, rows))
    out.loss.backward()
    report("healthy ce", abs(res["healthy"][0] - math.log(4)) < 0.15, f"ce {res['healthy'][0]:.3f} ~ ln4={math.log(4):.3f}")
    report("healthy grads", not _trainable_without_grad(m), "every trainable tensor has nonzero gradient")
    report("broken supcon differs", abs(res["broken"][1] - res["healthy"][1]) > 1.0,
           f"supcon {res['broken'][1]:.2f} vs {res['healthy'][1]:.2f}")
    report("broken supcon starves encoder", res["broken"][2] < 1e-3 * res["healthy"][2],
           f"{res['broken'][2]:.2e} vs {res['healthy'][2]:.2e}")
    print(f"    the bug: pooled [{len(rows)}, {m.config.hidden_size}] is read as n_views={m.config.hidden_size} "
          f"one-dimensional views ({len(rows) * m.config.hidden_size} anchors) instead of [{len(rows)}, 2, "
          f"{m.config.hidden_size}]")

    # --- distil head -----------------------------------------------------------------
    print("distil_head")
    ckpt, data = built["distil_head/healthy"]
    _, rows, enc = _batch(ckpt, data)
    for variant in ("healthy", "broken"):
        m = models[f"distil_head/{variant}"]
        m.train()
        acts = {}
        hk = m.activation.register_forward_hook(lambda _m, _i, o: acts.__setitem__("relu", o.detach()))
        out = m(**enc, labels=_labels(m, rows))
        hk.remove()
        out.loss.backward()
        dead = (acts["relu"] <= 0).all(dim=0).float().mean().item()
        nograd = _trainable_without_grad(m)
        print(f"    {variant:8s} loss={out.loss.item():.3f} problem_type={m.config.problem_type} "
              f"dead ReLU units={dead:.0%} params without grad={len(nograd)}/{len(list(m.parameters()))}")
        if variant == "healthy":
            report("healthy loss", abs(out.loss.item() - math.log(3)) < 0.15, f"{out.loss.item():.3f} ~ ln3")
            report("healthy grads", not nograd, "every trainable tensor has nonzero gradient")
            report("healthy few dead units", dead < 0.25, f"{dead:.0%} of ReLU units never fire")
        else:
            report("broken dead units", dead == 1.0, f"{dead:.0%} dead")
            report("broken no grad below head", len(nograd) == len(list(m.parameters())) - 1,
                   "only classifier.bias gets gradient")
    ckpt, data = built["distil_head/float_labels"]
    cls = load_class(*classes["distil_head"])
    m = cls.from_pretrained(str(ckpt))
    _, rows, enc = _batch(ckpt, data)
    labels = _labels(m, rows)
    try:
        m(**enc, labels=labels)
        err = "no error"
    except Exception as exc:  # BCE on [B] targets vs [B, C] logits
        err = f"{type(exc).__name__}: {str(exc).splitlines()[0][:90]}"
    print(f"    float labels dtype={labels.dtype} -> problem_type={m.config.problem_type}; {err}")
    report("float labels pick BCE", m.config.problem_type == "multi_label_classification", m.config.problem_type)

    # --- collapse ----------------------------------------------------------------------
    print("collapse")
    ckpt, data = built["collapse/healthy"]
    _, rows, enc = _batch(ckpt, data)
    for variant in ("healthy", "broken"):
        m = models[f"collapse/{variant}"]
        m.eval()
        with torch.no_grad():
            out = m(**enc, output_hidden_states=True)
            cls_feat = out.hidden_states[-1][:, 0]
            _, emb, _ = m.encode(**enc)
        z = torch.nn.functional.normalize(cls_feat, dim=-1)
        cos = z @ z.T
        off = cos[~torch.eye(len(z), dtype=torch.bool)]
        s = torch.linalg.svdvals(cls_feat)
        p = s / s.sum()
        erank = math.exp(-(p * torch.log(p + 1e-12)).sum().item())
        preds = out.logits.argmax(-1)
        n_pred = len(set(preds.tolist()))
        m.train()
        torch.manual_seed(0)
        sim = m.simcse_step(enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids")).item()
        m.train()
        out2 = m(**enc, labels=_labels(m, rows))
        out2.loss.backward()
        print(f"    {variant:8s} min pairwise cos={off.min().item():.5f} mean={off.mean().item():.5f} "
              f"eff.rank={erank:.2f} distinct preds={n_pred} loss={out2.loss.item():.3f} "
              f"simcse={sim:.3f} (ln B={math.log(len(z)):.3f})")
        if variant == "healthy":
            report("healthy loss", abs(out2.loss.item() - math.log(3)) < 0.15, f"{out2.loss.item():.3f} ~ ln3")
            nograd = _trainable_without_grad(m)
            report("healthy grads", nograd == [], f"every trainable tensor gets a gradient: {nograd}")
            report("healthy not collapsed", off.mean().item() < 0.9 and erank > 2,
                   f"mean cos {off.mean().item():.3f} < 0.9, effective rank {erank:.2f} > 2")
        else:
            report("broken collapsed", off.min().item() > 0.999, f"min cos {off.min().item():.5f} > 0.999")
            report("broken constant predictions", n_pred == 1, f"{n_pred} distinct predicted class")
    return ok


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default="/tmp/labeldiag-examples")
    ap.add_argument("--check", action="store_true", help="after building, assert that every variant behaves")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    try:  # transformers 5 shows tqdm bars for loading/saving tiny files
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except Exception:
        pass
    built = build_all(args.out, seed=args.seed)
    for key, (ckpt, data) in built.items():
        print(f"{key:26s} {ckpt}  {data}")
    if args.check:
        ok = check(built)
        print("SELF-CHECK", "PASSED" if ok else "FAILED")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
