"""What the three checking commands share: loading the model and data into one Session."""
from __future__ import annotations

import random
import shlex
from dataclasses import dataclass, replace
from typing import Any

from labeldiag.errors import UsageError
from labeldiag.findings import Report
from labeldiag.options import Options


@dataclass
class Inputs:
    """What to check: each a path (CLI and API) or, from the API, an object."""

    model: Any
    data: Any
    tokenizer: Any = None
    # DATA's examples already read with this run's options (doctor's, for its check-logits stage): prepare()
    # measures these instead of reading DATA again
    examples: Any = None


@dataclass
class Session:
    """Everything loaded once, shared by a command's measurements."""

    opts: Options
    report: Report
    runtime: Any
    loaded: Any
    examples: Any
    encoded: Any
    gold: Any  # GoldLabels or None
    names: list[str]
    num_classes: int
    label_positions: tuple[int, ...] | None = None
    label_token_ids: list[int] | None = None
    task: Any = None  # TaskShape
    shaped_gold: Any = None  # MultiLabelGold / RegressionGold for the other task shapes


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def prepare(inputs: Inputs, opts: Options, command: str, fresh_head_expected: bool) -> Session:
    """Load model and data, map labels, tokenize; return a Session with the report so far."""
    runtime, examples, loaded = load_inputs(inputs, opts)
    names = class_names(loaded.info)
    report = judge_load(inputs, runtime, loaded, names, command, fresh_head_expected)
    examples, task, gold, shaped = shape_task(report, examples, loaded.info, opts, len(names))
    max_length = input_length(opts, loaded)
    encoded, shaped = encode_inputs(report, examples, loaded, task, shaped, max_length, opts)
    report.data = describe_data(inputs, examples, gold, shaped, names, max_length)
    token_ids = _label_token_ids(opts, loaded.tokenizer, len(names))
    positions = label_positions(opts, encoded, loaded.tokenizer, len(names))
    return Session(opts=opts, report=report, runtime=runtime, loaded=loaded, examples=examples, encoded=encoded,
                   gold=gold, names=names, num_classes=len(names), label_positions=positions,
                   label_token_ids=token_ids, task=task, shaped_gold=shaped)


def load_inputs(inputs: Inputs, opts: Options) -> tuple[Any, Any, Any]:
    """The runtime (device, precision), DATA's examples (read unless `inputs` holds them) and the loaded model,
    seeded; each a progress phase."""
    from labeldiag.load import objects
    from labeldiag.measure.runtime import pick_runtime

    with opts.progress.phase("starting torch and picking the device"):
        runtime = pick_runtime(opts.device, opts.precision)
    seed_everything(opts.seed)
    examples = inputs.examples
    if examples is None:
        with opts.progress.phase(f"reading {objects.describe(inputs.data)}"):
            examples = objects.read(inputs.data, opts)
    with opts.progress.phase(f"loading {objects.describe(inputs.model)}"):
        loaded = objects.load(inputs.model, inputs.tokenizer, opts,
                              need_tokenizer=objects.needs_tokenizer(examples, inputs.tokenizer, opts))
    return runtime, examples, loaded


def class_names(info: Any) -> list[str]:
    """The head's class names in index order (LABEL_i where the config names none); one for a head of none."""
    return [info.id2label.get(i, f"LABEL_{i}") for i in range(max(info.num_labels, 1))]


def model_facts(info: Any) -> dict[str, Any]:
    """What a report says the model is: its class, head size, class names and problem type."""
    return {"class": info.class_name, "num_labels": info.num_labels,
            "id2label": {str(k): v for k, v in sorted(info.id2label.items())}, "problem_type": info.problem_type}


def judge_load(inputs: Inputs, runtime: Any, loaded: Any, names: list[str], command: str,
               fresh_head_expected: bool) -> Report:
    """A new report holding the loading checks (audit, head weights, pad token) and what the model is."""
    from labeldiag.checks.loading import check_load_audit
    from labeldiag.checks.padding import pad_token_missing
    from labeldiag.checks.training_run import head_weights_garbage
    from labeldiag.load import objects
    from labeldiag.measure.head_values import head_values
    from labeldiag.measure.padding import ensure_pad_token

    info = loaded.info
    report = Report(command=command, device=f"{runtime.device} ({runtime.device_name})")
    report.metrics["precision"] = runtime.precision
    report.add(check_load_audit(loaded.audit, fresh_head_expected))
    report.add(head_weights_garbage(head_values(loaded.model)))
    temporary_pad = ensure_pad_token(loaded.model, loaded.tokenizer)
    report.add(pad_token_missing(temporary_pad))
    if temporary_pad is not None:
        report.notes.append(f"measured with a temporary pad token: {temporary_pad.source} (id "
                            f"{temporary_pad.pad_id}); nothing was saved")
    report.model = {"path": objects.describe(inputs.model), **model_facts(info), "weights": info.weights_format}
    attached = loaded.audit.attached_head
    if attached:
        report.model["attached_head"] = attached
        before = (f"a head of {attached['checkpoint_outputs']} outputs" if attached["checkpoint_outputs"] else
                  "no classification head")
        report.notes.append(f"attached a fresh {attached['outputs']}-class head ({', '.join(names[:6])}"
                            f"{', ...' if len(names) > 6 else ''}): the checkpoint has {before}; MODEL is not "
                            "written")
    return report


