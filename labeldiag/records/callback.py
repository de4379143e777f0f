"""What LabelDiagCallback measures of the Trainer's model at train begin (issue 18: typed)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HeadStatistics:
    """Does the classification head look as initialised: zero biases, weights at the configured init scale?
    (`found` False: the model has no head weights to read, and the other fields say nothing.)"""

    found: bool
    parameters: tuple[str, ...] = ()
    weight_std: float | None = None
    initializer_range: float | None = None
    zero_biases: bool | None = None  # None: the head has no bias
    fresh: bool = False

    def to_metrics(self) -> dict:
        if not self.found:
            return {"found": False}
        return {"found": True, "parameters": list(self.parameters), "weight_std": self.weight_std,
                "initializer_range": self.initializer_range, "zero_biases": self.zero_biases, "fresh": self.fresh}


@dataclass(frozen=True)
class OptimizerCoverage:
    """Trainable parameters the optimizer does not hold (`readable` False: its groups cannot be read, e.g. under
    DeepSpeed, and nothing is judged)."""

    readable: bool
    missing: tuple[str, ...] = ()
    missing_elements: int = 0
    trainable: int = 0
