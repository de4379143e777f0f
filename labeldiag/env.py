"""`labeldiag env`: the versions and hardware a bug report needs, as one paste-ready block.

Importing this module stays cheap (torch is imported only when environment() runs), and no probe
can make environment() fail: a probe that raises gives "unknown (...)" for its own line.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from typing import Callable

NOT_INSTALLED = "not installed"


def environment() -> dict[str, str]:
    """Versions, OS and hardware, each value a one-line string."""
    probes: list[tuple[str, Callable[[], str]]] = [
        ("labeldiag version", _labeldiag_version),
        ("Python version", lambda: f"{platform.python_version()} ({platform.python_implementation()})"),
        ("Platform", platform.platform),
        ("PyTorch version", _torch_version),
        ("PyTorch CUDA build", _torch_cuda_build),
        ("CUDA available", _cuda_available),
        ("MPS available", _mps_available),
        ("Transformers version", lambda: _package_version("transformers")),
        ("Tokenizers version", lambda: _package_version("tokenizers")),
        ("PEFT version", lambda: _package_version("peft")),
        ("Datasets version", lambda: _package_version("datasets")),
        ("NumPy version", lambda: _package_version("numpy")),
        ("GPU", _gpus),
        ("CPU", _cpu),
        ("RAM", _ram),
    ]
    return {name: _safely(probe) for name, probe in probes}


def environment_text(env: dict[str, str]) -> str:
    """The block users paste into an issue, in the style of `transformers env`."""
    lines = ["labeldiag environment (copy and paste this block into your issue):", ""]
    lines += [f"- {key}: {_one_line(value)}" for key, value in env.items()]
    return "\n".join(lines) + "\n"


def _safely(probe: Callable[[], str]) -> str:
    try:
        return _one_line(probe())
    except Exception as exc:  # one broken probe must not cost the whole block
        return _one_line(f"unknown ({type(exc).__name__}: {exc})")


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def _labeldiag_version() -> str:
    from labeldiag import __version__

    return __version__


def _package_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return NOT_INSTALLED


def _torch():
    """torch, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def _torch_version() -> str:
    torch = _torch()
    return torch.__version__ if torch is not None else NOT_INSTALLED


def _torch_cuda_build() -> str:
    torch = _torch()
    if torch is None:
        return NOT_INSTALLED
    parts = []
    if torch.version.cuda:
        parts.append(f"CUDA {torch.version.cuda}")
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        if cudnn:
            parts.append(f"cuDNN {cudnn}")
    if getattr(torch.version, "hip", None):
        parts.append(f"ROCm/HIP {torch.version.hip}")
    return ", ".join(parts) or "none (CPU-only build)"


def _cuda_available() -> str:
    torch = _torch()
    if torch is None:
        return NOT_INSTALLED
    return "yes" if torch.cuda.is_available() else "no"


def _mps_available() -> str:
    torch = _torch()
    if torch is None:
        return NOT_INSTALLED
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_built():
        return "no (not built)"
    return "yes" if mps.is_available() else "no"


def _gpus() -> str:
    torch = _torch()
    if torch is None:
        return "unknown (torch not installed)"
    # is_available() does not create a CUDA context; the properties below are read only when it says yes
    if torch.cuda.is_available():
        gpus = []
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            gpus.append(f"cuda:{index} {props.name} ({_gib(props.total_memory)})")
        return "; ".join(gpus) or "none"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "Apple MPS (shares the system RAM)"
    return "none"


def _cpu() -> str:
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    count = f"{cores} logical cores" + (f", {usable} usable by this process" if usable != cores else "")
    return f"{_cpu_model()}, {count}"


def _cpu_model() -> str:
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if line.lower().startswith(("model name", "hardware", "cpu model")):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
    elif sys.platform == "darwin":
        name = _sysctl("machdep.cpu.brand_string")
        if name:
            return name
    return platform.processor() or platform.machine() or "unknown model"


def _ram() -> str:
    total = None
    if sys.platform == "darwin":
        value = _sysctl("hw.memsize")
        total = int(value) if value.isdigit() else None
    elif hasattr(os, "sysconf"):
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            total = None
    return f"{_gib(total)} total" if total else "unknown"


def _sysctl(name: str) -> str:
    try:
        out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:.1f} GiB"
