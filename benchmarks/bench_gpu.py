"""The GPU half of benchmarks/gpu.sh: speed on a CUDA device, written as a Markdown table.

    python benchmarks/bench_gpu.py [--out benchmarks/gpu-results.md] [--steps 200] [--repeats 3]

Rows: smoke-train's loop against a plain bf16 AdamW loop (and transformers' Trainer when
accelerate is installed) on the same 32-example batch: steps/s, peak device memory and an MFU
estimate (6 x parameters x tokens per step x steps/s over the GPU's dense bf16 peak);
check-logits against a plain bf16 batched loop on 2,048 tweets, whole processes; its main forward
with fixed 32-row batches against a token budget (run_forward's max_tokens); a 2-process
torchrun smoke-train when 2+ GPUs exist. Prints 'no CUDA device: skipped' and exits 0 without one.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

# Dense bf16 tensor-core peaks from the vendors' data sheets (SXM parts; no sparsity).
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L4": 121e12}

PLAIN_GPU = r'''
import json, sys, torch
from transformers import AutoTokenizer, AutoModelForSequenceClassification
model_dir, data = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(data)]
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForSequenceClassification.from_pretrained(model_dir).cuda().eval()
preds = []
with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
    for i in range(0, len(rows), 32):
        enc = tok([r["text"] for r in rows[i:i + 32]], padding=True, truncation=True, max_length=128,
                  return_tensors="pt").to("cuda")
        preds.append(model(**enc).logits.argmax(-1))
print(int(torch.cat(preds).shape[0]))
'''


def peak_flops(name: str) -> float | None:
    for key, flops in PEAK_BF16_FLOPS.items():
        if key in name:
            return flops
    return None


def smoke_train_rows(steps: int, repeats: int) -> tuple[list[list[str]], str]:
    """smoke-train's loop vs the plain loop (and Trainer) in this process, alternating, medians."""
    import torch

    import bench_smoke_train as st
    from labeldiag.measure.runtime import pick_runtime

    st.quiet()
    runtime = pick_runtime("cuda", "bf16")
    model, tok, texts, labels, name = st.build(tiny=False)
    enc = st.encoded(tok, texts, labels)
    width = int(max(len(x) for x in enc.ids))
    tokens_per_step = width * len(labels)  # padded tokens: what the device computes
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    methods = {"plain bf16 AdamW loop": st.run_plain,
               "labeldiag smoke-train loop": lambda *a: st.run_labeldiag(*a)[0]}
    try:
        import accelerate  # noqa: F401  (the Trainer needs it)

        methods["transformers Trainer"] = st.run_trainer
    except ImportError:
        pass
    for fn in methods.values():  # warm-up: kernels, allocator, lazy imports
        torch.manual_seed(0)
        fn(model, enc, labels, runtime, 3, 1e-4)
    rates: dict[str, list[float]] = {k: [] for k in methods}
    peaks: dict[str, float] = {}
    for rep in range(repeats):
        order = list(methods.items())
        for key, fn in (order if rep % 2 == 0 else order[::-1]):
            torch.manual_seed(0)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            rates[key].append(fn(model, enc, labels, runtime, steps, 1e-4))
            peaks[key] = max(peaks.get(key, 0.0), torch.cuda.max_memory_allocated() / 2**20)
    peak = peak_flops(runtime.device_name)
    plain = statistics.median(rates["plain bf16 AdamW loop"])
    rows = []
    for key in methods:
        med = statistics.median(rates[key])
        mfu = f"{100 * 6 * params * tokens_per_step * med / peak:.1f} %" if peak else "unknown (GPU not in table)"
        rows.append([f"smoke-train: {key}", f"{med:.1f} steps/s", f"{med / plain:.3f}x", f"{peaks[key]:.0f} MiB",
                     mfu, f"runs {', '.join(f'{x:.1f}' for x in rates[key])}"])
    what = (f"{name}, {params / 1e6:.1f} M trainable parameters, 32 examples x {width} tokens, {steps} steps, "
            f"bf16 autocast, fused AdamW, median of {repeats}")
    return rows, what


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - start


def check_logits_rows(model: Path, tmp: Path, repeats: int, env: dict) -> tuple[list[list[str]], str]:
    from bench_check_logits import labeldiag_cmd, tweets

    data = tmp / "tweets.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in tweets(2048)))
    (tmp / "plain_gpu.py").write_text(PLAIN_GPU)
    contenders = {"plain bf16 batched loop": [sys.executable, str(tmp / "plain_gpu.py"), str(model), str(data)],
                  "labeldiag check-logits": labeldiag_cmd(model, data, 2048, device="cuda")}
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(repeats):
        for key, cmd in contenders.items():
            times[key].append(timed(cmd, env))
    plain = statistics.median(times["plain bf16 batched loop"])
    rows = [[f"check-logits: {k}", f"{statistics.median(v):.2f} s", f"{statistics.median(v) / plain:.3f}x", "", "",
             f"runs {', '.join(f'{x:.2f}' for x in v)}"] for k, v in times.items()]
    return rows, f"2,048 tweets, MiniLM-L6 3-class, batch 32, max length 128, whole processes, median of {repeats}"


