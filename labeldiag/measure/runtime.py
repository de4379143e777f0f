"""Device and precision choice, autocast, and calling the model with what its forward accepts."""
from __future__ import annotations

import contextlib
import ctypes
import functools
import inspect
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from labeldiag.errors import ModelCodeError, UsageError, describe_exception

DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass
class Runtime:
    device: Any  # torch.device
    precision: str  # fp32 / bf16 / fp16
    device_name: str

    @property
    def autocast_dtype(self):
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def autocast(self):
        import torch

        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)


@functools.cache
def _malloc_trim() -> Any:
    """glibc's malloc_trim, or None where the C library is another (macOS, musl, Windows)."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> None:
    """Give the heap pages freed since the last call back to the OS (glibc; elsewhere nothing happens).

    Once large buffers have been freed (loading the model does), glibc serves allocations up to 32 MB
    from its heap instead of mmap, and keeps the pages that tokenizing N texts freed there. Trimming
    changes no setting. It is called once after tokenizing, not per batch: pages given back are
    faulted in again by the next allocation.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def pick_runtime(device: str, precision: str) -> Runtime:
    import torch

    device = (device or "auto").strip().lower()
    if not DEVICE_RE.match(device):
        raise UsageError(f"--device '{device}' is not one of auto, cpu, cuda, cuda:N, mps")
    if device == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device} was asked for but no CUDA GPU is available; use --device cpu "
                             "(or auto)")
        index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise UsageError(f"--device {device}: there are only {torch.cuda.device_count()} CUDA device(s)")
        dev = torch.device("cuda", index)
        name = torch.cuda.get_device_name(index)
        # TF32 matmuls: same accuracy class as bf16 autocast, much faster on Ampere+.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    elif device == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise UsageError("--device mps was asked for but MPS is not available; use --device cpu")
        dev, name = torch.device("mps"), "Apple MPS"
    else:
        dev, name = torch.device("cpu"), "CPU"
    precision = (precision or "auto").lower()
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise UsageError(f"--precision '{precision}' is not one of auto, fp32, bf16, fp16")
    if precision == "auto":
        precision = "bf16" if dev.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "bf16" and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UsageError(f"--precision bf16: {name} does not support bfloat16; use fp16 or fp32")
    if precision == "fp16" and dev.type == "cpu":
        raise UsageError("--precision fp16 needs a GPU; on the CPU use fp32 or bf16")
    return Runtime(device=dev, precision=precision, device_name=name)


def forward_params(model: Any) -> tuple[set[str], bool]:
    try:
        sig = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return set(), True
    names = set(sig.parameters)
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    return names, var_kw


def filter_inputs(batch: dict, params: tuple[set[str], bool]) -> dict:
    names, var_kw = params
    if var_kw:
        return batch
    return {k: v for k, v in batch.items() if k in names}


def extract_logits(output: Any, batch_size: int) -> np.ndarray:
    """Normalise what forward returned into a float32 [B, C] array."""
    import torch

    def as_array(x: Any) -> np.ndarray | None:
        if isinstance(x, torch.Tensor):
            return x.detach().float().cpu().numpy()
        if isinstance(x, np.ndarray):
            return x.astype(np.float32)
        return None

    candidates: list[Any] = []
    if hasattr(output, "logits") and getattr(output, "logits", None) is not None:
        candidates.append(output.logits)
    elif isinstance(output, dict) and output.get("logits") is not None:
        candidates.append(output["logits"])
    elif isinstance(output, (torch.Tensor, np.ndarray)):
        candidates.append(output)
    elif isinstance(output, (tuple, list)):
        items = list(output)
        # a list of per-example score arrays (the label-token model of SEEDS.md)
        if len(items) == batch_size and all(as_array(i) is not None and as_array(i).ndim == 1 for i in items):
            return np.stack([as_array(i) for i in items]).astype(np.float32)
        for item in items:
            if isinstance(item, (list, tuple)) and len(item) == batch_size and item and all(
                    as_array(i) is not None and as_array(i).ndim == 1 for i in item):
                return np.stack([as_array(i) for i in item]).astype(np.float32)
            arr = as_array(item)
            if arr is not None and arr.ndim >= 1 and arr.shape[0] == batch_size and arr.ndim <= 2:
                candidates.append(item)
                break
    for c in candidates:
        arr = as_array(c)
        if arr is None and isinstance(c, (list, tuple)):
            try:
                arr = np.stack([as_array(i) for i in c])
            except Exception:
                arr = None
        if arr is None:
            continue
        if arr.ndim == 1 and arr.shape[0] == batch_size:
            arr = arr[:, None]
        if arr.ndim == 2 and arr.shape[0] == batch_size:
            return arr.astype(np.float32)
        if arr.ndim == 3 and arr.shape[0] == batch_size:
            raise ModelCodeError(f"the model returned logits of shape {tuple(arr.shape)} (per token?); "
                                 "labeldiag needs sequence-classification logits of shape [batch, num_labels]")
    raise ModelCodeError(f"could not find logits in the model's output ({_describe(output)}); return a "
                         "ModelOutput with .logits, a (loss, logits) tuple or a [batch, num_labels] tensor")


