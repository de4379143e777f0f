"""Calibrate LabelDiagCallback on the real MiniLM fine-tunes (#23 item 9, #20 item 4).

    python benchmarks/calibrate_callback.py [--models /work/shared_models/bbc,/work/shared_models/tweets]

For each model: a 240-example Trainer evaluation with the callback (its example count and accuracy
against the Trainer's compute_metrics), the train-begin probe's median update/weight ratio and
verdict at several learning rates, and the head's largest |value|; with --faults, what the callback
reports in two-step runs with each training fault of #20 planted. Nothing is written to the models.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from labeldiag.synthetic import TokenizedRows


def accuracy(eval_pred):
    logits, labels = eval_pred
    return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}


def trainer_for(folder: Path, rows: list[dict], eval_rows: list[dict], lr: float, callbacks: list, out: str):
    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    tokenizer = AutoTokenizer.from_pretrained(folder / "model")
    model = AutoModelForSequenceClassification.from_pretrained(folder / "model")
    args = TrainingArguments(output_dir=out, learning_rate=lr, max_steps=1, per_device_train_batch_size=16,
                             per_device_eval_batch_size=64, eval_strategy="no", save_strategy="no", report_to=[],
                             use_cpu=True, seed=0, disable_tqdm=True, dataloader_num_workers=0)
    torch.manual_seed(0)
    label2id = model.config.label2id
    return Trainer(model=model, args=args, train_dataset=TokenizedRows(tokenizer, rows, label2id, max_length=128),
                   eval_dataset=TokenizedRows(tokenizer, eval_rows, label2id, max_length=128),
                   data_collator=DataCollatorWithPadding(tokenizer),
                   callbacks=callbacks, compute_metrics=accuracy)


def calibrate(folder: Path, lrs: list[float]) -> dict:
    from labeldiag import LabelDiagCallback
    from labeldiag.measure.head_values import head_values

    rows = [json.loads(line) for line in (folder / "test.jsonl").read_text().splitlines()]
    out: dict = {"model": str(folder)}
    with tempfile.TemporaryDirectory() as tmp:
        cb = LabelDiagCallback(verbose=False)
        trainer = trainer_for(folder, rows[:16], rows[:240], 2e-5, [cb], tmp)
        metrics = trainer.evaluate()
        out["evaluation"] = {"examples": cb.reports[-1].data["examples"],
                             "labeldiag_accuracy": metrics["eval_labeldiag_accuracy"],
                             "trainer_accuracy": metrics["eval_accuracy"],
                             "findings": [f.code for f in cb.reports[-1].findings]}
        out["head_max_abs"] = head_values(trainer.model).max_abs
        out["train_begin"] = {}
        for lr in lrs:
            cb = LabelDiagCallback(verbose=False)
            trainer = trainer_for(folder, rows[:16], rows[:16], lr, [cb], tmp)
            cb.on_train_begin(trainer.args, trainer.state, trainer.control, model=trainer.model,
                              optimizer=trainer.create_optimizer(), train_dataloader=trainer.get_train_dataloader())
            begin = cb.reports[0]
            f = begin.get("learning-rate-too-high")
            out["train_begin"][f"{lr:g}"] = {
                "findings": [x.code for x in begin.findings if x.severity != "info"],
                "median_update_weight_ratio": begin.metrics.get("median_update_weight_ratio"),
                "warned": f is not None}
    return out


def planted_faults(folder: Path) -> dict:
    """The training faults of #20 planted in the real model, each in a two-step Trainer run."""
    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    from labeldiag import LabelDiagCallback

    rows = [json.loads(line) for line in (folder / "test.jsonl").read_text().splitlines()][:32]
    tokenizer = AutoTokenizer.from_pretrained(folder / "model")

    def run(plant, **extra) -> list[str]:
        model = AutoModelForSequenceClassification.from_pretrained(folder / "model")
        plant(model)
        cb = LabelDiagCallback(verbose=False)
        with tempfile.TemporaryDirectory() as tmp:
            args = TrainingArguments(output_dir=tmp, learning_rate=extra.pop("lr", 2e-5), max_steps=2,
                                     per_device_train_batch_size=4, logging_steps=2, eval_strategy="no",
                                     save_strategy="no", report_to=[], use_cpu=True, seed=0, disable_tqdm=True,
                                     dataloader_num_workers=0, **extra)
            torch.manual_seed(0)
            train = TokenizedRows(tokenizer, rows, model.config.label2id, max_length=128)
            Trainer(model=model, args=args, train_dataset=train, data_collator=DataCollatorWithPadding(tokenizer),
                    callbacks=[cb]).train()
        return [f"{f.code} ({f.severity}): {f.message}" for r in cb.reports for f in r.findings if f.severity != "info"]

    def nothing(model):
        pass

    def reentrant_frozen_embeddings(model):
        for p in model.bert.embeddings.parameters():
            p.requires_grad_(False)
        model.gradient_checkpointing_enable({"use_reentrant": True})
        model.disable_input_require_grads()

    def garbage_head(model):
        with torch.no_grad():
            model.classifier.weight[0, ::7] = 3.4e37

    return {"healthy, lr 2e-5": run(nothing),
            "lr 5e-3": run(nothing, lr=5e-3),
            "gradient_accumulation_steps=4": run(nothing, gradient_accumulation_steps=4),
            "reentrant checkpointing, frozen embeddings": run(reentrant_frozen_embeddings),
            "head left at 1e37": run(garbage_head)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="/work/shared_models/bbc,/work/shared_models/tweets")
    parser.add_argument("--lrs", default="2e-5,5e-5,1e-4,5e-4,1e-3,2e-3,5e-3")
    parser.add_argument("--faults", action="store_true", help="also plant the training faults of #20")
    a = parser.parse_args()
    for folder in a.models.split(","):
        print(json.dumps(calibrate(Path(folder), [float(x) for x in a.lrs.split(",")]), indent=1))
        if a.faults:
            print(json.dumps(planted_faults(Path(folder)), indent=1))


if __name__ == "__main__":
    main()
