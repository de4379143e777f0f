"""check-logits on a model dispatched over devices (--device-map auto) against the plain load: the same verdicts
and metrics, the time each takes, and the accelerator memory each holds at its peak.

The model is bench_fsdp.py's random Llama classifier; --max-memory caps the first device at a third of the
weights, so accelerate must place the rest on the next one (CUDA: GPU 0 then the CPU; CPU: the CPU then disk).

    python benchmarks/bench_device_map.py [--device cuda] [--hidden 4096 --layers 8] [--out results.md]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fsdp import build  # noqa: E402  (the same checkpoint and data)

COMPARED = ("accuracy", "macro_f1", "logit_stats", "confusion_matrix")


def measure(model: str, data: str, device: str, **options) -> tuple[object, float, int | None]:
    import torch

    from labeldiag import api

    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    report = api.check_logits(model, data, device=device, max_examples=64, **options)
    seconds = time.perf_counter() - started
    peak = int(torch.cuda.max_memory_allocated()) if device == "cuda" else None
    return report, seconds, peak


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--hidden", type=int, default=256, help="Llama hidden size (a multiple of 64)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--out")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-device-map-") as tmp:
        model, data = build(Path(tmp), args.hidden, args.layers)
        weights = sum(p.stat().st_size for p in Path(model).glob("*.safetensors"))
        first = 0 if args.device == "cuda" else "cpu"
        cap = {first: weights // 3, **({"cpu": 4 * weights} if args.device == "cuda" else {})}
        plain, plain_s, plain_peak = measure(model, data, args.device)
        split, split_s, split_peak = measure(model, data, args.device, device_map="auto", max_memory=cap)
    same_codes = [f.code for f in plain.sorted_findings()] == [f.code for f in split.sorted_findings()]
    same_metrics = all(plain.metrics.get(k) == split.metrics.get(k) for k in COMPARED)
    placed = sorted(set((split.metrics.get("device_map") or {}).get("placement", {}).values()))
    mib = (lambda b: "-" if b is None else f"{b / 2**20:,.0f} MiB")
    lines = [
        f"\n### check-logits --device-map auto ({args.device}, Llama hidden {args.hidden} x {args.layers} layers, "
        f"{weights / 2**20:,.0f} MiB of weights; first device capped at a third)\n",
        "| load | placement | seconds | peak accelerator memory | same findings | same metrics |",
        "|---|---|---|---|---|---|",
        f"| plain | {args.device} | {plain_s:.2f} | {mib(plain_peak)} | | |",
        f"| --device-map auto | {', '.join(placed) or 'one device'} | {split_s:.2f} | {mib(split_peak)} | "
        f"{'yes' if same_codes else 'NO'} | {'yes' if same_metrics else 'NO'} |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(text)
    return 0 if same_codes and same_metrics and len(placed) > 1 else 1


if __name__ == "__main__":
    sys.exit(main())