def shape_task(report: Report, examples: Any, info: Any, opts: Options,
               num_classes: int) -> tuple[Any, Any, Any, Any]:
    """The task shape and the gold labels read for it (examples, task, single-label gold, other shapes' gold);
    the label-map and problem-type checks go into the report."""
    from labeldiag.checks.labels import check_problem_type, map_labels
    from labeldiag.shapes import detect_task, relevance_labels, relevance_pairs, shaped_gold

    relevant = relevance_labels(examples, info.num_labels, opts.task)
    if relevant is not None:  # issue 19: a reranker's query / passage rows, judged as preference pairs
        examples, how = relevance_pairs(examples, relevant)
        report.notes.append(how)
    gold = None
    task = detect_task(info.problem_type, info.num_labels, info.class_name,
                       examples.labels if examples.labelled else None, opts.task,
                       preference_pairs=examples.preference_pairs is not None, token_level=examples.token_level)
    if relevant is not None:
        task = replace(task, reason="query / passage rows with 0/1 labels on a one-score head (a reranker)")
    report.model["task"], report.model["task_source"] = task.kind, task.reason
    shaped = shaped_gold(task, examples, info, num_classes)
    if examples.labelled and task.kind == "single-label":
        gold, label_findings = map_labels(examples.labels, info, num_classes)
        report.add(label_findings)
    report.add(check_problem_type(info, gold, task))
    return examples, task, gold, shaped


def input_length(opts: Options, loaded: Any) -> int:
    """--max-length, or the tokenizer's and model's own; exit 2 when it is beyond the model's positions."""
    from labeldiag.measure.encode import default_max_length

    info = loaded.info
    max_length = opts.max_length or default_max_length(loaded.tokenizer, info.max_positions)
    if info.max_positions and max_length > info.max_positions:
        raise UsageError(f"--max-length {max_length} is more than the model's {info.max_positions} positions; "
                         f"use at most {info.max_positions}")
    return max_length


def encode_inputs(report: Report, examples: Any, loaded: Any, task: Any, shaped: Any, max_length: int,
                  opts: Options) -> tuple[Any, Any]:
    """The examples as token ids (and a token task's gold, aligned to sub-words); the tokenizer's
    model_max_length is judged when the data is text."""
    from labeldiag.checks.training_run import model_max_length_unset
    from labeldiag.measure.encode import encode

    info = loaded.info
    pad_id = getattr(getattr(loaded.model, "config", None), "pad_token_id", None)
    if examples.tokenized is None:
        report.add(model_max_length_unset(getattr(loaded.tokenizer, "model_max_length", None)))
    with opts.progress.phase(f"tokenizing {len(examples)} examples"):
        if task.kind == "token":  # issue 22: word tags aligned to sub-words
            from labeldiag.measure.token_data import encode_tagged

            encoded, shaped = encode_tagged(examples, loaded.tokenizer, max_length, info, pad_id,
                                            opts.label_all_subwords)
        else:
            encoded = encode(examples, loaded.tokenizer, max_length, info.embedding_rows, info.max_positions,
                             pad_id, type_vocab_size=info.type_vocab_size)
    return encoded, shaped


def describe_data(inputs: Inputs, examples: Any, gold: Any, shaped: Any, names: list[str],
                  max_length: int) -> dict[str, Any]:
    """report.data: where DATA is, how many examples, its fields and its label counts."""
    import numpy as np

    from labeldiag.load import objects
    from labeldiag.shapes import shape_label_counts

    counts = None
    if gold is not None:
        usable = gold.indices[gold.usable]
        bc = np.bincount(usable, minlength=len(names)) if usable.size else np.zeros(len(names), int)
        counts = {names[i] if i < len(names) else str(i): int(v) for i, v in enumerate(bc)}
    data = {"path": objects.describe(inputs.data), "examples": len(examples), "labelled": gold is not None,
            "label_counts": counts, "text_field": examples.text_field,
            "text_pair_field": examples.pair_field, "label_field": examples.label_field,
            "max_length": max_length}
    if shaped is not None:
        data["label_counts"], data["labelled"] = shape_label_counts(shaped), True
    return data


def label_positions(opts: Options, encoded: Any, tokenizer: Any, num_classes: int) -> tuple[int, ...] | None:
    """--label-token-positions, checked: one per class and inside the inputs (exit 2 otherwise)."""
    positions = opts.label_token_positions
    if positions is not None and len(positions) != num_classes:
        raise UsageError(f"--label-token-positions gives {len(positions)} positions but the model has "
                         f"{num_classes} classes; give one per class in class-index order")
    if positions is not None:
        _require_positions_inside(positions, encoded, tokenizer)
    return positions


