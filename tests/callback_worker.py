"""Torchrun workers for tests/test_callback_distributed.py.

As a script, one rank of two tiny Trainer runs with LabelDiagCallback(fail_on="error"), launched by torchrun
(`python -m torch.distributed.run --nproc-per-node 2 tests/callback_worker.py CHECKPOINT OUT`); the Trainer
joins a gloo process group on the CPU. CHECKPOINT is the session's trained tiny BERT. The run `collapse`
plants a head bias that predicts class 0 for every example (constant-predictions at the first evaluation, as
in test_callback_eval.py); `healthy` trains the checkpoint as it is. Rank 0 prints `=== RUN ===` to stderr
before each run. Each rank writes OUT/RUN/rank-R.json: the step it stopped at, the codes of the Reports it
kept and its evaluation logs.

As a module, `StallingForSequenceClassification` for `labeldiag smoke-train --model-class FILE:Class`: its
forward marks $LABELDIAG_TEST_STARTED.RANK and then sleeps, so a test can interrupt a run mid-training.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch
from transformers import BertForSequenceClassification


class StallingForSequenceClassification(BertForSequenceClassification):
    def forward(self, *args, **kwargs):
        started = os.environ.get("LABELDIAG_TEST_STARTED")
        if started:
            Path(f"{started}.{os.environ.get('RANK', '0')}").touch()
            time.sleep(300)
        return super().forward(*args, **kwargs)


def main(checkpoint: str, out: Path) -> None:
    """Both runs in one launch (starting 2 ranks with torch and transformers is most of the cost)."""
    for mode in ("collapse", "healthy"):
        if os.environ.get("RANK", "0") == "0":
            print(f"=== {mode} ===", file=sys.stderr, flush=True)
        run(checkpoint, out / mode, mode)


def run(checkpoint: str, out: Path, mode: str) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    sys.path.insert(0, str(Path(__file__).parent))
    from helpers import tiny_trainer

    from labeldiag import LabelDiagCallback
    from labeldiag.synthetic import make_examples

    torch.set_num_threads(1)
    rows = make_examples(300, seed=3)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint)
    if mode == "collapse":
        with torch.no_grad():  # every example predicted as class 0
            model.classifier.bias.copy_(torch.tensor([50.0, 0.0, 0.0]))

    def accuracy(eval_pred):  # the Trainer's own gathered predictions, to compare the callback's gather with
        logits, labels = eval_pred
        return {"accuracy": float((logits.argmax(-1) == labels).mean()), "examples": float(len(labels))}

    callbacks = [LabelDiagCallback(fail_on="error")]
    # training batches of 8 per rank; 236 evaluation rows in batches of 64: rank 0 gets batches 0 and 2, rank 1
    # batches 1 and 3, the last filled up with rows from the start
    trainer = tiny_trainer(out, tokenizer, model, rows[:64], rows[64:], callbacks, lr=1e-4,
                           steps=6, eval_every=2, batch_size=8, compute_metrics=accuracy)
    trainer.train()
    rank = int(os.environ.get("RANK", "0"))
    cb = callbacks[0]
    result = {"rank": rank, "world": int(os.environ.get("WORLD_SIZE", "1")), "global_step": trainer.state.global_step,
              "reports": [{"codes": [f.code for f in r.findings if f.severity != "info"], "notes": r.notes,
                           "examples": (r.data or {}).get("examples")} for r in cb.reports],
              "eval_logs": [h for h in trainer.state.log_history if "eval_loss" in h]}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank-{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
