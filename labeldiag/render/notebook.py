"""How a Report shows itself outside the CLI: in Jupyter (an HTML view that wraps to the cell's width),
under rich.print (the CLI's text), and as the figure and the page the API hands back."""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any, Iterator

NOTEBOOK_CLASS = "labeldiag-report"


def _recorded(report: Any, width: int):
    from rich.console import Console

    from labeldiag.render.console import render_report

    console = Console(record=True, file=io.StringIO(), width=width, highlight=False, force_terminal=True,
                      color_system="truecolor")
    render_report(report, console)
    return console


def report_renderables(report: Any, width: int = 100) -> Iterator[Any]:
    from rich.text import Text

    yield Text.from_ansi(_recorded(report, width).export_text(styles=True).rstrip("\n"))


def report_figure(report: Any, path: str | None = None) -> Any:
    """The command's figure (a matplotlib Figure, as --plot draws it); also written as PNG at `path`."""
    import importlib

    from labeldiag.errors import UsageError
    from labeldiag.render.deliver import VIEWS

    if path is not None and Path(path).suffix.lower() not in ("", ".png"):
        raise UsageError(f"plot path '{path}': figures are PNG files; give a name ending in .png")
    _, module, name = VIEWS.get(report.command, (None, "labeldiag.render.plots", "plot_confusion"))
    return getattr(importlib.import_module(module), name)(report, None if path is None else str(path))


def report_page(report: Any) -> str:
    """The self-contained HTML page that --html writes, with the figure inlined."""
    from labeldiag.render.html import render_html

    png = io.BytesIO()
    report_figure(report).savefig(png, format="png", dpi=100)
    return render_html(report, command_line=_call_text(report), environment=report.environment,
                       figures=[(f"{report.command} figure", png.getvalue())])


def report_html(report: Any) -> str:
    """The notebook view: the page's sections (no figure, no environment) in a <div> whose styles apply
    to it alone and whose text and tables wrap to the width of the output cell."""
    from labeldiag.render.html import STYLE, render_html

    page = render_html(report, command_line=_call_text(report), environment={}, figures=())
    body = page[page.index("<main>") + len("<main>"):page.rindex("</main>")]
    body = re.sub(r'<section id="environment">.*?</section>', "", body, flags=re.S)
    return (f'<div class="{NOTEBOOK_CLASS}"><style>{_scoped(STYLE)}\n.{NOTEBOOK_CLASS} {{ max-width: 100%; '
            f"overflow-wrap: anywhere; }}\n.{NOTEBOOK_CLASS} h1 {{ font-size: 1.25rem; }}</style>{body}</div>")


def _call_text(report: Any) -> str:
    return f"labeldiag.{report.command.replace('-', '_')}(...)" if report.command != "callback" else \
        "LabelDiagCallback"


def _scoped(css: str) -> str:
    """The page's stylesheet with every selector scoped to the notebook view's <div>, so it cannot restyle
    the rest of the notebook (the page's `body`, `:root` and `main` rules become the div's)."""
    out = []
    for selectors, block in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        scoped = []
        for sel in (s.strip() for s in selectors.split(",")):
            if sel in (":root", "body", "main"):
                scoped.append(f".{NOTEBOOK_CLASS}")
            else:
                scoped.append(f".{NOTEBOOK_CLASS} {sel}")
        out.append(f"{', '.join(scoped)} {{{block}}}")
    return "\n".join(out)
