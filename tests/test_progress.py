"""Progress is handed down: the library's default shows nothing, the CLI passes the terminal's display."""
from __future__ import annotations

import contextlib

import pytest

from labeldiag.errors import UsageError
from labeldiag.options import Options, validate
from labeldiag.progress import SILENT, Progress


class Recorded:
    """A caller's own display: what a notebook or a service might hand down."""

    def __init__(self):
        self.seen = []

    @contextlib.contextmanager
    def bar(self, total, description):
        self.seen.append(("bar", description, total))
        yield lambda n: None

    @contextlib.contextmanager
    def phase(self, description):
        self.seen.append(("phase", description))
        yield

    @contextlib.contextmanager
    def training(self, steps, title):
        self.seen.append(("training", title, steps))
        yield lambda step, loss, acc, gnorm: None


def test_the_library_shows_nothing_unless_handed_a_display():
    assert validate(Options()).progress is SILENT
    assert validate(Options(progress=False)).progress is SILENT
    with SILENT.bar(3, "forward") as advance, SILENT.phase("loading"), SILENT.training(5, "train") as on_step:
        advance(1)
        on_step(1, 0.5, 1.0, 0.1)


def test_a_display_handed_down_is_kept_and_anything_else_refused():
    mine = Recorded()
    assert isinstance(mine, Progress) and validate(Options(progress=mine)).progress is mine
    with pytest.raises(UsageError, match="progress must be a labeldiag.progress.Progress"):
        validate(Options(progress=True))


def test_a_command_shows_its_phases_on_the_display_handed_down(trained):
    from labeldiag import check_logits

    mine = Recorded()
    check_logits(trained["checkpoint"], trained["data"], max_examples=64, progress=mine)
    assert ("phase", "starting torch and picking the device") in mine.seen
    assert ("bar", "forward", 64) in mine.seen, mine.seen


def test_the_clis_display_is_a_progress():
    from labeldiag.render.progress import TERMINAL

    assert isinstance(TERMINAL, Progress)
