"""Untrusted files: pickles never run, remote code never runs, local paths never touch the network."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import clone, run_cli


class Planted:
    """A pickle payload that would create a file when unpickled."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def one_clean_line(result) -> str:
    err = result.err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("labeldiag: error:"), err
    assert "Traceback" not in err
    return err


def _pickle_checkpoint(trained, tmp_path: Path, target: Path) -> Path:
    ck = clone(trained["checkpoint"], tmp_path / "ckpt")
    (ck / "model.safetensors").unlink()
    with open(ck / "pytorch_model.bin", "wb") as fh:
        pickle.dump({"bert.embeddings.word_embeddings.weight": Planted(str(target))}, fh)
    return ck


@pytest.mark.parametrize("allow", [False, True], ids=["default", "allow-pickle"])
def test_pickle_weights_never_run(trained, tmp_path, allow):
    target = tmp_path / "pwned-weights"
    ck = _pickle_checkpoint(trained, tmp_path, target)
    args = ["check-logits", ck, trained["data"], "--device", "cpu", "--no-progress", "--max-examples", "8"]
    result = run_cli(*args, *(["--allow-pickle"] if allow else []))
    assert result.code == 2
    err = one_clean_line(result)
    if not allow:
        assert "--allow-pickle" in err and "pytorch_model.bin" in err
    assert not target.exists()


@pytest.mark.parametrize("suffix", [".pt", ".ckpt"])
def test_pickle_weights_other_suffixes_refused(trained, tmp_path, suffix):
    target = tmp_path / "pwned"
    ck = clone(trained["checkpoint"], tmp_path / "ckpt")
    (ck / "model.safetensors").unlink()
    with open(ck / f"weights{suffix}", "wb") as fh:
        pickle.dump(Planted(str(target)), fh)
    result = run_cli("check-logits", ck, trained["data"], "--device", "cpu", "--no-progress")
    assert result.code == 2 and "--allow-pickle" in one_clean_line(result)
    assert not target.exists()


@pytest.mark.parametrize("allow", [False, True], ids=["default", "allow-pickle"])
@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin"])
def test_pickle_data_never_runs(trained, tmp_path, allow, suffix):
    target = tmp_path / "pwned-data"
    data = tmp_path / f"batch{suffix}"
    with open(data, "wb") as fh:
        pickle.dump({"input_ids": Planted(str(target))}, fh)
    args = ["check-logits", trained["checkpoint"], data, "--device", "cpu", "--no-progress"]
    result = run_cli(*args, *(["--allow-pickle"] if allow else []))
    assert result.code == 2
    err = one_clean_line(result)
    assert "--allow-pickle" in err if not allow else "could not be loaded safely" in err
    assert not target.exists()


def test_pickle_data_with_os_system(trained, tmp_path):
    target = tmp_path / "pwned-system"

    class System:
        def __reduce__(self):
            return (os.system, (f"touch {target}",))

    data = tmp_path / "batch.pt"
    with open(data, "wb") as fh:
        pickle.dump(System(), fh)
    for extra in ([], ["--allow-pickle"]):
        result = run_cli("check-logits", trained["checkpoint"], data, "--device", "cpu",
                         "--no-progress", *extra)
        assert result.code == 2
        one_clean_line(result)
    assert not target.exists()


def test_allow_pickle_loads_plain_tensors(trained, tmp_path):
    """With the flag a genuine pickle checkpoint and .pt batch load (through weights_only=True)."""
    import torch
    from safetensors.torch import load_file

    ck = clone(trained["checkpoint"], tmp_path / "ckpt")
    torch.save(load_file(str(ck / "model.safetensors")), ck / "pytorch_model.bin")
    (ck / "model.safetensors").unlink()
    data = tmp_path / "batch.pt"
    torch.save({"input_ids": torch.randint(5, 50, (6, 8)), "labels": torch.arange(6) % 3}, data)
    refused = run_cli("check-logits", ck, data, "--device", "cpu", "--no-progress")
    assert refused.code == 2 and "--allow-pickle" in one_clean_line(refused)
    result = run_cli("check-logits", ck, data, "--device", "cpu", "--no-progress", "--allow-pickle", tmp=tmp_path)
    assert result.code in (0, 1), result.err
    assert result.report["model"]["weights"] == "pickle"


MODELING = """
open({target!r}, "w").write("imported")
from transformers import BertForSequenceClassification

class EvilModel(BertForSequenceClassification):
    pass
"""


