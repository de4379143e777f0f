"""Rich report: header, each command's own section, findings sorted by severity with hints, and a
footer naming the command to run next."""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from labeldiag.catalogue import CATALOGUE, LABEL_PERMUTATION
from labeldiag.errors import strip_control
from labeldiag.render.text import fmt, print_packed, safe

if TYPE_CHECKING:
    from labeldiag.findings import Report


STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
SECTIONS: dict[str, Callable[[Report, Console], None]] = {}
ROW_LABEL_WIDTH = 20  # confusion-matrix row labels ("index:name") are cut to this
HEADER_WIDTH = 14  # a column header "index:name" is cut to this while names fit at all


def section(command: str):
    """Register the function that draws one command's own part of the report."""
    def wrap(fn):
        if command in SECTIONS:
            raise ValueError(f"section for {command} registered twice")
        SECTIONS[command] = fn
        return fn
    return wrap


def make_console(to_stderr: bool) -> Console:
    # soft wrap: commands, paths and messages stay one line each (the terminal folds them, a copy
    # pastes them whole); tables still fit the width
    return Console(stderr=to_stderr, highlight=False, soft_wrap=True)


def render_report(report: Report, console: Console, *, elapsed_s: float | None = None,
                  command_line: str | None = None, commands: Mapping[str, Any] | None = None,
                  written: list[str] = ()) -> None:
    """The whole console report; `elapsed_s` (default report.elapsed_s) is the time the footer shows,
    `command_line` the one the user typed, whose options the suggested next command keeps (parsed with
    `commands`, the CLI's click commands by name, which the CLI hands down), and `written` says which
    files were written (shown before the footer, so the next command is last)."""
    m, d = report.model, report.data
    console.rule(f"[bold]labeldiag {report.command}")
    labels = m.get("id2label") or {}
    names = ", ".join(safe(v) for v in list(labels.values())[:6]) + (", ..." if len(labels) > 6 else "")
    console.print(f"[bold]model[/]  {safe(m.get('path'))}  ({safe(m.get('class'))}, {m.get('num_labels')} labels"
                  + (f": {names}" if names else "") + ")")
    if m.get("task"):
        console.print(f"[bold]task[/]   {safe(m['task'])}  ({safe(m.get('task_source'))})")
    if d:
        counts = {k: v for k, v in (d.get("label_counts") or {}).items() if v}  # the classes DATA holds
        if counts:
            label_txt = ", ".join(f"{safe(k)} {v}" for k, v in list(counts.items())[:6]) + (
                f", ... ({len(counts)} classes)" if len(counts) > 6 else "")
        else:
            label_txt = "labelled" if d.get("labelled") else "unlabelled"
        console.print(f"[bold]data[/]   {safe(d.get('path'))}  ({d.get('examples')} examples; {label_txt})")
    console.print(f"[bold]device[/] {safe(report.device)}" + (f"  ({report.metrics.get('precision')})"
                                                               if report.metrics.get("precision") else ""))
    for note in report.notes:
        console.print(f"[dim]note: {safe(note)}[/]")
    draw = SECTIONS.get(report.command)
    if draw is not None:
        draw(report, console)
    from labeldiag.render.shapes import render_shape_metrics

    render_shape_metrics(report, console)
    console.print()
    findings = report.sorted_findings()
    if not findings:
        console.print("[bold green]no findings[/]: nothing degenerate was detected")
    # doctor shows its problems ranked, symptoms under their cause, in its own section
    listed = [f for f in findings if f.severity == "info"] if report.command == "doctor" else findings
    for f in listed:
        head = Text.assemble((f"{f.severity.upper():8}", STYLE[f.severity]), (f"{f.code}", "bold"), ": ",
                             strip_control(f.message))
        console.print(head)
        corrected = f.evidence.get("suggested_id2label") if f.code == LABEL_PERMUTATION else None
        if corrected:
            console.print(Text(f"         corrected id2label: {strip_control(json.dumps(corrected))}"))
        console.print(Text(f"         fix: {strip_control(f.hint)}", style="dim"))
    for line in written:
        console.print(Text(strip_control(line), style="dim"))
    render_footer(report, console, report.elapsed_s if elapsed_s is None else elapsed_s, command_line, commands)


