"""Options of the checking commands, shared by the CLI and the Python API, and their validation.

The API takes the CLI's option names with underscores; a bad value raises UsageError with the same
one line the CLI prints. Nothing here imports torch, so `labeldiag --help` stays fast.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields, replace
from typing import Any

from labeldiag.errors import UsageError
from labeldiag.progress import SILENT, Progress

DEFAULT_MAX_EXAMPLES = {"check-logits": 2048, "grad-flow": 64, "smoke-train": 32, "doctor": 2048}
MAX_EXAMPLES_LIMIT = 10_000_000  # far above any sane run; keeps 1e20 from reaching the readers
MAX_SEED = 2**32 - 1  # numpy's seed range
FAIL_ON = ("error", "warning", "never")
MAX_LORA_RANK = 4096  # far above any useful adapter; keeps a typo like 80000 from allocating a full matrix


@dataclass(frozen=True)
class Options:
    """What every checking command reads: where the data's fields are, how much to read, where to run."""

    model_class: str | None = None
    text_field: str | None = None
    text_pair_field: str | None = None
    label_field: str | None = None
    label_tokens: tuple[str, ...] | None = None
    label_token_positions: tuple[int, ...] | None = None
    # a fresh head of this size (class names in head order) when the checkpoint has none or another size
    labels: tuple[str, ...] | None = None
    num_labels: int | None = None
    max_examples: int = 2048
    batch_size: int = 32
    max_length: int | None = None
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    trust_remote_code: bool = False
    allow_pickle: bool = False
    progress: Progress = SILENT  # the CLI hands down render.progress.TERMINAL; the library prints nothing
    task: str | None = None  # single-label, multi-label, regression or pairwise (default: detected)
    label_columns: tuple[str, ...] | None = None  # one 0/1 column per label (multi-label)
    pair_fields: tuple[str, ...] | None = None  # the chosen and rejected columns of preference data
    shard: str | None = None  # under torchrun / accelerate launch: "ddp" or "fsdp" (None: what fits)
    base_model: str | None = None  # check-logits: the base model's folder or cached id (issue 20)
    label_all_subwords: bool = False  # token task: every sub-word of a word gets its tag, not only the first
    lora: int | None = None  # smoke-train / grad-flow: LoRA rank (0: off; None: LoRA above a size, see thresholds)
    device_map: str | None = None  # check-logits: "auto" dispatches a model larger than one device (accelerate)
    max_memory: tuple[tuple[str | int, int], ...] | None = None  # with --device-map: bytes per device, e.g. (("cpu", 2**30),)


@dataclass(frozen=True)
class GradFlowSettings:
    lr: float = 2e-5  # for the update/weight ratio of a first AdamW step


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 100
    lr: float = 1e-4
    target_loss: float = 0.05
    triage: bool = False
    lr_given: bool = True  # False when lr was left out: under LoRA smoke-train then takes T.LORA_DEFAULT_LR


SETTINGS = {"grad-flow": GradFlowSettings, "smoke-train": TrainSettings}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _int(name: str, value: Any) -> int:
    """An integer option: ints (numpy ints too) and integral floats; never bools or 1e20."""
    if isinstance(value, bool) or value is None:
        raise UsageError(f"{_flag(name)} must be a whole number, got {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise UsageError(f"{_flag(name)} must be a whole number, got {value!r}")


def _float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise UsageError(f"{_flag(name)} must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{_flag(name)} must be a number, got {value!r}") from None
    if not (math.isfinite(out) and out > 0):
        raise UsageError(f"{_flag(name)} must be a positive number, got {value}")
    return out


def _words(name: str, value: Any) -> tuple[str, ...] | None:
    if value is None or value == "" or value == ():
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    words = tuple(str(w).strip() for w in items if str(w).strip())
    if not words:
        raise UsageError(f"{_flag(name)} '{value}' names no word; give one per class, e.g. no,yes")
    return words


def parse_positions(value: Any) -> tuple[int, ...] | None:
    if value is None or value == "" or value == ():
        return None
    text = value if isinstance(value, str) else ",".join(str(v) for v in value)
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise UsageError(f"--label-token-positions '{text}' must be comma-separated integers, e.g. 1,2,3") from None
    if not values or any(v < 0 for v in values):
        raise UsageError(f"--label-token-positions '{text}' must be non-negative integers, e.g. 1,2,3")
    return values


def build(command: str, given: dict[str, Any]) -> tuple[Options, Any]:
    """Options and the command's own settings from keyword options; UsageError on a bad name or value."""
    settings_cls = SETTINGS.get(command)
    names = {f.name for f in fields(Options)}
    own = {f.name for f in fields(settings_cls) if f.name != "lr_given"} if settings_cls else set()
    unknown = sorted(set(given) - names - own)
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], sorted(names | own), n=1)
        tip = f"; did you mean '{close[0]}'?" if close else f" (options: {', '.join(sorted(names | own))})"
        raise UsageError(f"{command} has no option '{unknown[0]}'{tip}")
    opts = Options(max_examples=DEFAULT_MAX_EXAMPLES.get(command, 2048))
    common = {k: v for k, v in given.items() if k in names}
    opts = replace(opts, **common)
    opts = validate(opts)
    if opts.device_map is not None and command not in ("check-logits", "grad-flow"):
        raise UsageError(f"--device-map is for check-logits and grad-flow; {command} needs the whole model in one "
                         "place (under torchrun: --shard fsdp; for less training memory: --lora)")
    if opts.device_map is not None and opts.lora:
        raise UsageError("--lora trains adapters on a copy of the whole model; --device-map places a model too "
                         "large for that: drop one of them")
    settings = None
    if settings_cls is not None:
        chosen = {k: v for k, v in given.items() if k in own and not (k == "lr" and v is None)}
        if settings_cls is TrainSettings:
            chosen["lr_given"] = "lr" in chosen
        settings = validate_settings(settings_cls(**chosen))
    return opts, settings