def logits_tensor(output: Any, batch_size: int) -> Any:
    """The [B, C] logits as a torch tensor still in the graph, or None (numpy arrays, odd shapes).

    Training needs this form; extract_logits gives numpy for evaluation.
    """
    import torch

    cand = getattr(output, "logits", None)
    if cand is None and isinstance(output, dict):
        cand = output.get("logits")
    if cand is None:
        if isinstance(output, torch.Tensor):
            cand = output
        elif isinstance(output, (tuple, list)):
            items = list(output)
            if len(items) == batch_size and all(isinstance(i, torch.Tensor) and i.dim() == 1 for i in items):
                return torch.stack(items)
            for item in items:
                if (isinstance(item, (tuple, list)) and len(item) == batch_size and item
                        and all(isinstance(i, torch.Tensor) and i.dim() == 1 for i in item)):
                    return torch.stack(list(item))
                if isinstance(item, torch.Tensor) and item.dim() in (1, 2) and item.shape[0] == batch_size:
                    cand = item
                    break
    if isinstance(cand, torch.Tensor) and cand.dim() in (1, 2) and cand.shape[0] == batch_size:
        return cand[:, None] if cand.dim() == 1 else cand
    return None


def extract_loss(output: Any):
    """The model's own loss tensor, if it returned one."""
    import torch

    loss = getattr(output, "loss", None)
    if loss is None and isinstance(output, dict):
        loss = output.get("loss")
    if loss is None and isinstance(output, (tuple, list)) and output:
        first = output[0]
        if isinstance(first, torch.Tensor) and first.dim() == 0:
            loss = first
    return loss if isinstance(loss, torch.Tensor) else None


def _describe(output: Any) -> str:
    if isinstance(output, (tuple, list)):
        return f"{type(output).__name__} of {len(output)}: " + ", ".join(_describe_one(o) for o in list(output)[:4])
    return _describe_one(output)


def _describe_one(o: Any) -> str:
    shape = getattr(o, "shape", None)
    return f"{type(o).__name__}{tuple(shape) if shape is not None else ''}"


def call_model(model: Any, batch: dict) -> Any:
    try:
        return model(**batch)
    except UsageError:
        raise
    except SystemExit as exc:  # sys.exit() in the user's forward must not end the run with its exit code
        raise ModelCodeError(f"the model's forward called sys.exit({exc.code!r}); the model code must return its outputs, "
                             "not exit") from None
    except Exception as exc:
        import torch

        if isinstance(exc, getattr(torch.cuda, "OutOfMemoryError", ())) or "out of memory" in str(exc).lower():
            raise UsageError("out of memory during the forward pass; lower --batch-size or --max-length") from None
        if isinstance(exc, IndexError) and "index out of range" in str(exc):
            raise UsageError(f"the model's forward failed with token ids outside the embedding table ({describe_exception(exc)}); "
                             "the tokenizer does not match the model: pass --tokenizer with the model's own") from None
        raise ModelCodeError(f"the model's forward raised {describe_exception(exc)}; fix the model code "
                             "(rerun with --debug for the traceback)") from exc


def base_of(model: Any) -> Any:
    """The transformers model under a PEFT wrapper (or the model itself)."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def last_token_positions(input_ids: Any, pad_id: int | None) -> Any:
    """transformers' rule: the rightmost position that is not the pad id (either padding side)."""
    import torch

    if pad_id is None:
        return torch.full((input_ids.shape[0],), input_ids.shape[1] - 1, dtype=torch.long, device=input_ids.device)
    keep = (input_ids != pad_id).to(torch.int32)
    positions = torch.arange(input_ids.shape[-1], device=input_ids.device, dtype=torch.int32)
    return (positions * keep).argmax(-1)
