"""check-logits' main forward pass under different batching and runtime settings, in one process.

    python benchmarks/bench_forward.py [--examples 2048] [--repeats 3] [--model DIR]

Same data and model as bench_check_logits.py (tweets, MiniLM-L6 with a 3-class head, max length
128, CPU fp32). Each variant runs labeldiag.measure.forward.run_forward on the same encoded
examples; variants alternate (order reversed every other repeat) so drifting load on a shared
machine hits them alike, and medians are printed with the largest logit difference against the
fixed-row batching that check-logits used before token budgets.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--model", help="an existing 3-class MiniLM checkpoint (default: build one)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared machine)")
    ap.add_argument("--only", help="comma-separated parts of variant names to run (besides the baseline)")
    args = ap.parse_args()

    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import labeldiag.measure.forward as fwd
    from bench_check_logits import build_model, tweets
    from labeldiag.records import Examples
    from labeldiag.measure.encode import encode
    from labeldiag.measure.runtime import pick_runtime

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.model) if args.model else Path(tmp) / "model"
        if not args.model:
            build_model(folder)
        tok = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    rows = tweets(args.examples)
    enc = encode(Examples(path="tweets", columns=["text"], texts=[r["text"] for r in rows]), tok, 128,
                 model.config.vocab_size, model.config.max_position_embeddings, model.config.pad_token_id)
    runtime = pick_runtime("cpu", "fp32")
    torch.set_num_threads(args.threads)
    lengths = enc.lengths
    longest, bs = int(lengths.max()), args.batch_size
    threads = torch.get_num_threads()
    plain_batches = fwd.make_batches

    @contextlib.contextmanager
    def batching(rows, **kw):
        """Batches of `rows` (plus make_batches options), whatever run_forward asks for."""
        fwd.make_batches = lambda enc, batch_size, sort=True, **_: plain_batches(enc, rows, sort, **kw)
        try:
            yield
        finally:
            fwd.make_batches = plain_batches

    @contextlib.contextmanager
    def thread_count(n):
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(threads)

    @contextlib.contextmanager
    def no_grad_instead():
        inference_mode = torch.inference_mode
        torch.inference_mode = torch.no_grad
        try:
            yield
        finally:
            torch.inference_mode = inference_mode

    @contextlib.contextmanager
    def heap_trimmed_per_batch():
        """glibc's heap trimmed before every batch, as run_forward did until it measured the cost."""
        from labeldiag.measure.runtime import release_freed_memory

        call = fwd.call_model

        def trimmed(*args, **kwargs):
            release_freed_memory()
            return call(*args, **kwargs)
        fwd.call_model = trimmed
        try:
            yield
        finally:
            fwd.call_model = call

    budget = bs * longest
    variants = {
        f"fixed {bs} rows": lambda: batching(bs),
        f"token budget {bs}x{longest}": lambda: batching(bs, max_tokens=budget),
        f"token budget, <= {4 * bs} rows": lambda: batching(bs, max_tokens=budget, max_rows=4 * bs),
        f"fixed {2 * bs} rows": lambda: batching(2 * bs),
        f"fixed {bs} rows, torch.no_grad": lambda: _both(batching(bs), no_grad_instead()),
        f"fixed {bs} rows, {2 * threads} threads": lambda: _both(batching(bs), thread_count(2 * threads)),
        f"fixed {bs} rows, heap trimmed per batch": lambda: _both(batching(bs), heap_trimmed_per_batch()),
        "run_forward's default": contextlib.nullcontext,
    }
    if args.only:
        variants = {k: v for k, v in variants.items() if k == next(iter(variants)) or any(
            part in k for part in args.only.split(","))}
    print(f"{len(rows)} tweets ({int(lengths.sum())} tokens, longest {longest}, median {int(np.median(lengths))}); "
          f"MiniLM-L6, max length 128, CPU fp32, torch {torch.__version__}, {threads} threads; "
          f"median of {args.repeats}, alternating", flush=True)
    for ctx in variants.values():  # warm-up: allocator, lazy kernels, one per variant
        with ctx():
            fwd.run_forward(model, fwd_subset(enc, 64), runtime, bs)
    seconds: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}  # less swayed by other processes than wall time
    logits: dict[str, np.ndarray] = {}
    for rep in range(args.repeats):
        order = list(variants.items())
        for name, ctx in (order if rep % 2 == 0 else order[::-1]):
            with ctx():
                t0, c0 = time.perf_counter(), time.process_time()
                res = fwd.run_forward(model, enc, runtime, bs)
                seconds[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
            logits[name] = res.logits
    base_name = next(iter(variants))
    base = logits[base_name]
    base_med, base_cpu = statistics.median(seconds[base_name]), statistics.median(cpu[base_name])
    print(f"  {'variant':34} {'wall':>7} {'ratio':>6} {'CPU s':>7} {'ratio':>6}  max |dlogit|  argmax agree  wall runs")
    for name in variants:
        med, med_cpu = statistics.median(seconds[name]), statistics.median(cpu[name])
        diff = float(np.abs(logits[name] - base).max())
        agree = float((logits[name].argmax(1) == base.argmax(1)).mean())
        print(f"  {name:34} {med:6.2f}s {med / base_med:6.3f} {med_cpu:6.2f}s {med_cpu / base_cpu:6.3f}  "
              f"{diff:12.1e}  {agree:12.4f}  {', '.join(f'{x:.2f}' for x in seconds[name])}")


@contextlib.contextmanager
def _both(first, second):
    with first, second:
        yield


def fwd_subset(enc, n):
    import numpy as np

    from labeldiag.measure.encode import subset

    return subset(enc, np.arange(min(n, len(enc.ids))))


if __name__ == "__main__":
    main()