def validate(opts: Options) -> Options:
    """Check every value and return the options with normalised types."""
    opts = replace(opts, shard=_shard(opts.shard))
    opts = replace(opts, lora=_lora(opts.lora), device_map=_device_map(opts.device_map),
                   max_memory=parse_max_memory(opts.max_memory))
    if opts.max_memory is not None and opts.device_map is None:
        raise UsageError("--max-memory applies to --device-map auto; add --device-map auto")
    if opts.device_map is not None and opts.shard is not None:
        raise UsageError("--device-map places one model across devices in one process; it does not combine with "
                         "--shard (launch without --shard, or drop --device-map)")
    max_examples = _int("max_examples", opts.max_examples)
    if max_examples <= 0:
        raise UsageError(f"--max-examples must be a positive number, got {max_examples}")
    if max_examples > MAX_EXAMPLES_LIMIT:
        raise UsageError(f"--max-examples {max_examples} is more than labeldiag reads "
                         f"({MAX_EXAMPLES_LIMIT:,} at most); a few thousand examples are enough for every verdict")
    batch_size = _int("batch_size", opts.batch_size)
    if batch_size <= 0:
        raise UsageError(f"--batch-size must be a positive number, got {batch_size}")
    max_length = None if opts.max_length is None else _int("max_length", opts.max_length)
    if max_length is not None and max_length < 2:
        raise UsageError(f"--max-length must be at least 2, got {max_length}")
    seed = _int("seed", opts.seed)
    if not 0 <= seed <= MAX_SEED:
        raise UsageError(f"--seed must be between 0 and {MAX_SEED}, got {seed}")
    for name in ("model_class", "text_field", "text_pair_field", "label_field", "device", "precision"):
        value = getattr(opts, name)
        if value is not None and not isinstance(value, str):
            raise UsageError(f"{_flag(name)} must be a string, got {type(value).__name__}")
    label_tokens = _words("label_tokens", opts.label_tokens)
    positions = parse_positions(opts.label_token_positions)
    if label_tokens and positions:
        raise UsageError("give either --label-tokens or --label-token-positions, not both")
    labels, num_labels = _head_request(opts.labels, opts.num_labels)
    device = (opts.device or "auto").strip().lower()
    precision = (opts.precision or "auto").strip().lower()
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise UsageError(f"--precision '{opts.precision}' is not one of auto, fp32, bf16, fp16")
    task, label_columns = _task_request(opts.task, opts.label_columns)
    pair_fields = _words("pair_fields", opts.pair_fields)
    if pair_fields is not None and len(pair_fields) != 2:
        raise UsageError(f"--pair-fields '{','.join(pair_fields)}' must name two columns: chosen,rejected")
    opts = replace(opts, task=task, label_columns=label_columns, pair_fields=pair_fields)
    return replace(opts, max_examples=max_examples, batch_size=batch_size, max_length=max_length, seed=seed,
                   label_tokens=label_tokens, label_token_positions=positions, labels=labels,
                   num_labels=num_labels, device=device,
                   precision=precision, trust_remote_code=bool(opts.trust_remote_code),
                   allow_pickle=bool(opts.allow_pickle), progress=_progress(opts.progress),
                   label_all_subwords=bool(opts.label_all_subwords))


def _progress(value: Any) -> Progress:
    """What shows progress: a labeldiag.progress.Progress the caller hands down (the CLI's shows it on the
    terminal); None or False for none."""
    if value is None or value is False:
        return SILENT
    if isinstance(value, Progress):
        return value
    raise UsageError(f"progress must be a labeldiag.progress.Progress (bar, phase, training) or None, got {value!r}")


