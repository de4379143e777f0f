"""A tiny NER tagger (BertForTokenClassification) trained in seconds on a synthetic but learnable tagging task,
for the tests of issue 22. Tags depend on the word (first names, surnames, cities) and on the word before
(a surname after a first name is I-PER); surnames are two sub-words, so alignment matters."""
from __future__ import annotations

import random
from pathlib import Path

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
FIRST = "anna boris carla dmitri elena farid greta hugo".split()
STEMS, SUFFIXES = "smith john ander peter nils".split(), ["son", "sen"]
SURNAMES = [s + x for s in STEMS for x in SUFFIXES]  # two sub-words each: smith ##son
CITIES = "paris lima oslo quito rome delhi".split()
FILLER = ("the a of and to in on for with at from by about after before new old big small many few today "
          "report story people week year said says could would more very visited met called left").split()


def sentences(n: int, seed: int, filler: tuple[int, int] = (4, 9)) -> list[dict]:
    """{"tokens": words, "ner_tags": tag names} rows with one or two entities among filler words."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = [rng.choice(FILLER) for _ in range(rng.randint(*filler))]
        tags = ["O"] * len(words)
        for _ in range(rng.randint(1, 2)):
            if rng.random() < 0.5:
                span = [rng.choice(FIRST)] + ([rng.choice(SURNAMES)] if rng.random() < 0.6 else [])
                kinds = ["B-PER"] + ["I-PER"] * (len(span) - 1)
            else:
                span = [rng.choice(CITIES)] + (["city"] if rng.random() < 0.3 else [])
                kinds = ["B-LOC"] + ["I-LOC"] * (len(span) - 1)
            at = rng.randrange(len(words) + 1)
            words[at:at] = span
            tags[at:at] = kinds
        rows.append({"tokens": words, "ner_tags": tags})
    return rows


def tokenizer():
    """WordPiece over the task's words, surnames split into stem + ##suffix."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = sorted(set(FIRST + STEMS + CITIES + FILLER + ["city"])) + [f"##{x}" for x in SUFFIXES]
    vocab = {tok: i for i, tok in enumerate(specials + words)}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=64,
                                   model_input_names=["input_ids", "token_type_ids", "attention_mask"])


def encode(tok, rows: list[dict]) -> dict:
    """The HF guide's tokenize_and_align_labels: first sub-word tagged, the rest and specials -100."""
    import torch

    enc = tok([r["tokens"] for r in rows], is_split_into_words=True, padding=True, return_tensors="pt")
    labels = torch.full(enc["input_ids"].shape, -100)
    for i, r in enumerate(rows):
        previous = None
        for j, w in enumerate(enc.word_ids(i)):
            if w is not None and w != previous:
                labels[i, j] = TAGS.index(r["ner_tags"][w])
            previous = w
    return {**enc, "labels": labels}


def tiny_tagger(vocab: int, kind: str = "bert", seed: int = 0):
    import torch
    from transformers import (BertConfig, BertForTokenClassification, LlamaConfig,
                              LlamaForTokenClassification)

    torch.manual_seed(seed)
    labels = dict(id2label=dict(enumerate(TAGS)), label2id={t: i for i, t in enumerate(TAGS)}, num_labels=len(TAGS))
    if kind == "llama":
        return LlamaForTokenClassification(LlamaConfig(
            vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=2, max_position_embeddings=128, pad_token_id=0, **labels))
    return BertForTokenClassification(BertConfig(
        vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=128, **labels))


def train(model, batch: dict, steps: int, lr: float = 3e-3, seed: int = 0) -> float:
    from labeldiag.synthetic import train_on_tensors

    return train_on_tensors(model, batch, steps, lr, seed=seed)


def build(out: Path, steps: int = 250) -> dict:
    """Train and save the tiny tagger with its held-out rows (jsonl of word lists and tag names)."""
    import torch

    from labeldiag.synthetic import save_tokenizer, write_jsonl

    torch.manual_seed(0)
    out = Path(out)
    tok = tokenizer()
    model = tiny_tagger(len(tok))
    loss = train(model, encode(tok, sentences(400, 0)), steps)
    model.save_pretrained(out / "model")
    save_tokenizer(tok, out / "model")
    rows = sentences(200, 1)
    return {"checkpoint": out / "model", "data": write_jsonl(rows, out / "test.jsonl"), "rows": rows,
            "tokenizer": tok, "train_loss": loss}
