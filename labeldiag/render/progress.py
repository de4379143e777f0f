"""Progress on stderr for the phases that can take more than a moment: a bar for loops with a known
length, a spinner with the elapsed time for one long call, a bar with the loss for a training run. All
vanish when done, and are silent unless asked (the CLI hands TERMINAL down, the library shows nothing)
and stderr is a terminal."""
from __future__ import annotations

import contextlib
import sys
from typing import Callable, ContextManager, Iterator


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


@contextlib.contextmanager
def live_view(total: int, title: str, enabled: bool = True) -> Iterator[Callable[[int, float, float, float], None]]:
    """A progress bar with step / loss / accuracy / grad norm on stderr; silent when not a terminal."""
    if not shown(enabled):
        yield lambda step, loss, acc, gnorm: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from labeldiag.render.text import fmt

    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                  TextColumn("loss {task.fields[loss]}  acc {task.fields[acc]}  grad-norm {task.fields[gnorm]}"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(title, total=total, loss="-", acc="-", gnorm="-")

        def update(step: int, loss: float, acc: float, gnorm: float) -> None:
            bar.update(task, completed=step, loss=fmt(loss), acc=f"{acc:.0%}", gnorm=fmt(gnorm))

        yield update


class Terminal:
    """labeldiag.progress.Progress on stderr, shown when stderr is a terminal."""

    def bar(self, total: int, description: str) -> ContextManager[Callable[[int], None]]:
        return progress_bar(total, description)

    def phase(self, description: str) -> ContextManager[None]:
        return phase(description)

    def training(self, steps: int, title: str) -> ContextManager[Callable[[int, float, float, float], None]]:
        return live_view(steps, title)


TERMINAL = Terminal()
