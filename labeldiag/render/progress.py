"""Progress on stderr for the phases that can take more than a moment: a bar for loops with a known
length, a spinner with the elapsed time for one long call. Both vanish when done, and are silent
unless asked (the CLI asks, the library does not) and stderr is a terminal."""
from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator


def shown(enabled: bool) -> bool:
    return enabled and sys.stderr.isatty()


@contextlib.contextmanager
def progress_bar(total: int, description: str, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    if not shown(enabled):
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


@contextlib.contextmanager
def phase(description: str, enabled: bool = True) -> Iterator[None]:
    """A spinner, `description` and the seconds so far, while the body runs."""
    if not shown(enabled):
        yield
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    # markup off: a path or a label name in the description is shown as it is
    with Progress(SpinnerColumn(), TextColumn("{task.description}", markup=False), TimeElapsedColumn(),
                  transient=True, console=Console(stderr=True)) as spinner:
        spinner.add_task(description, total=None)
        yield