def _remote_code_checkpoint(trained, tmp_path: Path, target: Path) -> Path:
    ck = clone(trained["checkpoint"], tmp_path / "ckpt")
    (ck / "modeling_evil.py").write_text(MODELING.format(target=str(target)))
    (ck / "configuration_evil.py").write_text(
        f"open({str(target)!r}, 'w').write('imported')\n"
        "from transformers import BertConfig\nclass EvilConfig(BertConfig):\n    model_type = 'evil'\n")
    cfg = json.loads((ck / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "configuration_evil.EvilConfig",
                       "AutoModelForSequenceClassification": "modeling_evil.EvilModel"}
    (ck / "config.json").write_text(json.dumps(cfg))
    return ck


@pytest.mark.parametrize("command", ["check-logits", "grad-flow", "smoke-train"])
def test_remote_code_is_never_implied(trained, tmp_path, command):
    target = tmp_path / "pwned-remote"
    ck = _remote_code_checkpoint(trained, tmp_path, target)
    result = run_cli(command, ck, trained["data"], "--device", "cpu", "--no-progress", "--max-examples", "6",
                     *(["--steps", "1"] if command == "smoke-train" else []))
    assert result.code == 2
    assert "--trust-remote-code" in one_clean_line(result)
    assert not target.exists()


def test_remote_code_refused_even_for_the_tokenizer(trained, tmp_path):
    """A tokenizer folder with auto_map code is not imported without --trust-remote-code either."""
    target = tmp_path / "pwned-tok"
    tok = clone(trained["checkpoint"], tmp_path / "tok")
    (tok / "tokenization_evil.py").write_text(f"open({str(target)!r}, 'w').write('x')\n")
    cfg = json.loads((tok / "tokenizer_config.json").read_text())
    cfg["auto_map"] = {"AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]}
    (tok / "tokenizer_config.json").write_text(json.dumps(cfg))
    result = run_cli("check-logits", trained["checkpoint"], trained["data"], "--tokenizer", tok, "--device", "cpu",
                     "--no-progress", "--max-examples", "6")
    assert result.code in (0, 1, 2)
    if result.code == 2:
        one_clean_line(result)
    assert not target.exists()


def test_uncached_hub_id_fails_fast(trained, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    t0 = time.perf_counter()
    result = run_cli("check-logits", "nobody/not-a-model-xyz", trained["data"], "--device", "cpu", "--no-progress")
    assert time.perf_counter() - t0 < 30
    assert result.code == 2
    err = one_clean_line(result)
    assert "not-a-model-xyz" in err and "cache" in err


@pytest.mark.slow  # a whole process or a 10 MB input: the full suite runs it, the fast tier does not
def test_uncached_hub_id_without_offline_env_does_not_hang(trained, tmp_path):
    """prepare() itself sets HF_HUB_OFFLINE: no network even when the user did not."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["HF_HOME"] = str(tmp_path / "hf")
    env["HF_ENDPOINT"] = "http://10.255.255.1:9"  # unroutable: a request would hang until its timeout
    code = ("import sys; from labeldiag.cli import main; sys.argv = ['labeldiag', 'check-logits', "
            f"'nobody/not-a-model-xyz', {trained['data']!r}, '--device', 'cpu', '--no-progress']; main()")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert time.perf_counter() - t0 < 90
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr


# --- --debug and internal errors (exit 3) ----------------------------------------------------------

def _boom(*args, **kwargs):
    raise RuntimeError("synthetic internal failure")


def test_internal_error_is_one_line_exit_3(trained, monkeypatch):
    import labeldiag.checks.logits as logits

    monkeypatch.delenv("LABELDIAG_DEBUG", raising=False)
    monkeypatch.setattr(logits, "metrics", _boom)
    result = run_cli("check-logits", trained["checkpoint"], trained["data"], "--device", "cpu", "--no-progress",
                     "--max-examples", "12")
    assert result.code == 3
    err = result.err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("labeldiag: internal error") and "--debug" in err and "synthetic internal failure" in err


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_traceback(trained, monkeypatch, how):
    import labeldiag.checks.logits as logits

    monkeypatch.setattr(logits, "metrics", _boom)
    extra = ["--debug"] if how == "flag" else []
    if how == "env":
        monkeypatch.setenv("LABELDIAG_DEBUG", "1")
    result = run_cli("check-logits", trained["checkpoint"], trained["data"], "--device", "cpu", "--no-progress",
                     "--max-examples", "12", *extra)
    assert result.code == 3
    assert "Traceback" in result.err and "synthetic internal failure" in result.err and "_boom" in result.err


def test_debug_shows_traceback_of_usage_errors_too(trained, tmp_path):
    result = run_cli("check-logits", trained["checkpoint"], tmp_path / "missing.jsonl", "--debug")
    assert result.code == 2 and "Traceback" in result.err and "labeldiag: error:" in result.err
