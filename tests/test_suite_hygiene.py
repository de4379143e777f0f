"""The suite itself: every test module tests labeldiag, and a labeldiag import that fails is a failure."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
# modules of this folder that import labeldiag themselves, so importing them counts
HELPERS = {"helpers", "zoo", "zoo_models", "conftest"}
# modules whose subject is a file, not a labeldiag module: README's example (run with exec), this suite
SUBJECT_IS_A_FILE = {"test_readme.py": "README.md", "test_suite_hygiene.py": "tests/",
                     "test_layers.py": "labeldiag/ (its imports, read with ast)"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("importorskip", "import_module"):
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(arg.value.split(".")[0])
    return names


def test_every_test_module_imports_what_it_tests():
    idle = [p.name for p in sorted(TESTS.glob("test_*.py"))
            if p.name not in SUBJECT_IS_A_FILE and not _imports(p) & ({"labeldiag", "examples"} | HELPERS)]
    assert not idle, f"test modules that import nothing they test: {idle}"


def test_no_labeldiag_import_is_turned_into_a_skip():
    """pytest.importorskip('labeldiag...') or a try/except around a labeldiag import would hide a broken module."""
    offenders = []
    for path in sorted(TESTS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "importorskip":
                arg = node.args[0] if node.args else None
                text = ast.unparse(arg) if arg is not None else ""
                if "labeldiag" in text:
                    offenders.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.Try):
                guarded = ast.unparse(ast.Module(body=node.body, type_ignores=[]))
                handlers = " ".join(ast.unparse(h) for h in node.handlers)
                if "labeldiag" in guarded and "import" in guarded and "skip" in handlers:
                    offenders.append(f"{path.name}:{node.lineno}")
    assert not offenders, f"labeldiag imports that skip instead of failing: {offenders}"


@pytest.mark.xdist_group("hygiene")
def test_xdist_groups_are_honoured(request):
    """Modules sharing a real model's build rely on --dist loadgroup keeping their group on one worker."""
    if not request.config.getoption("loadgroup", False):  # set on xdist workers under --dist loadgroup
        pytest.skip("not run with --dist loadgroup")
    assert request.node.nodeid.endswith("@hygiene"), (
        f"{request.node.nodeid}: pytest-xdist did not tag the group, so xdist_group modules each build "
        "their shared real model again; see the pytest pin in pyproject.toml")
