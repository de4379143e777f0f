"""Everything the CLI shows or writes for a report: the console view, --json, --plot, --html."""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from labeldiag.errors import UsageError

if TYPE_CHECKING:
    from labeldiag.findings import Report


# the module that draws a command's own console section (registered on import) and its figure
VIEWS = {"check-logits": ("labeldiag.render.console", "labeldiag.render.plots", "plot_confusion"),
         "grad-flow": ("labeldiag.render.grad_flow", "labeldiag.render.grad_flow", "plot_grad_flow"),
         "smoke-train": ("labeldiag.render.smoke_train", "labeldiag.render.smoke_train", "plot_training"),
         "doctor": ("labeldiag.render.doctor", "labeldiag.render.plots", "plot_confusion")}


@dataclass(frozen=True)
class Outputs:
    json_path: str | None = None
    plot_path: str | None = None
    html_path: str | None = None
    fail_on: str = "error"
    command_line: str = ""
    commands: Mapping[str, Any] | None = None  # the CLI's click commands by name: command_line is parsed with them

    def paths(self) -> dict[str, str | None]:
        return {"--json": self.json_path, "--plot": self.plot_path, "--html": self.html_path}


def check_outputs(out: Outputs, model: str, data: str, tokenizer: str | None) -> None:
    """Before any work: every output path is writable and harms no input."""
    from labeldiag.options import check_fail_on
    from labeldiag.render.output import check_writable, guard_output_paths

    check_fail_on(out.fail_on)
    if out.plot_path == "-":
        raise UsageError("--plot needs a file name (a PNG cannot go to stdout)")
    if out.html_path == "-":
        raise UsageError("--html needs a file name")
    if out.plot_path and Path(out.plot_path).suffix.lower() not in ("", ".png"):
        raise UsageError(f"--plot '{out.plot_path}': figures are PNG files; give a name ending in .png")
    if out.html_path and Path(out.html_path).suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"--html '{out.html_path}': give a name ending in .html")
    for flag, path in out.paths().items():
        check_writable(path, flag)
    guard_output_paths(out.paths(), model, data, tokenizer)


def deliver(report: Report, out: Outputs) -> None:
    """The files asked for, then the console report (stderr when the JSON goes to stdout), whose footer
    time covers the command and the drawing, and whose last line is the command to run next."""
    from labeldiag.render.console import make_console, render_report
    from labeldiag.render.output import write_json

    started = time.perf_counter()
    section, plot_module, plot_name = VIEWS.get(report.command, ("labeldiag.render.console", None, None))
    importlib.import_module(section)
    written = []
    figure = None
    if out.plot_path and plot_module:
        getattr(importlib.import_module(plot_module), plot_name)(report, out.plot_path)
        figure = out.plot_path
    html_figures = []
    if out.html_path and plot_module:
        html_figures = [figure_bytes(report, plot_module, plot_name, figure)]
    if out.json_path and out.json_path != "-":
        write_json(report, out.json_path)
        written.append(f"JSON report written to {out.json_path}")
    if figure:
        written.append(f"figure written to {figure}")
    if out.html_path:
        write_html(report, out, html_figures)
        written.append(f"HTML report written to {out.html_path}")
    console = make_console(to_stderr=out.json_path == "-")
    render_report(report, console, elapsed_s=report.elapsed_s + time.perf_counter() - started,
                  command_line=out.command_line, commands=out.commands, written=written)
    if out.json_path == "-":
        write_json(report, out.json_path)


def figure_bytes(report: Report, plot_module: str, plot_name: str, written: str | None) -> tuple[str, bytes]:
    """The command's figure as PNG bytes: the --plot file, or drawn into a temporary file for --html."""
    import tempfile

    if written:
        return Path(written).name, Path(written).read_bytes()
    with tempfile.TemporaryDirectory(prefix="labeldiag-") as tmp:
        path = str(Path(tmp) / "figure.png")
        getattr(importlib.import_module(plot_module), plot_name)(report, path)
        return f"{report.command} figure", Path(path).read_bytes()


def write_html(report: Report, out: Outputs, figures: list[tuple[str, bytes]]) -> None:
    from labeldiag.render.html import render_html
    from labeldiag.render.output import _atomic_write

    page = render_html(report, command_line=out.command_line, environment=report.environment,
                       figures=figures)
    _atomic_write(Path(out.html_path), page.encode("utf-8"), "--html")