def head_options_for_data(s: Session) -> str:
    """' --labels a,b,c' or ' --num-labels N' when DATA's classes do not fit the head (names unknown to it,
    or indices beyond it); '' when they fit."""
    gold = s.gold
    if gold is None or not gold.distinct:
        return ""
    if gold.kind == "str" and (gold.index_names is not None or not gold.usable.any()):
        return " --labels " + shlex.quote(",".join(str(x) for x in gold.distinct))
    if gold.kind == "int" and int(max(gold.distinct)) >= s.num_classes:
        return f" --num-labels {int(max(gold.distinct)) + 1}"
    return ""


def next_command(s: Session, command: str) -> str:
    """The command line to run next on the same MODEL and DATA, with the head options the data needs."""
    return (f"labeldiag {command} {shlex.quote(str(s.report.model.get('path')))} "
            f"{shlex.quote(str(s.report.data.get('path')))}{head_options_for_data(s)}")


def _label_token_ids(opts: Options, tokenizer: Any, num_classes: int) -> list[int] | None:
    words = opts.label_tokens
    if not words:
        return None
    if len(words) != num_classes:
        raise UsageError(f"--label-tokens gives {len(words)} words but the model has {num_classes} classes; "
                         "give one per class in class-index order")
    if tokenizer is None:
        raise UsageError("--label-tokens needs a tokenizer; pass --tokenizer")
    ids = []
    unk = getattr(tokenizer, "unk_token_id", None)
    for w in words:
        pieces = tokenizer(w, add_special_tokens=False)["input_ids"]
        if len(pieces) != 1:
            spaced = tokenizer(" " + w, add_special_tokens=False)["input_ids"]
            if len(spaced) == 1:
                pieces = spaced
            else:
                raise UsageError(f"--label-tokens: '{w}' is {len(pieces)} tokens for this tokenizer "
                                 f"({_token_list(tokenizer, pieces)}); label tokens must be single tokens of the "
                                 "vocabulary (or use --label-token-positions)")
        if unk is not None and int(pieces[0]) == unk:
            raise UsageError(f"--label-tokens: '{w}' is not in the tokenizer's vocabulary (it becomes "
                             f"{_token_list(tokenizer, pieces)}); use words the vocabulary has, or "
                             "--label-token-positions")
        ids.append(int(pieces[0]))
    return ids


def _tokens(tokenizer: Any, ids: Any) -> list[str]:
    """Tokens as the tokenizer spells them (ids when there is no tokenizer or it cannot)."""
    try:
        return [str(t) for t in tokenizer.convert_ids_to_tokens([int(i) for i in ids])]
    except Exception:
        return [str(int(i)) for i in ids]


def _token_list(tokenizer: Any, ids: Any) -> str:
    return ", ".join(repr(t) for t in _tokens(tokenizer, ids))


def _require_positions_inside(positions: tuple[int, ...], encoded: Any, tokenizer: Any) -> None:
    """A label-token position beyond every example would silently measure nothing: exit 2 instead."""
    lengths = encoded.lengths
    longest = int(lengths.max()) if len(lengths) else 0
    outside = [p for p in positions if p >= longest]
    if not outside:
        return
    example = encoded.ids[int(lengths.argmax())] if len(lengths) else []
    shown = " ".join(f"{i}:{t}" for i, t in enumerate(_tokens(tokenizer, example[:12])))
    raise UsageError(f"--label-token-positions: position {outside[0]} is beyond every example (the longest has "
                     f"{longest} tokens, positions 0..{longest - 1}; it starts {shown}{', ...' if longest > 12 else ''}); "
                     "give positions inside the inputs, or --label-tokens")


def untrained_head_noted(s: Session) -> bool:
    """True when the checkpoint has no trained head; a note then says no verdict is drawn from its predictions."""
    if not s.loaded.audit.missing_head:
        return False
    s.report.notes.insert(0, "this checkpoint has no trained head (see head-uninitialized): its predictions are "
                             "random, so no verdict is drawn from them")
    return True


def ready_for_forward(s: Session) -> bool:
    """The model on the run's device in eval mode (a dispatched model stays where accelerate put it); False,
    with only the label map judged, when the token ids do not fit the model."""
    from labeldiag.checks.labels import check_label_map
    from labeldiag.load.dispatch import place

    if not tokens_fit_model(s):
        s.report.add(check_label_map(s.loaded.info, None))
        return False
    place(s.loaded.model, s.runtime.device).eval()
    return True


def tokens_fit_model(s: Session) -> bool:
    """Add the tokenizer findings; False when token ids are beyond the embedding table (a forward would crash)."""
    from labeldiag.checks.tokens import check_tokenizer

    stats = s.encoded.stats
    s.report.add(check_tokenizer(stats))
    if stats.embedding_rows is not None and stats.max_token_id >= stats.embedding_rows:
        s.report.notes.append("the forward pass was skipped: token ids beyond the embedding table would crash it")
        return False
    return True