def render_footer(report: Report, console: Console, elapsed_s: float, command_line: str | None,
                  commands: Mapping[str, Any] | None = None) -> None:
    """Counts and time, then the one command to run next for the worst finding (on a line of its own)."""
    findings = report.sorted_findings()
    errors = sum(f.severity == "error" for f in findings)
    warnings = sum(f.severity == "warning" for f in findings)
    console.print(f"\n{errors} error(s), {warnings} warning(s) in {elapsed_s:.1f} s")
    step = next_step(report, command_line, commands)
    if step is not None:
        why, command = step
        console.print(Text(f"next, {why}:", style="bold"))
        console.print(Text(f"  {strip_control(command)}"), soft_wrap=True)
    elif findings:
        console.print("[dim]labeldiag explain CODE tells more about a finding[/]")


# What each catalogue row's next_command runs, in order of preference; one that has already run (with
# the flags named) is passed over, and when every one has run, `labeldiag explain CODE` is next. A code
# whose next command is fix goes there only when fix can prove the edit from this report's evidence.
CANDIDATES: dict[str, list[tuple[str, list[str]]]] = {
    "smoke-train": [("smoke-train", ["--triage"]), ("grad-flow", [])], "grad-flow": [("grad-flow", [])],
    "explain": [], "doctor": [("doctor", [])]}
WHY = {"fix": "a corrected copy of the checkpoint", "smoke-train": "which change lets one batch fit",
       "grad-flow": "where the gradient goes and where it stops",
       "doctor": "every check on one loaded model, root cause first"}
# options that belong to one run (its outputs and its sizes) rather than to the model and data
RUN_ONLY = {"json", "plot", "html", "max_examples", "lr", "steps", "target_loss", "triage", "fail_on", "debug"}
DOCTOR_STAGES = ("check-logits", "grad-flow", "smoke-train")


def next_step(report: Report, command_line: str | None = None,
              commands: Mapping[str, Any] | None = None) -> tuple[str, str] | None:
    """(why, command) to run next for the worst error or warning; None when there is none."""
    from labeldiag.repair import repairable
    if report.command == "doctor" and report.diagnosis:
        code = report.diagnosis[0].code
    else:
        worst = next((f for f in report.sorted_findings() if f.severity != "info"), None)
        if worst is None:
            return None
        code = worst.code
    next_command = CATALOGUE[code].next_command
    if next_command == "fix":
        finding = report.get(code)
        candidates = [("fix", [])] if finding is not None and repairable(finding, report) else []
    else:
        candidates = CANDIDATES[next_command]
    for command, extra in candidates:
        if not _has_run(report, command, extra):
            model, data, options = _carried_options(report, command, extra, command_line, commands)
            if command == "fix":  # a new folder next to the checkpoint; fix never writes in place
                extra = ["--out", f"{model.rstrip('/')}-fixed" if model != "MODEL" else "FIXED_DIR"]
            return WHY[command], shlex.join(["labeldiag", command, model, data, *options, *extra])
    return "what it means and how to fix it", f"labeldiag explain {code}"


def _has_run(report: Report, command: str, extra: list[str]) -> bool:
    ran = command == report.command or (report.command == "doctor" and command in DOCTOR_STAGES)
    if ran and "--triage" in extra:
        return bool(report.training and report.training.triage)
    return ran


def _carried_options(report: Report, target: str, extra: list[str], command_line: str | None,
                     commands: Mapping[str, Any] | None) -> tuple[str, str, list[str]]:
    """MODEL, DATA and the options the user gave that say how to read them (a tokenizer, a column, a
    model class, ...), for `target`; the report's own paths when there is no command line."""
    model, data = (str(report.model.get("path") or "MODEL"), str((report.data or {}).get("path") or "DATA"))
    model = "MODEL" if model.startswith("<") else model
    data = "DATA" if data.startswith("<") else data
    words = shlex.split(command_line or "")
    if commands is None or len(words) < 2 or words[1] != report.command:
        return model, data, []
    try:
        ctx = commands[report.command].make_context(report.command, words[2:], resilient_parsing=True)
    except Exception:  # it parsed once already, for this run; failing now only loses the options
        return model, data, []
    given = {name for name in ctx.params if ctx.get_parameter_source(name).name == "COMMANDLINE"}
    carried = []
    for param in commands[target].params:
        if param.param_type_name != "option" or param.name not in given:
            continue
        if param.name in RUN_ONLY and target != report.command:
            continue
        if param.name in ("json", "plot", "html") or param.opts[0] in extra:
            continue
        value = ctx.params[param.name]
        if param.is_flag:
            carried += [param.opts[0]] if value else []
        elif value is not None:
            carried += [param.opts[0], str(value)]
    return str(ctx.params.get("model") or model), str(ctx.params.get("data") or data), carried


