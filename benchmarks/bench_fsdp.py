"""smoke-train under FSDP2 on CPU (gloo): peak memory per rank at 1, 2 and 4 ranks, and steps/s against a plain
FSDP2 loop with the same wrapping and batch.

The model is a random Llama classifier whose parameters and AdamW state dominate memory (hidden 768, 8 blocks,
~57M parameters: ~0.9 GB of fp32 weights, gradients and two moments); the batch is 8 examples of 16 words,
so activations are small. Each measurement is its own torchrun launch (one process per rank):

  * labeldiag: `labeldiag smoke-train MODEL DATA --shard fsdp --steps S` (1 rank: no sharding, as without a
    launcher), per-rank peak RSS and steps/s from its JSON report;
  * plain: this file with --plain: the same deep copy, fully_shard per decoder block then the root, AdamW
    (foreach, no weight decay), the same 8 rows split r, r+N, ..., forward / cross-entropy / backward / step.

Per rank, besides the process's peak RSS (which holds torch itself and the loaded model as well), the plain
loop reports the bytes of its training state: this rank's slices of the weights, gradients and AdamW
moments, the part FSDP2 divides by N. Throughput at the most ranks: launches alternate labeldiag / plain, the
ratio is the median of neighbouring pairs. With --device cuda (benchmarks/gpu.sh) each rank takes one GPU
(nccl, bf16 autocast) and memory is torch.cuda.max_memory_allocated.

    python benchmarks/bench_fsdp.py [--steps 5] [--pairs 2] [--ranks 1,2,4] [--device cuda --hidden 4096 --layers N]
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

ROOT = Path(__file__).resolve().parent.parent
WORDS = 16
EXAMPLES = 8


def build(folder: Path, hidden: int, layers: int) -> tuple[str, str]:
    """A random Llama classifier checkpoint and a JSONL of equal-length rows (so every batch has the same tokens)."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from labeldiag.synthetic import TOPICS, build_tokenizer, make_examples

    rows = make_examples(64, seed=0)
    tok = build_tokenizer([r["text"] for r in make_examples(300, seed=1)])
    for r in rows:
        words = (r["text"].split() * WORDS)[:WORDS]
        r["text"] = " ".join(words)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 8 // 3,
                         num_hidden_layers=layers, num_attention_heads=hidden // 64, num_key_value_heads=hidden // 64,
                         max_position_embeddings=64,
                         pad_token_id=0, bos_token_id=2, eos_token_id=3, num_labels=len(TOPICS),
                         id2label=dict(enumerate(TOPICS)), label2id={k: i for i, k in enumerate(TOPICS)})
    model = LlamaForSequenceClassification(config)
    model.save_pretrained(folder / "model")
    tok.save_pretrained(folder / "model")
    with open(folder / "data.jsonl", "w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return str(folder / "model"), str(folder / "data.jsonl")


def launch(ranks: int, args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"launch failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return proc


def run_labeldiag(ranks: int, model: str, data: str, steps: int, out: Path, device: str) -> dict:
    shard = ["--shard", "fsdp"] if ranks > 1 else []
    launch(ranks, ["-m", "labeldiag", "smoke-train", model, data, "--device", device, "--no-progress",
                   "--max-examples", str(EXAMPLES), "--steps", str(steps), "--lr", "1e-6",
                   "--target-loss", "1e-9", *shard, "--json", str(out)])
    m = json.loads(out.read_text())["metrics"]
    ranks_rows = m.get("ranks") or [{"rank": 0, "peak_memory_bytes": m["peak_memory_bytes"]}]
    assert m["steps_run"] == steps, m["steps_run"]
    return {"steps_per_second": m["steps_per_second"],
            "peak_rss": [r["peak_memory_bytes"] for r in ranks_rows]}


def run_plain(ranks: int, model: str, data: str, steps: int, out: Path, device: str) -> dict:
    launch(ranks, [__file__, "--plain", model, data, "--steps", str(steps), "--out", str(out), "--device", device])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    rows.sort(key=lambda r: r["rank"])
    return {"steps_per_second": rows[0]["steps_per_second"], "peak_rss": [r["peak_rss"] for r in rows],
            "state_bytes": [r["state_bytes"] for r in rows]}


def plain(model_path: str, data: str, steps: int, out: str, device_kind: str) -> None:
    """The plain FSDP2 loop, one process of a torchrun launch."""
    import copy
    import resource

    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = torch.device("cpu")
    if device_kind == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    tok = AutoTokenizer.from_pretrained(model_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(model_path)
    rows = [json.loads(line) for line in open(data)][:EXAMPLES]
    mine = rows[rank::world]
    batch = tok([r["text"] for r in mine], padding=True, return_tensors="pt")
    batch.pop("token_type_ids", None)
    batch = {k: v.to(device) for k, v in batch.items()}
    labels = torch.tensor([loaded.config.label2id[r["label"]] for r in mine], device=device)
    net = copy.deepcopy(loaded)
    if world > 1:
        from torch.distributed.fsdp import fully_shard

        for block in net.model.layers:
            fully_shard(block)
        fully_shard(net)  # the default mesh: CUDA when there is one, which is where the shards go
    else:
        net.to(device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-6, weight_decay=0.0, foreach=True)
    start = time.perf_counter()
    for _ in range(steps):
        with autocast:
            loss = F.cross_entropy(net(**batch).logits.float(), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=False)  # keep the gradients allocated, so state_bytes counts them
        loss.item()
    seconds = time.perf_counter() - start

    def local(t):
        return t.to_local() if hasattr(t, "to_local") else t

    state = sum(local(p).nbytes + (local(p.grad).nbytes if p.grad is not None else 0) for p in net.parameters())
    state += sum(local(v).nbytes for s in opt.state.values() for v in s.values() if torch.is_tensor(v) and v.dim())
    row = {"rank": rank, "steps_per_second": steps / seconds, "state_bytes": int(state),
           "peak_rss": (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
                        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)}
    with open(out, "a") as fh:
        fh.write(json.dumps(row) + "\n")
    if world > 1:
        dist.destroy_process_group()


def mib(values: list[int]) -> str:
    return " / ".join(f"{v / 2**20:.0f}" for v in values)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--plain", nargs=2, metavar=("MODEL", "DATA"))
    ap.add_argument("--out")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--pairs", type=int, default=2, help="labeldiag / plain pairs at the most ranks, in turn")
    ap.add_argument("--ranks", default="1,2,4")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="cuda: nccl, one GPU per rank")
    ap.add_argument("--hidden", type=int, default=768, help="Llama hidden size (a multiple of 64)")
    ap.add_argument("--layers", type=int, default=8)
    args = ap.parse_args()
    if args.plain:
        plain(*args.plain, args.steps, args.out, args.device)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model, data = build(folder, args.hidden, args.layers)
        where = "CPU, gloo, fp32, OMP_NUM_THREADS=1" if args.device == "cpu" else "CUDA, nccl, bf16 autocast"
        memory = "peak RSS" if args.device == "cpu" else "peak CUDA memory allocated"
        print(f"Llama classifier, hidden {args.hidden}, {args.layers} blocks; {EXAMPLES} examples x {WORDS} words; "
              f"{args.steps} steps; {where}")
        print(f"| ranks | training state per rank (MiB) | {memory} per rank, plain (MiB) | "
              f"{memory} per rank, labeldiag (MiB) | steps/s plain | steps/s labeldiag |")
        print("|---|---|---|---|---|---|")
        ratios = []
        counts = [int(r) for r in args.ranks.split(",")]
        most = max(counts)
        for ranks in counts:
            p = run_plain(ranks, model, data, args.steps, folder / f"plain-{ranks}.jsonl", args.device)
            ld = run_labeldiag(ranks, model, data, args.steps, folder / f"ld-{ranks}.json", args.device)
            if ranks == most:
                ratios.append(ld["steps_per_second"] / p["steps_per_second"])
            print(f"| {ranks} | {mib(p['state_bytes'])} | {mib(p['peak_rss'])} | {mib(ld['peak_rss'])} | "
                  f"{p['steps_per_second']:.3f} | {ld['steps_per_second']:.3f} |", flush=True)
        for i in range(max(args.pairs - 1, 0)):  # more neighbouring pairs at the most ranks, order alternated
            first, second = (run_labeldiag, run_plain) if i % 2 == 0 else (run_plain, run_labeldiag)
            a = first(most, model, data, args.steps, folder / f"a-{i}", args.device)
            b = second(most, model, data, args.steps, folder / f"b-{i}", args.device)
            ld, p = (a, b) if first is run_labeldiag else (b, a)
            ratios.append(ld["steps_per_second"] / p["steps_per_second"])
        if ratios:
            print(f"\nFSDP2 at {most} ranks: labeldiag / plain steps/s, median of {len(ratios)} neighbouring pairs: "
                  f"{statistics.median(ratios):.3f} (each: {', '.join(f'{r:.3f}' for r in ratios)})")


if __name__ == "__main__":
    main()
