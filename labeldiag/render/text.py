"""Text for the console sections: numbers, user-controlled strings, and short parts packed into lines."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from labeldiag.errors import strip_control


def safe(value: Any) -> str:
    """A user-controlled string (path, label or column name) for markup: no markup, no terminal control."""
    return escape(strip_control(str(value)))


def print_packed(console: Console, parts: list[str | Text], sep: str = "   ") -> None:
    """Short 'name value' parts on as few lines as fit the width, never split inside a part (a str
    part is plain text, never markup)."""
    line = Text()
    for part in parts:
        piece = Text(part) if isinstance(part, str) else part
        if line and line.cell_len + len(sep) + piece.cell_len > console.width:
            console.print(line, soft_wrap=True)
            line = Text()
        if line:
            line.append(sep)
        line.append_text(piece)
    if line:
        console.print(line, soft_wrap=True)


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.2e}"
        return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return str(value)
