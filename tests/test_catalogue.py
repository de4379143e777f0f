"""The catalogue of finding codes: declared once, documented in README, matching CONTRACT.md."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import run_cli
from labeldiag.catalogue import CATALOGUE, markdown_table

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT.parent / "shared" / "CONTRACT.md"


@pytest.mark.parametrize("command", ["all", "check-logits", "grad-flow", "smoke-train"])
def test_readme_code_tables_match_the_catalogue(command):
    assert markdown_table(command) in (ROOT / "README.md").read_text(), \
        "README's code table is out of date: regenerate it from labeldiag.catalogue.markdown_table"


@pytest.mark.skipif(not CONTRACT.exists(), reason="../shared/CONTRACT.md not beside the checkout")
def test_every_contract_code_is_declared_with_its_severity():
    rows = re.findall(r"^\| `([a-z-]+)` \| (error|warning|info) \|", CONTRACT.read_text(), flags=re.M)
    assert len(rows) >= 35
    for code, severity in rows:
        assert code in CATALOGUE, code
        assert CATALOGUE[code].severity == severity, code


def test_every_code_has_what_why_fix():
    for info in CATALOGUE.values():
        assert info.what and info.why and info.fix and info.severity in ("error", "warning", "info")


def test_explain_prints_a_code_and_refuses_unknown_ones():
    res = run_cli("explain", "label-permutation")
    assert res.code == 0 and "label-permutation" in res.out and "fix" in res.out
    res = run_cli("explain", "label-permutaton")
    assert res.code == 2 and "did you mean 'label-permutation'" in res.err
    assert run_cli("explain", "--list").out.count("\n") >= len(CATALOGUE)


def test_help_does_not_import_torch_or_transformers():
    code = ("import sys\nfrom labeldiag.cli import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
            "for cmd in ('check-logits', 'grad-flow', 'smoke-train'):\n    try:\n        app([cmd, '--help'])\n"
            "    except SystemExit:\n        pass\n"
            "print('heavy:', 'torch' in sys.modules, 'transformers' in sys.modules, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "heavy: False False" in out.stderr, out.stderr[-500:]
    assert "--model-class" in out.stdout and "--fail-on" in out.stdout


def test_python_dash_m_runs_the_same_cli():
    out = subprocess.run([sys.executable, "-m", "labeldiag", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("labeldiag ")
