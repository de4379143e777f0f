"""labeldiag.env: the environment block every report carries and `labeldiag env` prints."""
from __future__ import annotations

import subprocess
import sys

import pytest

from labeldiag.env import NOT_INSTALLED, environment, environment_text

KEYS = [
    "labeldiag version", "Python version", "Platform", "PyTorch version", "PyTorch CUDA build",
    "CUDA available", "MPS available", "Transformers version", "Tokenizers version", "PEFT version",
    "Datasets version", "NumPy version", "GPU", "CPU", "RAM",
]


@pytest.fixture(scope="module")
def env():
    return environment()


def test_every_key_is_a_one_line_string(env):
    assert list(env) == KEYS
    for key, value in env.items():
        assert isinstance(value, str) and value.strip(), key
        assert "\n" not in value, key


def test_values_name_the_installed_versions(env):
    import numpy
    import torch
    import transformers

    from labeldiag import __version__

    assert env["labeldiag version"] == __version__
    assert env["PyTorch version"] == torch.__version__
    assert env["Transformers version"] == transformers.__version__
    assert env["NumPy version"] == numpy.__version__
    assert env["Python version"].startswith("%d.%d.%d" % sys.version_info[:3])
    assert "logical cores" in env["CPU"]
    assert env["RAM"].endswith("GiB total")


def test_text_has_one_line_per_key(env):
    text = environment_text(env)
    items = [line for line in text.splitlines() if line.startswith("- ")]
    assert items == [f"- {k}: {v}" for k, v in env.items()]
    assert not text.splitlines()[0].startswith("- ")  # a header says what the block is


def test_text_keeps_a_multiline_value_on_one_line():
    text = environment_text({"Platform": "line one\nline two"})
    assert "- Platform: line one line two" in text.splitlines()


def test_a_failing_probe_costs_only_its_own_line(monkeypatch):
    import platform

    def broken():
        raise RuntimeError("uname failed")

    monkeypatch.setattr(platform, "platform", broken)
    env = environment()
    assert env["Platform"] == "unknown (RuntimeError: uname failed)"
    assert env["Python version"] and not env["Python version"].startswith("unknown")


def test_a_missing_optional_package_says_not_installed(monkeypatch):
    from importlib import metadata

    real_version = metadata.version

    def without_peft(name):
        if name == "peft":
            raise metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(metadata, "version", without_peft)
    env = environment()
    assert env["PEFT version"] == NOT_INSTALLED
    assert env["Transformers version"] != NOT_INSTALLED


def test_gpu_line_matches_the_machine(env):
    import torch

    if torch.cuda.is_available():
        assert torch.cuda.get_device_name(0) in env["GPU"] and "GiB" in env["GPU"]
        assert env["CUDA available"] == "yes"
    else:
        assert env["CUDA available"] == "no"
        assert env["GPU"] in ("none", "Apple MPS (shares the system RAM)")
        assert not torch.cuda.is_initialized()  # no CUDA start-up cost on a machine without a GPU


def test_importing_the_module_leaves_torch_out():
    code = "import sys, labeldiag.env; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
