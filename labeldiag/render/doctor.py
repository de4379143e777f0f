"""doctor's console section: the stages that ran and the ranked diagnosis, symptoms under their cause."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from labeldiag.catalogue import CATALOGUE, LABEL_PERMUTATION
from labeldiag.errors import strip_control
from labeldiag.records import DoctorRun
from labeldiag.render.console import SECTIONS, STYLE, section
from labeldiag.render.views import draw_section, shows

if TYPE_CHECKING:
    from labeldiag.findings import Report


@shows(DoctorRun, "doctor")
def draw_doctor(run: DoctorRun | None, report: Report, console: Console) -> None:
    """The stages' times, then the diagnosis (report.diagnosis) and the findings that follow from the options."""
    stages = run.stages if run is not None else ()
    parts = [f"{stage.name} {stage.seconds:.1f} s" if stage.ran else f"{stage.name} skipped" for stage in stages]
    if parts:
        console.print("[bold]stages[/] " + escape("  ·  ".join(parts)))
    by_code = {f.code: f for f in report.findings}
    if report.diagnosis:
        console.print("\n[bold]diagnosis[/], most likely root cause first:")
        for entry in report.diagnosis:
            cause = by_code[entry.code]
            console.print(Text.assemble((f"{entry.rank}. ", "bold"), (entry.code, STYLE[entry.severity]),
                                        f" ({entry.severity}, confidence {entry.confidence:.2f}): ",
                                        strip_control(cause.message)))
            corrected = cause.evidence.get("suggested_id2label") if cause.code == LABEL_PERMUTATION else None
            if corrected:
                console.print(Text(f"   corrected id2label: {strip_control(json.dumps(corrected))}"))
            for code in entry.explains:
                symptom = by_code[code]
                console.print(Text.assemble("   explains ", (code, STYLE[symptom.severity]), ": ",
                                            strip_control(symptom.message), style="dim"))
            console.print(Text(f"   next: {strip_control(entry.next)}", style="bold"))
    for f in report.findings:
        if CATALOGUE[f.code].from_options:
            console.print(Text.assemble("note ", (f.code, STYLE[f.severity]), " (follows from the options given, "
                                        "not a cause of the model's behaviour): ", strip_control(f.message),
                                        style="dim"))
            console.print(Text(f"   fix: {strip_control(f.hint)}", style="dim"))


if "doctor" not in SECTIONS:  # registered once even if the module is reloaded
    section("doctor")(draw_section)
