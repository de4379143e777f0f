"""What the three checking commands share: options, loading the model and data, finishing."""
from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

from labeldiag.errors import UsageError
from labeldiag.findings import Report


@dataclass
class CommonOptions:
    model: str
    data: str
    model_class: str | None = None
    tokenizer: str | None = None
    text_field: str | None = None
    text_pair_field: str | None = None
    label_field: str | None = None
    label_tokens: str | None = None
    label_token_positions: str | None = None
    max_examples: int = 2048
    batch_size: int = 32
    max_length: int | None = None
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    fail_on: str = "error"
    json_path: str | None = None
    plot_path: str | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False
    debug: bool = False
    progress: bool = True


@dataclass
class Session:
    """Everything loaded once, shared by a command's measurements."""

    opts: CommonOptions
    report: Report
    runtime: Any
    loaded: Any
    examples: Any
    encoded: Any
    gold: Any  # GoldLabels or None
    names: list[str]
    num_classes: int
    label_positions: list[int] | None = None
    label_token_ids: list[int] | None = None
    started: float = field(default_factory=time.perf_counter)


def validate(opts: CommonOptions) -> None:
    from labeldiag.render.output import check_writable

    if opts.max_examples is not None and opts.max_examples <= 0:
        raise UsageError(f"--max-examples must be a positive number, got {opts.max_examples}")
    if opts.batch_size <= 0:
        raise UsageError(f"--batch-size must be a positive number, got {opts.batch_size}")
    if opts.max_length is not None and opts.max_length < 2:
        raise UsageError(f"--max-length must be at least 2, got {opts.max_length}")
    if opts.fail_on not in ("error", "warning", "never"):
        raise UsageError(f"--fail-on must be error, warning or never, got '{opts.fail_on}'")
    if opts.label_tokens and opts.label_token_positions:
        raise UsageError("give either --label-tokens or --label-token-positions, not both")
    if opts.json_path and opts.plot_path == opts.json_path and opts.json_path != "-":
        raise UsageError("--json and --plot name the same file; give them different paths")
    if opts.plot_path == "-":
        raise UsageError("--plot needs a file name (a PNG cannot go to stdout)")
    check_writable(opts.json_path, "--json")
    check_writable(opts.plot_path, "--plot")


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def parse_positions(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--label-token-positions '{text}' must be comma-separated integers, e.g. 1,2,3") from None
    if not values or any(v < 0 for v in values):
        raise UsageError(f"--label-token-positions '{text}' must be non-negative integers, e.g. 1,2,3")
    return values


def prepare(opts: CommonOptions, command: str, fresh_head_expected: bool) -> Session:
    """Validate, load model and data, map labels, tokenize; return a Session and the report so far."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never the network; cached hub ids still resolve
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    validate(opts)
    import numpy as np

    from labeldiag.checks.labels import check_problem_type, map_labels
    from labeldiag.checks.loading import check_load_audit
    from labeldiag.load.data import read_examples
    from labeldiag.load.model import load_model
    from labeldiag.measure.encode import default_max_length, encode
    from labeldiag.measure.runtime import pick_runtime

    _quiet_libraries()
    runtime = pick_runtime(opts.device, opts.precision)
    seed_everything(opts.seed)
    examples = read_examples(opts.data, opts.max_examples, opts.text_field, opts.text_pair_field,
                             opts.label_field, opts.allow_pickle)
    loaded = load_model(opts.model, opts.model_class, opts.tokenizer, opts.trust_remote_code, opts.allow_pickle,
                        need_tokenizer=examples.tokenized is None or opts.tokenizer is not None
                        or bool(opts.label_tokens))
    info = loaded.info
    report = Report(command=command, device=f"{runtime.device} ({runtime.device_name})")
    report.metrics["precision"] = runtime.precision
    report.add(check_load_audit(loaded.audit, fresh_head_expected))
    num_classes = max(info.num_labels, 1)
    names = [info.id2label.get(i, f"LABEL_{i}") for i in range(num_classes)]
    report.model = {"path": opts.model, "class": info.class_name, "num_labels": info.num_labels,
                    "id2label": {str(k): v for k, v in sorted(info.id2label.items())},
                    "problem_type": info.problem_type, "weights": info.weights_format}
    gold = None
    if examples.labelled:
        gold, label_findings = map_labels(examples.labels, info, num_classes)
        report.add(label_findings)
        report.add(check_problem_type(info, gold))
    else:
        report.add(check_problem_type(info, None))
    max_length = opts.max_length or default_max_length(loaded.tokenizer, info.max_positions)
    if info.max_positions and max_length > info.max_positions:
        raise UsageError(f"--max-length {max_length} is more than the model's {info.max_positions} positions; "
                         f"use at most {info.max_positions}")
    pad_id = getattr(getattr(loaded.model, "config", None), "pad_token_id", None)
    encoded = encode(examples, loaded.tokenizer, max_length, info.embedding_rows, info.max_positions, pad_id)
    counts = None
    if gold is not None:
        usable = gold.indices[gold.usable]
        bc = np.bincount(usable, minlength=num_classes) if usable.size else np.zeros(num_classes, int)
        counts = {names[i] if i < len(names) else str(i): int(v) for i, v in enumerate(bc)}
    report.data = {"path": opts.data, "examples": len(examples), "labelled": gold is not None,
                   "label_counts": counts, "text_field": examples.text_field,
                   "text_pair_field": examples.pair_field, "label_field": examples.label_field,
                   "max_length": max_length}
    positions, token_ids = _label_tokens(opts, loaded.tokenizer, num_classes)
    return Session(opts=opts, report=report, runtime=runtime, loaded=loaded, examples=examples, encoded=encoded,
                   gold=gold, names=names, num_classes=num_classes, label_positions=positions,
                   label_token_ids=token_ids)


def _label_tokens(opts: CommonOptions, tokenizer: Any, num_classes: int) -> tuple[list[int] | None, list[int] | None]:
    positions = parse_positions(opts.label_token_positions)
    if positions is not None and len(positions) != num_classes:
        raise UsageError(f"--label-token-positions gives {len(positions)} positions but the model has "
                         f"{num_classes} classes; give one per class in class-index order")
    if not opts.label_tokens:
        return positions, None
    words = [w.strip() for w in opts.label_tokens.split(",") if w.strip()]
    if len(words) != num_classes:
        raise UsageError(f"--label-tokens gives {len(words)} words but the model has {num_classes} classes; "
                         "give one per class in class-index order")
    if tokenizer is None:
        raise UsageError("--label-tokens needs a tokenizer; pass --tokenizer")
    ids = []
    for w in words:
        pieces = tokenizer(w, add_special_tokens=False)["input_ids"]
        if len(pieces) != 1:
            spaced = tokenizer(" " + w, add_special_tokens=False)["input_ids"]
            if len(spaced) == 1:
                pieces = spaced
            else:
                raise UsageError(f"--label-tokens: '{w}' is {len(pieces)} tokens for this tokenizer; label tokens "
                                 "must be single tokens (or use --label-token-positions)")
        ids.append(int(pieces[0]))
    return positions, ids


def tokens_fit_model(s: Session) -> bool:
    """Add the tokenizer findings; False when token ids are beyond the embedding table (a forward would crash)."""
    from labeldiag.checks.tokens import check_tokenizer

    stats = s.encoded.stats
    s.report.add(check_tokenizer(stats))
    if stats.embedding_rows is not None and stats.max_token_id >= stats.embedding_rows:
        s.report.notes.append("the forward pass was skipped: token ids beyond the embedding table would crash it")
        return False
    return True


def finish(session_or_report: Any, opts: CommonOptions, plot_fn=None) -> int:
    """Render the report (console, JSON, plot) and return the exit code."""
    from labeldiag.render.console import make_console, render_report
    from labeldiag.render.output import write_json

    report: Report = session_or_report.report if hasattr(session_or_report, "report") else session_or_report
    started = getattr(session_or_report, "started", None)
    if started is not None:
        report.elapsed_s = time.perf_counter() - started
    if opts.plot_path and plot_fn is not None:
        plot_fn(report, opts.plot_path)
    console = make_console(to_stderr=opts.json_path == "-")
    render_report(report, console)
    if opts.json_path:
        write_json(report, opts.json_path)
        if opts.json_path != "-":
            console.print(f"[dim]JSON report written to {opts.json_path}[/]")
    if opts.plot_path and plot_fn is not None:
        console.print(f"[dim]figure written to {opts.plot_path}[/]")
    return report.exit_code(opts.fail_on)


def _quiet_libraries() -> None:
    import logging
    import warnings

    for name in ("transformers", "torch", "huggingface_hub", "safetensors"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except Exception:
        pass
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)

