"""What `labeldiag fix` shows: what changed and the findings before / after; the fix itself is labeldiag.repair."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from labeldiag.records import FixOutcome
from labeldiag.render.views import show, shows

if TYPE_CHECKING:
    from rich.console import Console

    from labeldiag.findings import Report


def run_fix(model: str, data: str, out: str, tokenizer: str | None, options: dict[str, Any],
            json_path: str | None) -> int:
    """The CLI: refuse bad outputs, call the API's fix, show what changed and before / after."""
    from rich.console import Console

    from labeldiag.api import fix
    from labeldiag.render.output import guard_output_paths, write_json

    if json_path and json_path != "-":
        guard_output_paths({"--json": json_path}, model, data, tokenizer)
    console = Console(stderr=json_path == "-", highlight=False)
    after = fix(model, data, out, tokenizer=tokenizer, **options)
    show(after.fix, after, console)
    if json_path:
        write_json(after, json_path)
    return after.exit_code("error")


@shows(FixOutcome, "fix")
def draw_fix(outcome: FixOutcome, after: Report, console: Console) -> None:
    """What changed in the copy (after.model's path), each finding before / after, and the accuracy."""
    from rich.markup import escape
    from rich.table import Table

    from labeldiag.repair import accuracy

    before = {f.code: f.severity for f in outcome.before}
    table = Table(title=f"labeldiag fix: {escape(str(after.model.get('path')))}", title_justify="left")
    table.add_column("finding")
    table.add_column("before", justify="center")
    table.add_column("after", justify="center")
    codes = dict.fromkeys([c for c, s in before.items() if s != "info"] +
                          [f.code for f in after.sorted_findings() if f.severity != "info"])
    for code in codes:
        table.add_row(code, before.get(code, "-"), after.get(code).severity if after.has(code) else "fixed")
    for fix_ in outcome.fixes:
        console.print(f"[green]fixed[/] {fix_.code}: {escape(fix_.what)}", soft_wrap=True)
        for change in fix_.changes:
            console.print(f"  {escape(change.file)} {escape(change.key)}: "
                          f"{escape(json.dumps(change.before))} -> {escape(json.dumps(change.after))}",
                          soft_wrap=True, style="dim")
    console.print(table)
    acc = (outcome.accuracy_before, accuracy(after))
    if None not in acc:
        restored = any(c.file == "*.safetensors" for f in outcome.fixes for c in f.changes)
        console.print(f"accuracy {acc[0]:.1%} -> {acc[1]:.1%}; "
                      + ("tensors restored from the base model" if restored else "weights copied unchanged"))
