"""render/views.py: one table from each record type to the function that draws it (issue 18), with no model."""
from __future__ import annotations

import dataclasses
import typing

import pytest
from rich.console import Console

import labeldiag.render.doctor  # noqa: F401  (each view module registers its views)
import labeldiag.render.fix  # noqa: F401
import labeldiag.render.grad_flow  # noqa: F401
import labeldiag.render.smoke_train  # noqa: F401
from labeldiag import records
from labeldiag.findings import Report
from labeldiag.records import BatchMakeup, FixOutcome, TrainingSummary
from labeldiag.render import views
from labeldiag.render.console import SECTIONS, render_report


def test_every_record_a_section_shows_has_one_view_on_the_report_field_of_its_type():
    hints = typing.get_type_hints(Report, localns=vars(records))
    for command, kinds in views.SECTION_RECORDS.items():
        assert SECTIONS[command] is views.draw_section, command
        for kind in kinds:
            field, _ = views.VIEWS[kind]
            assert kind in typing.get_args(hints[field]), (kind, field)
    assert views.VIEWS[FixOutcome][0] == "fix"


def test_a_section_draws_each_record_through_its_view_in_order(monkeypatch):
    seen = []
    for kind in (BatchMakeup, TrainingSummary):
        field, _ = views.VIEWS[kind]
        monkeypatch.setitem(views.VIEWS, kind, (field, lambda record, report, console: seen.append(record)))
    report = Report(command="smoke-train")
    report.attach(BatchMakeup(examples=4, classes=2, label_counts=(("a", 2), ("b", 2)), tokens=20))
    render_report(report, Console(record=True, width=80, file=open("/dev/null", "w")))
    assert seen == [report.batch, None]  # the training view is called with None: smoke-train stopped before it


def test_a_second_view_for_a_record_type_is_refused():
    with pytest.raises(ValueError, match="BatchMakeup"):
        views.shows(BatchMakeup, "batch")(lambda record, report, console: None)


def test_the_batch_view_draws_from_the_record():
    report = Report(command="smoke-train")
    report.attach(BatchMakeup(examples=4, classes=2, label_counts=(("a", 3), ("b", 1)), tokens=20, world_size=2))
    console = Console(record=True, width=100, file=open("/dev/null", "w"))
    views.draw_section(dataclasses.replace(report), console)
    assert "batch  4 examples, 2 classes  (a 3, b 1)  20 tokens  2 ranks" in console.export_text()
