"""render/ as one table keyed by record type (issue 18): each typed measurement a Report carries -> the Report
field that holds it and the function that shows it on the console; a command's own section is the records it
shows, in order (fix shows its FixOutcome after its own check-logits run).

A view module registers its functions with `shows` when imported (render.deliver imports a command's module
first); a view is called with the record (None where the report holds none: doctor's view still draws the
diagnosis), the report (for what the record leaves to it: findings, diagnosis) and the console.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from labeldiag.records import BatchMakeup, DoctorRun, GradFlowSummary, TrainingSummary

if TYPE_CHECKING:
    from rich.console import Console

    from labeldiag.findings import Report

View = Callable[[Any, "Report", "Console"], None]
VIEWS: dict[type, tuple[str, View]] = {}  # record type -> (Report field, the function that draws it)

# what each command shows between its header and its findings, in this order
SECTION_RECORDS: dict[str, tuple[type, ...]] = {
    "grad-flow": (GradFlowSummary,),
    "smoke-train": (BatchMakeup, TrainingSummary),
    "doctor": (DoctorRun,),
}


def shows(kind: type, field: str) -> Callable[[View], View]:
    """Register the function that draws one record type, carried in Report.`field`; one function per type."""
    def wrap(fn: View) -> View:
        known = VIEWS.get(kind)  # the same function again (its module reloaded) replaces itself
        if known and (known[1].__module__, known[1].__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(f"a view for {kind.__name__} registered twice")
        VIEWS[kind] = (field, fn)
        return fn
    return wrap


def draw_section(report: Report, console: Console) -> None:
    """The command's own section: each record it shows, drawn by its view."""
    for kind in SECTION_RECORDS[report.command]:
        field, view = VIEWS[kind]
        view(getattr(report, field), report, console)


def show(record: Any, report: Report, console: Console) -> None:
    """One record drawn by its view (fix's outcome, which its command shows apart from the check-logits report)."""
    VIEWS[type(record)][1](record, report, console)
