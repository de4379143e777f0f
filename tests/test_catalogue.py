"""The catalogue of finding codes: declared once, documented in README, matching CONTRACT.md."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


from helpers import run_cli
from labeldiag.catalogue import CATALOGUE, readme_tables

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT.parent / "shared" / "CONTRACT.md"


def test_readme_code_tables_match_the_catalogue():
    assert readme_tables() in (ROOT / "README.md").read_text(), \
        "README's code tables are out of date: regenerate them with labeldiag.catalogue.readme_tables()"


def _emitted_codes() -> dict[str, set[str]]:
    """code -> the places (module:function) that construct a Finding with it, read from the source."""
    import ast

    from labeldiag import catalogue

    places: dict[str, set[str]] = {}
    for path in sorted((ROOT / "labeldiag").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Finding" and node.args:
                    first = node.args[0]
                    code = first.value if isinstance(first, ast.Constant) else \
                        getattr(catalogue, first.id, None) if isinstance(first, ast.Name) else None
                    if code is not None:
                        rel = path.relative_to(ROOT).as_posix()
                        places.setdefault(code, set()).add(f"{rel}:{fn.name}")
    return places


def test_no_module_spells_a_code_as_a_bare_string():
    """Emitters and tables use the catalogue's constants (LABEL_PERMUTATION), so a typo is a NameError and
    a code's every use is found by its name; only catalogue.py spells codes out (docstrings may name them)."""
    import ast

    bare = []
    for path in sorted((ROOT / "labeldiag").rglob("*.py")):
        if path.name == "catalogue.py" and path.parent.name == "labeldiag":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)
                      and isinstance(node.body[0].value, ast.Constant)}
        bare += [f"{path.relative_to(ROOT).as_posix()}:{node.lineno} {node.value!r}" for node in ast.walk(tree)
                 if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in CATALOGUE
                 and id(node) not in docstrings]
    assert not bare, "use the catalogue's constants (from labeldiag.catalogue import ...):\n" + "\n".join(bare)


def test_each_code_is_bound_to_its_constant():
    from labeldiag import catalogue

    for code in CATALOGUE:
        assert getattr(catalogue, code.upper().replace("-", "_"), None) == code, code


def test_every_code_has_exactly_one_judge_in_checks():
    places = _emitted_codes()
    assert set(places) <= set(CATALOGUE), set(places) - set(CATALOGUE)
    for code, where in places.items():
        assert len(where) == 1, f"{code} is judged in more than one place: {sorted(where)}"
        assert next(iter(where)).startswith("labeldiag/checks/"), f"{code} is judged outside checks/: {where}"
    # every catalogued code has its judge (codes retired from use would be listed here)
    assert set(CATALOGUE) - set(places) == set(), set(CATALOGUE) - set(places)


def test_every_contract_code_is_declared_with_its_severity():
    """Every built code is declared; a code of the next round, once declared, has the contract's severity."""
    assert CONTRACT.exists(), f"{CONTRACT} is missing: CI and development keep ../shared beside the checkout"
    built, _, planned = CONTRACT.read_text().partition("## Additions (next round)")
    pattern = r"^\| `([a-z-]+)` \| (error|warning|info) \|"
    rows = re.findall(pattern, built, flags=re.M)
    assert len(rows) >= 35
    for code, severity in rows:
        assert code in CATALOGUE, code
        assert CATALOGUE[code].severity == severity, code
    for code, severity in re.findall(pattern, planned, flags=re.M):
        if code in CATALOGUE:
            assert CATALOGUE[code].severity == severity, code


def test_every_code_has_what_why_fix():
    for info in CATALOGUE.values():
        assert info.what and info.why and info.fix and info.severity in ("error", "warning", "info")


def test_every_fact_of_a_row_names_declared_codes_stages_and_commands():
    """doctor's ranking, its moot stages, the next command and fix's repairs all read the rows."""
    from labeldiag.repair import FIXERS

    ranks = [info.cause_rank for info in CATALOGUE.values() if info.cause_rank is not None]
    assert len(ranks) == len(set(ranks)), "two root causes share a rank"
    for info in CATALOGUE.values():
        assert info.explains <= set(CATALOGUE), (info.code, info.explains - set(CATALOGUE))
        assert not info.explains or info.cause_rank is not None, f"{info.code} explains codes but has no rank"
        assert info.moot is None or info.moot.stage in ("grad-flow", "smoke-train"), info.code
        assert info.next_command in ("fix", "smoke-train", "grad-flow", "explain", "doctor"), info.code
        assert info.fix_opt_in is None or info.fixable, info.code
    assert set(FIXERS) == {info.code for info in CATALOGUE.values() if info.fixable}


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
