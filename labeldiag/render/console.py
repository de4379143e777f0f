"""Rich report: header, findings sorted by severity with hints, then each command's own section."""
from __future__ import annotations

from typing import Any, Callable

from rich.console import Console
from rich.table import Table
from rich.text import Text

from labeldiag.findings import Report

STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
SECTIONS: dict[str, Callable[[Report, Console], None]] = {}


def section(command: str):
    """Register the function that draws one command's own part of the report."""
    def wrap(fn):
        if command in SECTIONS:
            raise ValueError(f"section for {command} registered twice")
        SECTIONS[command] = fn
        return fn
    return wrap


def make_console(to_stderr: bool) -> Console:
    return Console(stderr=to_stderr, highlight=False, soft_wrap=False)


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.2e}"
        return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return str(value)


def render_report(report: Report, console: Console) -> None:
    m, d = report.model, report.data
    console.rule(f"[bold]labeldiag {report.command}")
    labels = m.get("id2label") or {}
    names = ", ".join(str(v) for v in list(labels.values())[:6]) + (", ..." if len(labels) > 6 else "")
    console.print(f"[bold]model[/]  {m.get('path')}  ({m.get('class')}, {m.get('num_labels')} labels"
                  + (f": {names}" if names else "") + ")")
    if d:
        counts = d.get("label_counts") or {}
        label_txt = ", ".join(f"{k} {v}" for k, v in list(counts.items())[:6]) if counts else (
            "labelled" if d.get("labelled") else "unlabelled")
        console.print(f"[bold]data[/]   {d.get('path')}  ({d.get('examples')} examples; {label_txt})")
    console.print(f"[bold]device[/] {report.device}" + (f"  ({report.metrics.get('precision')})"
                                                         if report.metrics.get("precision") else ""))
    for note in report.notes:
        console.print(f"[dim]note: {note}[/]")
    draw = SECTIONS.get(report.command)
    if draw is not None:
        draw(report, console)
    console.print()
    findings = report.sorted_findings()
    if not findings:
        console.print("[bold green]no findings[/]: nothing degenerate was detected")
    for f in findings:
        head = Text.assemble((f"{f.severity.upper():8}", STYLE[f.severity]), (f"{f.code}", "bold"), ": ", f.message)
        console.print(head)
        console.print(Text(f"         fix: {f.hint}", style="dim"))
    errors = sum(f.severity == "error" for f in findings)
    warnings = sum(f.severity == "warning" for f in findings)
    console.print(f"\n{errors} error(s), {warnings} warning(s) in {report.elapsed_s:.1f} s"
                  "   (labeldiag explain CODE tells more about a finding)")


@section("check-logits")
def _check_logits(report: Report, console: Console) -> None:
    m = report.metrics
    matrix, names = m.get("confusion_matrix"), m.get("confusion_labels")
    if matrix and names:
        console.print("confusion matrix: gold label (rows) x predicted logit (columns)")
        table = Table()
        table.add_column("gold \\ logit", style="bold")
        for i, name in enumerate(names):
            table.add_column(f"{i}:{name}"[:18], justify="right")
        for i, row in enumerate(matrix):
            cells = [Text(str(v), style="green" if i == j and v else ("red" if v and i != j else "dim"))
                     for j, v in enumerate(row)]
            table.add_row(f"{names[i]}"[:18], *cells)
        console.print(table)
    elif m.get("prediction_histogram"):
        hist = ", ".join(f"{k}: {v}" for k, v in m["prediction_histogram"].items())
        console.print(f"predictions: {hist}")
    keys = [("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("mean_entropy", "mean entropy"),
            ("ln_num_labels", "ln C"), ("mean_max_probability", "mean max prob"),
            ("expected_calibration_error", "ECE"), ("representation_mean_cosine", "feature cosine")]
    parts = [f"{label} {fmt(m.get(k))}" for k, label in keys if m.get(k) is not None]
    if parts:
        console.print("   ".join(parts))