@section("check-logits")
def _check_logits(report: Report, console: Console) -> None:
    lg = report.logits
    if lg is None:
        return
    matrix, names = [list(row) for row in lg.confusion_matrix or ()], list(lg.confusion_labels or ())
    if matrix and names and any(map(any, matrix)):
        console.print("confusion matrix: gold label (rows) x predicted logit (columns)")
        view = confusion_view(matrix, names, console.width)
        console.print(view.table)
        for line in view.notes:
            console.print(Text(line, style="dim"))
    elif lg.prediction_histogram:
        hist = ", ".join(f"{safe(k)}: {v}" for k, v in lg.prediction_histogram.items())
        console.print(f"predictions: {hist}")
    shown = [("accuracy", lg.accuracy), ("macro-F1", lg.macro_f1), ("mean entropy", lg.mean_entropy),
             ("ln C", lg.ln_num_labels), ("mean max prob", lg.mean_max_probability),
             ("ECE", lg.expected_calibration_error),
             ("feature cosine", report.representation.mean_cosine if report.representation else None)]
    print_packed(console, [f"{label} {fmt(value)}" for label, value in shown if value is not None])


@dataclass
class ConfusionView:
    """A confusion matrix cut to fit a width: the gold classes present as rows, the predicted logits as
    columns (the least predicted folded into one 'other' column when they do not fit)."""

    rows: list[int]
    columns: list[int]
    folded: list[int]  # predicted logits counted in the 'other' column
    table: Table
    notes: list[str]


def confusion_axes(matrix: list[list[int]]) -> tuple[list[int], list[int], list[int]]:
    """Rows: the gold classes present. Columns: the logits predicted and the rows' own logits. Ranked:
    the predicted logits in the order they earn a column when not all fit (the rows' own logits, the
    correct answers, first; then the most predicted); logits never predicted are all zero."""
    size = len(matrix)
    rows = [i for i in range(size) if any(matrix[i])]
    predicted = [sum(matrix[i][j] for i in rows) for j in range(size)]
    columns = sorted({j for j in range(size) if predicted[j]} | set(rows))
    ranked = sorted((j for j in range(size) if predicted[j]), key=lambda j: (j not in rows, -predicted[j], j))
    return rows, columns, ranked


def confusion_view(matrix: list[list[int]], names: list[Any], width: int) -> ConfusionView:
    size = len(matrix)
    label = [strip_control(str(names[i])) if i < len(names) else str(i) for i in range(size)]
    rows, columns, ranked = confusion_axes(matrix)
    for named in (True, False):  # names in the header while they fit, else indices and a legend
        table = _confusion_table(matrix, label, rows, columns, [], named)
        if _natural_width(table) <= width:
            return ConfusionView(rows, columns, [], table, _confusion_notes(label, rows, columns, [], named, size))
    for keep in range(len(ranked), 0, -1):  # as many ranked logits as fit; the rest go into 'other'
        shown, folded = sorted(ranked[:keep]), sorted(ranked[keep:])
        table = _confusion_table(matrix, label, rows, shown, folded, False)
        if keep == 1 or _natural_width(table) <= width:
            break
    return ConfusionView(rows, shown, folded, table, _confusion_notes(label, rows, shown, folded, False, size))


def _confusion_table(matrix, label, rows, columns, folded, named: bool) -> Table:
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, show_edge=False)
    table.add_column("gold \\ logit", style="bold", no_wrap=True, max_width=ROW_LABEL_WIDTH)
    for j in columns:
        table.add_column(Text(f"{j}:{label[j]}"[:HEADER_WIDTH] if named else str(j)), justify="right", no_wrap=True)
    if folded:
        table.add_column("other", justify="right", no_wrap=True)
    for i in rows:
        cells = [Text(str(matrix[i][j]), style=("green" if i == j else "red") if matrix[i][j] else "dim")
                 for j in columns]
        if folded:
            rest = sum(matrix[i][j] for j in folded)
            cells.append(Text(str(rest), style="yellow" if rest else "dim"))
        table.add_row(Text(f"{i}:{label[i]}", overflow="ellipsis"), *cells)
    return table


def _confusion_notes(label, rows, columns, folded, named: bool, size: int) -> list[str]:
    notes = []
    unnamed = [j for j in columns if j not in rows]
    if not named and unnamed:
        notes.append("logits: " + ", ".join(f"{j}:{label[j]}" for j in unnamed))
    if folded:
        notes.append(f"other: the {len(folded)} less predicted logits " + ", ".join(map(str, folded)))
    if len(rows) < size:
        notes.append(f"{size - len(rows)} of the {size} classes have no gold example here (no row)")
    return notes


def _natural_width(table: Table) -> int:
    from rich.measure import Measurement

    wide = Console(width=10_000, highlight=False)
    return Measurement.get(wide, wide.options, table).maximum
