"""Tiny multi-label and regression BERTs trained in seconds on the synthetic topics (tests of issue 19)."""
from __future__ import annotations

import random
from pathlib import Path

from labeldiag.synthetic import FILLER, TOPICS, build_tokenizer, save_tokenizer, tiny_bert, write_jsonl

LABELS = list(TOPICS)


def multilabel_rows(n: int, seed: int) -> list[dict]:
    """Texts with one or two topics' words; labels: the list of topic names present."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topics = sorted(rng.sample(LABELS, 1 if rng.random() < 0.5 else 2))
        words = [rng.choice(FILLER) for _ in range(rng.randint(5, 10))]
        for t in topics:
            for _ in range(2):
                words.insert(rng.randrange(len(words) + 1), rng.choice(TOPICS[t]))
        rows.append({"text": " ".join(words), "labels": topics})
    return rows


def regression_rows(n: int, seed: int) -> list[dict]:
    """Texts with 0-3 sport words among filler; target: the count, standardised-ish, plus a little noise."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        count = i % 4
        words = [rng.choice(FILLER) for _ in range(rng.randint(6, 10))]
        for _ in range(count):
            words.insert(rng.randrange(len(words) + 1), rng.choice(TOPICS["sport"]))
        rows.append({"text": " ".join(words), "label": round((count - 1.5) / 1.1 + rng.gauss(0, 0.1), 3)})
    rng.shuffle(rows)
    return rows


def preference_rows(n: int, seed: int) -> list[dict]:
    """Pairs of texts on filler: the chosen one holds sport words, the rejected one politics words."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        pair = {}
        for side, topic in (("chosen", "sport"), ("rejected", "politics")):
            words = [rng.choice(FILLER) for _ in range(rng.randint(5, 10))]
            for _ in range(2):
                words.insert(rng.randrange(len(words) + 1), rng.choice(TOPICS[topic]))
            pair[side] = " ".join(words)
        rows.append(pair)
    return rows


def _train_pairs(model, tokenizer, rows, steps: int, lr: float = 3e-3) -> None:
    """TRL's RewardTrainer loss: -log sigmoid(r_chosen - r_rejected)."""
    import torch

    g = torch.Generator().manual_seed(0)
    chosen = tokenizer([r["chosen"] for r in rows], padding="max_length", max_length=24, truncation=True,
                       return_tensors="pt")
    rejected = tokenizer([r["rejected"] for r in rows], padding="max_length", max_length=24, truncation=True,
                         return_tensors="pt")
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(rows), (32,), generator=g)
        rc = model(**{k: v[idx] for k, v in chosen.items()}).logits[:, 0]
        rr = model(**{k: v[idx] for k, v in rejected.items()}).logits[:, 0]
        loss = torch.nn.functional.softplus(rr - rc).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def _train(model, tokenizer, texts, targets, steps: int, lr: float = 3e-3, seed: int = 0) -> None:
    import torch

    g = torch.Generator().manual_seed(seed)
    enc = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    y = torch.tensor(targets, dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(texts), (32,), generator=g)
        out = model(**{k: v[idx] for k, v in enc.items()}, labels=y[idx])
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    model.eval()


def build(out: Path, kind: str, steps: int = 150) -> dict:
    """Train and save a tiny model of `kind` ("multi-label", "regression" or "pairwise") with its held-out data."""
    import torch

    torch.manual_seed(0)
    out = Path(out)
    if kind == "multi-label":
        train_rows, test_rows = multilabel_rows(600, 0), multilabel_rows(300, 1)
        tokenizer = build_tokenizer([r["text"] for r in train_rows + test_rows])
        model = tiny_bert(len(tokenizer), LABELS, hidden=64, problem_type="multi_label_classification")
        targets = [[float(name in r["labels"]) for name in LABELS] for r in train_rows]
    elif kind == "pairwise":
        train_rows, test_rows = preference_rows(400, 0), preference_rows(150, 1)
        tokenizer = build_tokenizer([r[side] for r in train_rows + test_rows for side in ("chosen", "rejected")])
        model = tiny_bert(len(tokenizer), ["score"])
        _train_pairs(model, tokenizer, train_rows, steps)
    else:
        train_rows, test_rows = regression_rows(600, 0), regression_rows(300, 1)
        tokenizer = build_tokenizer([r["text"] for r in train_rows + test_rows])
        model = tiny_bert(len(tokenizer), ["score"], problem_type="regression")
        targets = [r["label"] for r in train_rows]
    if kind != "pairwise":
        _train(model, tokenizer, [r["text"] for r in train_rows], targets, steps)
    model.save_pretrained(out / "model")
    save_tokenizer(tokenizer, out / "model")
    return {"checkpoint": out / "model", "data": write_jsonl(test_rows, out / "test.jsonl"), "rows": test_rows}
