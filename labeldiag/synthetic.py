"""A small synthetic text-classification task, tokenizer and BERT, built in seconds on a CPU.

Used by `labeldiag demo` and by the tests: nothing is downloaded. Texts are filler words with a
few topic words of their class mixed in, so a 2-layer BERT learns them to high accuracy quickly.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

TOPICS = {
    "sport": "goal match team coach league score striker referee season cup player stadium".split(),
    "politics": "vote election minister party senate policy campaign parliament law debate governor reform".split(),
    "tech": "software chip startup cloud robot code device network laptop algorithm server app".split(),
}
FILLER = ("the a of and to in on for with at from by about after before new old big small many few "
          "today yesterday report story people city week year said says could would more most very").split()


def make_examples(n: int, seed: int = 0, classes: list[str] | None = None) -> list[dict]:
    """n shuffled {"text", "label"} rows, classes balanced."""
    rng = random.Random(seed)
    classes = classes or list(TOPICS)
    rows = []
    for i in range(n):
        label = classes[i % len(classes)]
        words = [rng.choice(FILLER) for _ in range(rng.randint(6, 14))]
        for _ in range(rng.randint(2, 3)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(TOPICS[label]))
        if rng.random() < 0.3:  # a distractor from another class keeps the task from being trivial
            other = rng.choice([c for c in classes if c != label])
            words.insert(rng.randrange(len(words) + 1), rng.choice(TOPICS[other]))
        rows.append({"text": " ".join(words), "label": label})
    rng.shuffle(rows)
    return rows


def build_tokenizer(texts: list[str], model_max_length: int = 64) -> Any:
    """A WordPiece tokenizer built with the `tokenizers` library from the words of the given texts.

    The vocabulary is the sorted set of words rather than a trained one: the trainer breaks ties
    between equally frequent pieces in hash order, which differs between processes, and tests
    need the same token ids (hence the same trained model) on every run.
    """
    import re

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = sorted({w for t in texts for w in re.findall(r"\w+|[^\w\s]", t.lower())} - set(specials))
    vocab = {tok: i for i, tok in enumerate(specials + words)}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=model_max_length,
                                   model_input_names=["input_ids", "token_type_ids", "attention_mask"])


def tiny_bert(vocab_size: int, labels: list[str], hidden: int = 32, layers: int = 2, seed: int = 0, **extra) -> Any:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=128,
                        num_labels=len(labels), id2label=dict(enumerate(labels)),
                        label2id={name: i for i, name in enumerate(labels)}, **extra)
    return BertForSequenceClassification(config)


def train(model: Any, tokenizer: Any, rows: list[dict], steps: int = 150, lr: float = 3e-3, batch_size: int = 32,
          seed: int = 0) -> float:
    """Plain AdamW loop on tokenized rows; returns the final training loss."""
    import torch

    label2id = model.config.label2id
    enc = tokenizer([r["text"] for r in rows], padding=True, truncation=True, return_tensors="pt")
    labels = torch.tensor([label2id[r["label"]] for r in rows])
    return train_on_tensors(model, {**enc, "labels": labels}, steps, lr, batch_size, seed)


def train_on_tensors(model: Any, batch: dict, steps: int, lr: float = 3e-3, batch_size: int = 32,
                     seed: int = 0) -> float:
    """AdamW on random draws of `batch_size` rows of `batch` (model inputs with labels); the final loss."""
    import torch

    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        idx = torch.randint(0, batch["input_ids"].shape[0], (batch_size,), generator=g)
        out = model(**{k: v[idx] for k, v in batch.items()})
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        loss = out.loss.detach()
    model.eval()
    return float(loss)


def accuracy(model: Any, tokenizer: Any, rows: list[dict]) -> float:
    import torch

    enc = tokenizer([r["text"] for r in rows], padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        pred = model(**enc).logits.argmax(1)
    gold = torch.tensor([model.config.label2id[r["label"]] for r in rows])
    return float((pred == gold).float().mean())


class TokenizedRows:
    """Rows tokenized once, as a map-style dataset a transformers Trainer reads (tests, benchmarks)."""

    def __init__(self, tokenizer: Any, rows: list[dict], label2id: dict[str, int], max_length: int = 32):
        enc = tokenizer([r["text"] for r in rows], truncation=True, max_length=max_length)
        self.items = [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                       "labels": label2id[r["label"]]} for i, r in enumerate(rows)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def save_tokenizer(tokenizer: Any, path: str | Path) -> None:
    """save_pretrained, with a tokenizer_class that transformers 4.x can load too."""
    tokenizer.save_pretrained(path)
    cfg_path = Path(path) / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("tokenizer_class") == "TokenizersBackend":  # a 5.x name that 4.x does not know
        cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
        cfg.pop("backend", None)
        cfg_path.write_text(json.dumps(cfg, indent=2))


def write_jsonl(rows: list[dict], path: str | Path) -> Path:
    path = Path(path)
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return path


def build_trained(out_dir: str | Path, seed: int = 0, n_train: int = 600, n_test: int = 300,
                  steps: int = 200) -> dict:
    """Train the small classifier and save checkpoint + held-out data. Returns paths and accuracy."""
    import torch

    torch.manual_seed(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_rows = make_examples(n_train, seed=seed)
    test_rows = make_examples(n_test, seed=seed + 1000)
    tokenizer = build_tokenizer([r["text"] for r in train_rows])
    model = tiny_bert(len(tokenizer), list(TOPICS), seed=seed)
    loss = train(model, tokenizer, train_rows, steps=steps, seed=seed)
    acc = accuracy(model, tokenizer, test_rows)
    ckpt = out / "model"
    model.save_pretrained(ckpt)
    save_tokenizer(tokenizer, ckpt)
    data = write_jsonl(test_rows, out / "test.jsonl")
    return {"checkpoint": str(ckpt), "data": str(data), "accuracy": acc, "train_loss": loss}
