"""The Python API: the same checks as the CLI, on paths or on objects already in memory.

    from labeldiag import check_logits
    report = check_logits(model, rows, tokenizer=tokenizer, max_examples=512)
    report.has("label-permutation"), report.findings, report.metrics, report.to_dict()

Every function returns a Report, prints nothing, never exits the process, and leaves the caller's
model and process as it found them (see labeldiag.isolation). Options take the CLI's names with
underscores; a bad value raises labeldiag.UsageError carrying the CLI's one-line message.
"""
from __future__ import annotations

import importlib
import time
from typing import Any

from labeldiag.findings import Report

RUNNERS = {"check-logits": "labeldiag.pipeline.check_logits", "grad-flow": "labeldiag.pipeline.grad_flow",
           "smoke-train": "labeldiag.pipeline.smoke_train"}


def run(command: str, model: Any, data: Any, tokenizer: Any = None, **options: Any) -> Report:
    """Run one checking command; the CLI calls this too, with paths and progress=True."""
    from labeldiag import options as opt
    from labeldiag.pipeline.common import Inputs
    from labeldiag.env import environment
    from labeldiag.isolation import isolated

    started = time.perf_counter()
    opts, settings = opt.build(command, options)
    runner = importlib.import_module(RUNNERS[command]).run
    with isolated(model):
        report = runner(Inputs(model=model, data=data, tokenizer=tokenizer), opts, settings)
    report.environment = environment()
    report.elapsed_s = time.perf_counter() - started
    return report


def check_logits(model: Any, data: Any, *, tokenizer: Any = None, **options: Any) -> Report:
    """Is logit i label i? Do predictions collapse into one class or into noise? (see `labeldiag check-logits`)"""
    return run("check-logits", model, data, tokenizer, **options)


def grad_flow(model: Any, data: Any, *, tokenizer: Any = None, **options: Any) -> Report:
    """One forward/backward: where the gradient goes (see `labeldiag grad-flow`); adds option lr."""
    return run("grad-flow", model, data, tokenizer, **options)


def smoke_train(model: Any, data: Any, *, tokenizer: Any = None, **options: Any) -> Report:
    """Can a copy of the model overfit one small batch? (see `labeldiag smoke-train`); adds steps, lr,
    target_loss, triage. The caller's model is never trained."""
    return run("smoke-train", model, data, tokenizer, **options)


def check_predictions(logits: Any, labels: Any, id2label: dict | list | None = None) -> Report:
    """The prediction-level checks on arrays from any framework: label mapping, constant, random,
    uniform and saturated predictions, and the metrics.

    `logits` is [N, C] (numpy, torch, or anything numpy can read); `labels` holds N class indices
    (-100 or negative values are ignored, as in transformers); `id2label` names the C classes. A token
    classifier's logits are [N, T, C] with [N, T] labels (-100 on padding and unlabelled sub-words). A
    multi-label head's [N, K] logits take [N, K] multi-hot labels of 0 and 1; a regression head's [N] or [N, 1]
    predictions take N real-valued targets.
    """
    from labeldiag.checks.predictions import judge_predictions

    started = time.perf_counter()
    report = judge_predictions(logits, labels, id2label)
    report.elapsed_s = time.perf_counter() - started
    return report


def fix(model: Any, data: Any, out: Any, *, tokenizer: Any = None, **options: Any) -> Report:
    """Write a corrected copy of the checkpoint folder `model` into the new folder `out` for what its own
    files can fix, re-checked (see `labeldiag fix`). Returns the copy's check-logits report; its `fix` lists
    what changed (`report.fix.fixes[0].changes[0].after`: each change's file, key, before and after, and the
    evidence behind it; the JSON's metrics "fixes") and the original's findings and accuracy. Raises
    UsageError, leaving nothing in `out`, when nothing can be fixed confidently or the re-check is not clean."""
    from labeldiag.repair import fix_checkpoint

    started = time.perf_counter()
    report = fix_checkpoint(model, data, out, check_logits, tokenizer, **options)
    report.command = "fix"
    report.elapsed_s = time.perf_counter() - started
    return report
