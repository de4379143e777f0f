"""Every command leaves MODEL and DATA byte-identical, and creates no file inside them."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from helpers import clone, run_cli


def fingerprint(root: Path) -> dict[str, tuple[str, int, int]]:
    """sha256, size and mtime of every file under root (or of root itself when it is a file)."""
    root = Path(root)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*"))
    out = {}
    for p in files:
        st = p.stat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        out[str(p.relative_to(root.parent))] = (digest, st.st_size, st.st_mtime_ns)
    return out


RUNS = {
    "check-logits": ["--max-examples", "30"],
    "grad-flow": ["--max-examples", "8"],
    "smoke-train": ["--max-examples", "6", "--steps", "3"],
}


@pytest.mark.parametrize("command", list(RUNS))
def test_command_is_read_only(trained, tmp_path, monkeypatch, command):
    ck = clone(trained["checkpoint"], tmp_path / "ckpt")
    data = tmp_path / "data" / "test.jsonl"
    data.parent.mkdir()
    data.write_bytes(Path(trained["data"]).read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = {**fingerprint(ck), **fingerprint(data.parent)}
    dir_mtimes = (ck.stat().st_mtime_ns, data.parent.stat().st_mtime_ns)
    result = run_cli(command, ck, data, *RUNS[command], "--device", "cpu", "--no-progress",
                     "--json", out / "r.json", "--plot", out / "p.png", "--fail-on", "never")
    assert result.code == 0, result.err
    assert {**fingerprint(ck), **fingerprint(data.parent)} == before
    assert (ck.stat().st_mtime_ns, data.parent.stat().st_mtime_ns) == dir_mtimes
    assert sorted(p.name for p in out.iterdir()) == ["p.png", "r.json"]
    assert list(cwd.iterdir()) == []
