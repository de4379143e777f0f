"""Progress is a callback the caller hands down: the CLI passes render.progress.TERMINAL, the library's
default shows nothing. Nothing below the CLI imports render to show progress."""
from __future__ import annotations

import contextlib
from typing import Callable, ContextManager, Iterator, Protocol, runtime_checkable

# (step, loss, accuracy, grad norm) after each smoke-train step
StepCallback = Callable[[int, float, float, float], None]


@runtime_checkable
class Progress(Protocol):
    def bar(self, total: int, description: str) -> ContextManager[Callable[[int], None]]:
        """A loop of known length; the context yields `advance(n)`."""

    def phase(self, description: str) -> ContextManager[None]:
        """One long call."""

    def training(self, steps: int, title: str) -> ContextManager[StepCallback]:
        """A training run; the context yields a callback for each step."""


class Silent:
    """Shows nothing: what the library does unless the caller hands down a display."""

    @contextlib.contextmanager
    def bar(self, total: int, description: str) -> Iterator[Callable[[int], None]]:
        yield lambda n: None

    @contextlib.contextmanager
    def phase(self, description: str) -> Iterator[None]:
        yield

    @contextlib.contextmanager
    def training(self, steps: int, title: str) -> Iterator[StepCallback]:
        yield lambda step, loss, acc, gnorm: None


SILENT = Silent()
