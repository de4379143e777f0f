"""check-logits' headline metrics (issue 18: typed, `report.logits.accuracy`, `report.logits.per_class[0].recall`).

`to_metrics()` is the JSON's "metrics" keys (checks.logits.metrics computes them), `from_metrics()` reads them back.
LogitsRun is what check-logits' measurement steps hand to its checks.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from labeldiag.records.data import CasingStats, PaddingProbe, RoundTrip
from labeldiag.records.model import Activations, BaseDistance, TensorStats


@dataclass(frozen=True)
class ClassScore:
    name: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class LogitsSummary:
    """Predictions on the examples read; the gold-label fields are None when DATA has no labels."""

    examples: int
    prediction_histogram: dict[str, int]  # class name -> examples predicted as it
    mean_entropy: float | None
    ln_num_labels: float
    mean_max_probability: float | None
    accuracy: float | None = None
    macro_f1: float | None = None
    per_class: tuple[ClassScore, ...] | None = None
    confusion_matrix: tuple[tuple[int, ...], ...] | None = None  # gold label (rows) x predicted logit (columns)
    confusion_labels: tuple[str, ...] | None = None
    expected_calibration_error: float | None = None

    def to_metrics(self) -> dict:
        out: dict = {"examples": self.examples, "prediction_histogram": dict(self.prediction_histogram),
                     "mean_entropy": self.mean_entropy, "ln_num_labels": self.ln_num_labels,
                     "mean_max_probability": self.mean_max_probability}
        if self.per_class is None:
            return out
        out.update({
            "accuracy": self.accuracy, "macro_f1": self.macro_f1,
            "per_class": {c.name: {"precision": c.precision, "recall": c.recall, "f1": c.f1, "support": c.support}
                          for c in self.per_class},
            "confusion_matrix": [list(row) for row in self.confusion_matrix or ()],
            "confusion_labels": list(self.confusion_labels or ()),
            "expected_calibration_error": self.expected_calibration_error,
        })
        return out

    @classmethod
    def from_metrics(cls, m: dict) -> LogitsSummary:
        per_class, matrix = m.get("per_class"), m.get("confusion_matrix")
        return cls(
            examples=m.get("examples") or 0, prediction_histogram=dict(m.get("prediction_histogram") or {}),
            mean_entropy=m.get("mean_entropy"), ln_num_labels=m.get("ln_num_labels") or 0.0,
            mean_max_probability=m.get("mean_max_probability"), accuracy=m.get("accuracy"),
            macro_f1=m.get("macro_f1"),
            per_class=tuple(ClassScore(name, s.get("precision"), s.get("recall"), s.get("f1"), s.get("support"))
                            for name, s in per_class.items()) if per_class is not None else None,
            confusion_matrix=tuple(tuple(row) for row in matrix) if matrix is not None else None,
            confusion_labels=tuple(m.get("confusion_labels") or ()) if matrix is not None else None,
            expected_calibration_error=m.get("expected_calibration_error"))


@dataclass(frozen=True)
class LogitsRun:
    """What check-logits' measurement steps returned, for its one judging pass (arrays in example order, read only).

    `second_rows` are the rows the second pass repeated (whole batches of the first); `blank_rows` index the
    finite rows (`finite_rows`) that the blanked-input pass ran on, whose logits are None when the logits moved
    enough across inputs to make that pass moot.
    """

    logits: Any  # [N, C] float32 logits of the main forward pass
    seconds: float  # the main forward pass's wall time
    casing: CasingStats | None
    round_trip: RoundTrip | None  # None unless DATA came tokenized
    finite_rows: Any  # indices of the examples whose logits are all finite
    second_rows: Any
    second_logits: Any  # None when no example had finite logits
    blank_rows: Any
    blank_logits: Any
    padding: tuple[PaddingProbe, ...]
    features: dict | None  # checks.logits.feature_stats of the sampled features feeding the head, or None
    feature_rows: int  # how many examples that sample holds
    feature_source: str | None
    activations: Activations | None
    weights: tuple[TensorStats, ...]
    base_distances: tuple[BaseDistance, ...] | None  # None without a base model


@dataclass(frozen=True)
class ForwardSpeed:
    """check-logits' main forward pass: `report.forward.examples_per_second`."""

    report_field: ClassVar[str] = "forward"
    seconds: float
    examples_per_second: float | None  # None when the pass took no measurable time, or was not rated
    rated: bool = True  # False for the shaped commands, whose JSON carries the seconds alone

    def to_metrics(self) -> dict:
        out: dict = {"forward_seconds": self.seconds}
        if self.rated:
            out["examples_per_second"] = self.examples_per_second
        return out

    @classmethod
    def from_metrics(cls, m: dict) -> ForwardSpeed:
        return cls(m["forward_seconds"], m.get("examples_per_second"), "examples_per_second" in m)


@dataclass(frozen=True)
class Representation:
    """Collapse statistics of the features feeding the head (checks.logits.feature_stats of the sample)."""

    report_field: ClassVar[str] = "representation"
    mean_cosine: float | None
    relative_spread: float | None
    effective_rank: float | None
    source: str | None  # the head module whose input was read

    def to_metrics(self) -> dict:
        return {"representation_mean_cosine": self.mean_cosine, "representation_relative_spread": self.relative_spread,
                "representation_effective_rank": self.effective_rank, "representation_source": self.source}

    @classmethod
    def from_metrics(cls, m: dict) -> Representation:
        return cls(m.get("representation_mean_cosine"), m.get("representation_relative_spread"),
                   m.get("representation_effective_rank"), m.get("representation_source"))


class _UnderItsField:
    """A record whose JSON is one key, its report field, holding its fields in their order."""

    report_field: ClassVar[str]

    def to_metrics(self) -> dict:
        return {self.report_field: asdict(self)}

    @classmethod
    def from_metrics(cls, m: dict) -> Any:
        return cls(**m[cls.report_field])


@dataclass(frozen=True)
class TokenCounts(_UnderItsField):
    """How the tokenizer read DATA: `report.token_stats.truncated_examples`."""

    report_field: ClassVar[str] = "token_stats"
    max_length: int
    truncated_examples: int
    unk_share: float
    max_token_id: int
    embedding_rows: int | None



@dataclass(frozen=True)
class LogitStats(_UnderItsField):
    """The logits' scale across the examples: `report.logit_stats.median_top2_gap`."""

    report_field: ClassVar[str] = "logit_stats"
    median_top2_gap: float | None
    max_abs_logit: float | None
    mean_logit_std_across_inputs: float | None



# the typed metrics of check-logits besides its predictions, each read back when its key is in a JSON report
RUN_RECORDS = ((ForwardSpeed, "forward_seconds"), (Representation, "representation_mean_cosine"),
               (TokenCounts, "token_stats"), (LogitStats, "logit_stats"))
