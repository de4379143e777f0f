"""The layers of labeldiag, read from its source with ast (nothing of labeldiag is imported, so this runs
in about a second): measure/ runs the model, checks/ judges records, render/ shows, the CLI wires.

Every import counts, at module level or inside a function; an import under `if TYPE_CHECKING:` does not
(it never runs). A relative import is read as Python reads it.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "labeldiag"

# what checks/ may import besides itself: the records it judges and what a verdict is made of
CHECKS_MAY_IMPORT = {"labeldiag.records", "labeldiag.findings", "labeldiag.thresholds", "labeldiag.catalogue",
                     # UsageError: check_predictions refuses malformed arrays with the CLI's one line (exit 2);
                     # errors imports nothing but the standard library
                     "labeldiag.errors"}
# who may import render/: the CLI, render itself, and findings, whose Report shows itself in a notebook
# (render reads Report only under TYPE_CHECKING, so this is no cycle)
MAY_IMPORT_RENDER = {"labeldiag.cli", "labeldiag.findings"}


def module_files(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module under `package` (a package is its __init__.py)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _runs(tree: ast.AST):
    """Every node that can run: the bodies of `if TYPE_CHECKING:` are left out."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for other in node.orelse:
                yield other
                yield from _runs(other)
            continue
        yield node
        yield from _runs(node)


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> dict[str, int]:
    """The labeldiag modules `name` imports -> the line of the first such import."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in _runs(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import sub` imports the submodule; `from mod import name` the module
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target not in modules and "." in target:
                target = target.rpartition(".")[0]
            if target in modules and target != name:
                found.setdefault(target, node.lineno)
    return found


def import_graph(package: Path = PACKAGE) -> dict[str, dict[str, int]]:
    modules = module_files(package)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def _layer(name: str) -> str:
    """'labeldiag.measure.forward' -> 'measure', 'labeldiag.cli' -> 'cli', 'labeldiag' -> ''."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def _within(name: str, allowed: set[str]) -> bool:
    return any(name == a or name.startswith(a + ".") for a in allowed)


def layer_violations(graph: dict[str, dict[str, int]]) -> list[str]:
    out = []
    for name, targets in sorted(graph.items()):
        layer = _layer(name)
        for target, line in sorted(targets.items()):
            reason = None
            if layer == "measure" and _layer(target) in ("checks", "render", "pipeline", "cli"):
                reason = "measure/ returns records: it imports neither checks/, render/, pipeline/ nor the CLI"
            elif layer == "load" and _layer(target) in ("pipeline", "render", "cli"):
                reason = "load/ imports neither pipeline/, render/ nor the CLI"
            elif layer == "checks" and _layer(target) != "checks" and not _within(target, CHECKS_MAY_IMPORT):
                reason = "checks/ imports only " + ", ".join(sorted(CHECKS_MAY_IMPORT))
            elif _layer(target) == "cli" and name != "labeldiag.__main__":
                reason = "nothing but __main__ imports the CLI"
            elif _layer(target) == "render" and layer != "render" and name not in MAY_IMPORT_RENDER:
                reason = "progress and output are handed down by the CLI: nothing below it imports render/"
            if reason:
                out.append(f"{name} imports {target} (line {line}): {reason}")
    return out


def import_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(cycles)


def problems(graph: dict[str, dict[str, int]]) -> list[str]:
    return layer_violations(graph) + [
        f"import cycle among {len(c)} modules: {', '.join(c)}" for c in import_cycles(graph)]


def test_the_layers_hold():
    graph = import_graph()
    assert len(graph) > 50 and graph["labeldiag.checks.logits"], "the module graph was not read"
    found = problems(graph)
    assert not found, "layer violations:\n  " + "\n  ".join(found)


def test_the_guard_fails_on_a_cycle_and_on_each_layer_violation():
    graph = {
        "labeldiag.findings": {"labeldiag.catalogue": 1},
        "labeldiag.catalogue": {"labeldiag.findings": 3},  # a cycle of two
        "labeldiag.checks.logits": {"labeldiag.measure.forward": 4, "labeldiag.errors": 5, "labeldiag.records": 6},
        "labeldiag.measure.forward": {"labeldiag.checks.logits": 7, "labeldiag.render.progress": 8},
        "labeldiag.load.data": {"labeldiag.pipeline.common": 9},
        "labeldiag.pipeline.common": {"labeldiag.cli": 10},
        "labeldiag.render.progress": {}, "labeldiag.cli": {}, "labeldiag.errors": {}, "labeldiag.records": {},
    }
    found = problems(graph)
    assert [f.split(" (line")[0] for f in found if not f.startswith("import cycle")] == [
        "labeldiag.checks.logits imports labeldiag.measure.forward",
        "labeldiag.load.data imports labeldiag.pipeline.common",
        "labeldiag.measure.forward imports labeldiag.checks.logits",
        "labeldiag.measure.forward imports labeldiag.render.progress",
        "labeldiag.pipeline.common imports labeldiag.cli",
    ], found
    assert import_cycles(graph) == [["labeldiag.catalogue", "labeldiag.findings"],
                                    ["labeldiag.checks.logits", "labeldiag.measure.forward"]]


def test_imports_are_read_as_python_runs_them(tmp_path):
    package = tmp_path / "labeldiag"
    (package / "measure").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "errors.py").write_text("")
    (package / "measure" / "__init__.py").write_text("")
    (package / "measure" / "forward.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import runtime\n"  # a sibling submodule, relative
        "from ..errors import UsageError\n"  # a name of a module one level up
        "if TYPE_CHECKING:\n    from labeldiag.render import console\n"  # never runs: not an import
        "def later():\n    import labeldiag.checks.logits\n")  # inside a function: an import
    (package / "measure" / "runtime.py").write_text("")
    (package / "checks").mkdir()
    (package / "checks" / "__init__.py").write_text("")
    (package / "checks" / "logits.py").write_text("")
    (package / "render").mkdir()
    (package / "render" / "__init__.py").write_text("")
    (package / "render" / "console.py").write_text("")
    graph = import_graph(package)
    assert graph["labeldiag.measure.forward"] == {"labeldiag.measure.runtime": 2, "labeldiag.errors": 3,
                                                  "labeldiag.checks.logits": 7}
    assert problems(graph) == ["labeldiag.measure.forward imports labeldiag.checks.logits (line 7): measure/ returns "
                               "records: it imports neither checks/, render/, pipeline/ nor the CLI"]