def token_budget_rows(model: Path, repeats: int) -> tuple[list[list[str]], str]:
    """check-logits' main forward with fixed 32-row batches vs a 32 x longest token budget, in this process."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bench_check_logits import tweets
    from labeldiag.records import Examples
    from labeldiag.measure.encode import encode
    from labeldiag.measure.forward import run_forward
    from labeldiag.measure.runtime import pick_runtime

    runtime = pick_runtime("cuda", "bf16")
    tok = AutoTokenizer.from_pretrained(model)
    net = AutoModelForSequenceClassification.from_pretrained(model).eval().to(runtime.device)
    cfg = net.config
    enc = encode(Examples(path="tweets", columns=["text"], texts=[r["text"] for r in tweets(2048)]), tok, 128,
                 cfg.vocab_size, cfg.max_position_embeddings, cfg.pad_token_id)
    budget = 32 * int(enc.lengths.max())
    variants = {"fixed 32 rows": None, f"token budget 32 x {budget // 32}": budget}
    for max_tokens in variants.values():  # warm-up
        run_forward(net, enc, runtime, 32, max_tokens=max_tokens)
    seconds: dict[str, list[float]] = {k: [] for k in variants}
    logits = {}
    for rep in range(repeats):
        order = list(variants.items())
        for key, max_tokens in (order if rep % 2 == 0 else order[::-1]):
            torch.cuda.synchronize()
            res = run_forward(net, enc, runtime, 32, max_tokens=max_tokens)
            seconds[key].append(res.seconds)
            logits[key] = res.logits
    base = statistics.median(seconds["fixed 32 rows"])
    first = logits["fixed 32 rows"]
    rows = []
    for key in variants:
        diff = float(np.abs(logits[key] - first).max())
        agree = float((logits[key].argmax(1) == first.argmax(1)).mean())
        rows.append([f"main forward: {key}", f"{statistics.median(seconds[key]):.3f} s",
                     f"{statistics.median(seconds[key]) / base:.3f}x", "", "",
                     f"max /dlogit/ {diff:.1e}, argmax agree {agree:.4f}"])
    return rows, f"run_forward on 2,048 tweets, bf16, in-process, median of {repeats}"


def torchrun_rows(model: Path, tmp: Path, env: dict) -> tuple[list[list[str]], str]:
    from bench_check_logits import tweets

    data = tmp / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in tweets(256)))
    report = tmp / "ddp.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "labeldiag",
           "smoke-train", str(model), str(data), "--no-progress", "--fail-on", "never", "--json", str(report)]
    seconds = timed(cmd, env)
    m = json.loads(report.read_text()).get("metrics", {})
    detail = ", ".join(f"{k} {m[k]}" for k in ("world_size", "steps_run", "fitted", "ranks_identical") if k in m)
    return ([["smoke-train under torchrun, 2 processes", f"{m.get('steps_per_second')} steps/s", "",
              f"{(m.get('peak_memory_bytes') or 0) / 2**20:.0f} MiB", "", f"{seconds:.1f} s whole; {detail}"]],
            "torchrun --nproc-per-node 2 -m labeldiag smoke-train, 256 tweets")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "gpu-results.md"))
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pytest-summary", default="not run", help="the last line of `pytest -m gpu` (gpu.sh passes it)")
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: skipped")
        return 0
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "true"}
    gpus = torch.cuda.device_count()
    name = torch.cuda.get_device_name(0)
    sections: list[tuple[str, list[list[str]]]] = []
    failures = 0

    def section(title: str, fn, *fn_args) -> None:
        nonlocal failures
        start = time.perf_counter()
        try:
            rows, what = fn(*fn_args)
        except Exception as exc:  # one broken section must not hide the others' figures
            failures += 1
            rows, what = [[title, "failed", "", "", "", f"{type(exc).__name__}: {exc}"[:300]]], title
        sections.append((f"{what} ({time.perf_counter() - start:.0f} s)", rows))
        print(f"{title}: done in {time.perf_counter() - start:.0f} s", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        from bench_check_logits import build_model

        model = tmp / "model"
        build_model(model)
        section("smoke-train vs plain loop", smoke_train_rows, args.steps, args.repeats)
        section("check-logits vs plain loop", check_logits_rows, model, tmp, args.repeats, env)
        section("token-budget batching", token_budget_rows, model, args.repeats)
        if gpus >= 2:
            section("torchrun smoke-train", torchrun_rows, model, tmp, env)
        else:
            sections.append(("torchrun", [["smoke-train under torchrun, 2 processes", "skipped", "", "", "",
                                           f"{gpus} GPU on this machine"]]))
    peak = peak_flops(name)
    lines = [f"# labeldiag on {name}", "",
             f"{gpus} x {name}; torch {torch.__version__}, CUDA {torch.version.cuda}; "
             f"bf16 dense peak used for MFU: {f'{peak / 1e12:.0f} TFLOPS' if peak else 'unknown'}; "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             f"`pytest -m gpu`: {args.pytest_summary}", "",
             "| what | measured | vs plain | peak memory | MFU | detail |", "|---|---|---|---|---|---|"]
    for what, rows in sections:
        lines.append(f"| **{what}** | | | | | |")
        lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwritten to {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
