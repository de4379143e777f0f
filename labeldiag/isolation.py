"""Leave the caller's process and model as they were: the library's promise to notebooks and Trainers.

`isolated(model)` scopes warnings filters and library log levels to the call, restores the random
number generators and TF32 flags, and puts back every model attribute a check may touch: train/eval
mode, requires_grad, .grad, device, dtype, dropout probabilities and config.pad_token_id.
"""
from __future__ import annotations

import contextlib
import logging
import random
import warnings
from typing import Any, Iterator

LOGGERS = ("transformers", "torch", "huggingface_hub", "safetensors", "peft", "accelerate")


class ModelState:
    """Everything about an nn.Module that a check may change, to be put back afterwards."""

    def __init__(self, model: Any):
        self.model = model
        self.modes = {name: m.training for name, m in model.named_modules()}
        self.params = [(p, p.requires_grad, p.grad, p.device, p.dtype) for p in model.parameters()]
        self.buffers = [(m, name, b.device, b.dtype) for m in model.modules() for name, b in m._buffers.items()
                        if b is not None]
        self.dropout = {name: m.p for name, m in model.named_modules() if _is_dropout(m)}
        config = getattr(model, "config", None)
        self.pad_token_id = getattr(config, "pad_token_id", None)  # a decoder without one gets a temporary pad

    def restore(self) -> None:
        import torch

        with torch.no_grad():
            for p, requires_grad, grad, device, dtype in self.params:
                if p.device != device or p.dtype != dtype:
                    p.data = p.data.to(device=device, dtype=dtype)
                p.requires_grad_(requires_grad)
                p.grad = grad
            for module, name, device, dtype in self.buffers:
                b = module._buffers.get(name)
                if b is not None and (b.device != device or b.dtype != dtype):
                    module._buffers[name] = b.to(device=device, dtype=dtype)
        config = getattr(self.model, "config", None)
        if config is not None and getattr(config, "pad_token_id", None) != self.pad_token_id:
            config.pad_token_id = self.pad_token_id
        for name, m in self.model.named_modules():
            if name in self.modes:
                m.training = self.modes[name]
            if name in self.dropout:
                m.p = self.dropout[name]


def _is_dropout(module: Any) -> bool:
    import torch

    return isinstance(module, torch.nn.modules.dropout._DropoutNd)


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """transformers/torch chatter off for the call only (the library prints nothing)."""
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    hf = None
    try:
        from transformers.utils import logging as hf

        verbosity, bars = hf.get_verbosity(), hf.is_progress_bar_enabled()
    except Exception:
        hf = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        for name in LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        if hf is not None:
            hf.set_verbosity_error()
            hf.disable_progress_bar()
        try:
            yield
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
            if hf is not None:
                hf.set_verbosity(verbosity)
                if bars:
                    hf.enable_progress_bar()


@contextlib.contextmanager
def random_state_kept() -> Iterator[None]:
    import numpy as np
    import torch

    py, npy, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32


@contextlib.contextmanager
def isolated(model: Any = None) -> Iterator[None]:
    import torch

    state = ModelState(model) if isinstance(model, torch.nn.Module) else None
    grad_enabled = torch.is_grad_enabled()
    with quiet_libraries(), random_state_kept():
        try:
            yield
        finally:
            torch.set_grad_enabled(grad_enabled)
            if state is not None:
                state.restore()