def _shard(value: Any) -> str | None:
    """--shard ddp|fsdp (auto or empty: pick what fits under a launcher)."""
    if value is None:
        return None
    if not isinstance(value, str) or value.strip().lower() not in ("ddp", "fsdp", "auto", ""):
        raise UsageError(f"--shard '{value}' is not one of ddp, fsdp, auto")
    text = value.strip().lower()
    return None if text in ("auto", "") else text


def _lora(value: Any) -> int | None:
    """--lora R: a LoRA rank of at least 1, or 0 for none."""
    if value is None:
        return None
    rank = _int("lora", value)
    if not 0 <= rank <= MAX_LORA_RANK:
        raise UsageError(f"--lora must be a rank between 1 and {MAX_LORA_RANK} (0: no LoRA), got {rank}")
    return rank


def _device_map(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value.strip().lower() != "auto":
        raise UsageError(f"--device-map '{value}' is not supported; use --device-map auto (GPUs, then CPU, then disk)")
    return "auto"


MEMORY_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
                "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_max_memory(value: Any) -> tuple[tuple[str | int, int], ...] | None:
    """--max-memory 0=20GiB,cpu=60GiB (a dict from the API): bytes per device, as accelerate's max_memory."""
    import re

    if value is None or value == "" or value == ():
        return None
    if isinstance(value, dict):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, str):
        items = [tuple(part.split("=", 1)) if "=" in part else (part, None) for part in value.split(",") if part.strip()]
    else:
        items = [(str(k), v) for k, v in value]
    out = []
    for key, size in items:
        device = str(key).strip().lower()
        if not (device.isdigit() or device in ("cpu", "mps") or re.fullmatch(r"(cuda|xpu|npu):\d+", device)):
            raise UsageError(f"--max-memory: '{key}' is not a device; use a GPU index (0, 1, ...) or cpu, "
                             "e.g. 0=20GiB,cpu=60GiB")
        number = None
        if isinstance(size, numbers.Real) and not isinstance(size, bool):
            number = float(size)
        elif isinstance(size, str):
            m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", size)
            if m and m.group(2).lower() in MEMORY_UNITS:
                number = float(m.group(1)) * MEMORY_UNITS[m.group(2).lower()]
        if number is None or not math.isfinite(number) or number <= 0:
            raise UsageError(f"--max-memory: '{key}={size}' needs a positive size such as 20GiB or 500MB")
        out.append((int(device) if device.isdigit() else device, int(number)))
    return tuple(out)


def _head_request(labels: Any, num_labels: Any) -> tuple[tuple[str, ...] | None, int | None]:
    """--labels NAME,... and --num-labels N: at least two classes, distinct names, and the two agreeing."""
    names = _words("labels", labels)
    if names is not None:
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise UsageError(f"--labels names '{repeated[0]}' twice; give each class name once, in head order")
        if len(names) < 2:
            raise UsageError(f"--labels '{names[0]}' names one class; a classifier needs at least two, e.g. no,yes")
    count = None if num_labels is None else _int("num_labels", num_labels)
    if count is not None and count < 2:
        raise UsageError(f"--num-labels must be at least 2 (a classifier's head has one logit per class), got {count}")
    if names is not None and count is not None and count != len(names):
        raise UsageError(f"--labels names {len(names)} classes but --num-labels is {count}; give one of them, or "
                         "make them agree")
    return names, (len(names) if names is not None else count)


def _task_request(task: Any, label_columns: Any) -> tuple[str | None, tuple[str, ...] | None]:
    """--task one of the shapes, --label-columns at least two distinct columns."""
    from labeldiag.records import TASKS

    if task is not None:
        task = str(task).strip().lower()
        if task not in TASKS:
            raise UsageError(f"--task '{task}' is not one of {', '.join(TASKS)}")
    columns = _words("label_columns", label_columns)
    if columns is not None:
        if len(set(columns)) != len(columns) or len(columns) < 2:
            raise UsageError(f"--label-columns '{','.join(columns)}' must name at least two distinct columns, "
                             "one 0/1 column per label in head order")
        if task not in (None, "multi-label"):
            raise UsageError(f"--label-columns gives multi-label data, but --task is {task}")
    return task, columns


def validate_settings(settings: Any) -> Any:
    if isinstance(settings, TrainSettings):
        steps = _int("steps", settings.steps)
        if steps < 1:
            raise UsageError(f"--steps must be at least 1, got {steps}")
        return TrainSettings(steps=steps, lr=_float("lr", settings.lr),
                             target_loss=_float("target_loss", settings.target_loss), triage=bool(settings.triage),
                             lr_given=bool(settings.lr_given))
    if isinstance(settings, GradFlowSettings):
        return GradFlowSettings(lr=_float("lr", settings.lr))
    return settings


def check_fail_on(fail_on: str) -> str:
    if fail_on not in FAIL_ON:
        raise UsageError(f"--fail-on must be error, warning or never, got '{fail_on}'")
    return fail_on
