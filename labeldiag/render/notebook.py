"""How a Report shows itself in Jupyter and under rich.print: the same text as the CLI's report."""
from __future__ import annotations

import io
from typing import Any, Iterator


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


def report_html(report: Any, width: int = 100) -> str:
    return _recorded(report, width).export_html(
        inline_styles=True,
        code_format='<pre style="font-family: Menlo, Consolas, monospace; font-size: 12px; '
                    'line-height: 1.35; white-space: pre-wrap">{code}</pre>')
