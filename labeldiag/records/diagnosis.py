"""doctor's ranked diagnosis and its stages, and what fix changed (issue 18: typed, `report.diagnosis[0].code`,
`report.doctor.stages[0].seconds`, `report.fix.fixes[0].code`)."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from labeldiag.records.training import CurvePoint, GradFlowSummary, LayerRow, TrainingSummary


@dataclass(frozen=True)
class Cause:
    """One entry of the ranked diagnosis: a root cause (or a problem no cause explains), rank 1 first."""

    code: str
    severity: str
    confidence: float
    why: str
    explains: tuple[str, ...]  # the codes of the symptoms this cause explains
    next: str  # what to do (the finding's hint)
    rank: int

    def to_dict(self) -> dict:
        return {"code": self.code, "severity": self.severity, "confidence": self.confidence, "why": self.why,
                "explains": list(self.explains), "next": self.next, "rank": self.rank}

    @classmethod
    def from_dict(cls, d: dict) -> Cause:
        return cls(d["code"], d["severity"], d["confidence"], d["why"], tuple(d.get("explains") or ()),
                   d.get("next") or "", d["rank"])


@dataclass(frozen=True)
class StageRun:
    """One of doctor's stages: its seconds and the codes it found, or why it was skipped."""

    name: str
    ran: bool
    seconds: float | None = None
    findings: tuple[str, ...] = ()
    skipped: str | None = None
    shortened: tuple[str, ...] | None = None  # what doctor cut short in it, in words for the header

    def to_metrics(self) -> dict:
        if not self.ran:
            return {"ran": False, "skipped": self.skipped}
        out: dict = {"ran": True, "seconds": self.seconds, "findings": list(self.findings)}
        if self.shortened is not None:
            out["shortened"] = list(self.shortened)
        return out

    @classmethod
    def from_metrics(cls, name: str, m: dict) -> StageRun:
        shortened = m.get("shortened")
        return cls(name, bool(m.get("ran")), m.get("seconds"), tuple(m.get("findings") or ()), m.get("skipped"),
                   None if shortened is None else tuple(shortened))


@dataclass(frozen=True)
class FlowGlance:
    """What doctor keeps of its grad-flow stage (all None when the stage measured no gradient)."""

    loss: float | None
    total_grad_norm: float | None
    layers: tuple[LayerRow, ...] | None

    @classmethod
    def of(cls, flow: GradFlowSummary | None) -> FlowGlance:
        return cls(None, None, None) if flow is None else cls(flow.loss, flow.total_grad_norm, flow.layers)

    def to_metrics(self) -> dict:
        return {"loss": self.loss, "total_grad_norm": self.total_grad_norm,
                "layers": None if self.layers is None else [row.to_metrics() for row in self.layers]}

    @classmethod
    def from_metrics(cls, m: dict) -> FlowGlance:
        layers = m.get("layers")
        return cls(m.get("loss"), m.get("total_grad_norm"),
                   None if layers is None else tuple(LayerRow.from_metrics(row) for row in layers))


@dataclass(frozen=True)
class TrainingGlance:
    """What doctor keeps of its smoke-train stage."""

    fitted: bool | None
    fit_step: int | None
    steps_run: int | None
    final_loss: float | None
    final_accuracy: float | None
    initial_loss: float | None
    curve: tuple[CurvePoint, ...] | None
    lr: float | None
    target_loss: float | None

    @classmethod
    def of(cls, training: TrainingSummary | None) -> TrainingGlance:
        if training is None:
            return cls(*[None] * len(fields(cls)))
        return cls(**{f.name: getattr(training, f.name) for f in fields(cls)})

    def to_metrics(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["curve"] = None if self.curve is None else [point.to_metrics() for point in self.curve]
        return out

    @classmethod
    def from_metrics(cls, m: dict) -> TrainingGlance:
        curve = m.get("curve")
        numbers = {f.name: m.get(f.name) for f in fields(cls)}
        return cls(**{**numbers, "curve": None if curve is None else tuple(CurvePoint.from_metrics(p) for p in curve)})


@dataclass(frozen=True)
class DoctorRun:
    """doctor's stages, cheap to costly, and what it keeps of grad-flow and smoke-train:
    `report.doctor.stages[0].seconds`, `report.doctor.training.fitted`. `to_metrics()` gives the JSON's
    "grad_flow", "smoke_train" (each only when its stage ran) and "stages"."""

    stages: tuple[StageRun, ...]
    grad_flow: FlowGlance | None = None
    training: TrainingGlance | None = None

    def to_metrics(self) -> dict:
        out: dict = {}
        if self.grad_flow is not None:
            out["grad_flow"] = self.grad_flow.to_metrics()
        if self.training is not None:
            out["smoke_train"] = self.training.to_metrics()
        out["stages"] = {stage.name: stage.to_metrics() for stage in self.stages}
        return out

    @classmethod
    def from_metrics(cls, m: dict) -> DoctorRun:
        flow, training = m.get("grad_flow"), m.get("smoke_train")
        return cls(tuple(StageRun.from_metrics(name, s) for name, s in (m.get("stages") or {}).items()),
                   FlowGlance.from_metrics(flow) if flow is not None else None,
                   TrainingGlance.from_metrics(training) if training is not None else None)


# --- fix: what it changed in the copy (report.fix) -------------------------------------------------

@dataclass(frozen=True)
class ChangeMade:
    file: str  # as the user knows it: config.json, tokenizer_config.json, *.safetensors
    key: str
    before: Any
    after: Any

    def to_metrics(self) -> dict:
        return {"file": self.file, "key": self.key, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class FixMade:
    """One repair: the code it answers, the edits, and the finding's evidence behind them."""

    code: str
    what: str
    promised_accuracy: float | None
    changes: tuple[ChangeMade, ...]
    evidence: dict

    def to_metrics(self) -> dict:
        return {"code": self.code, "what": self.what, "promised_accuracy": self.promised_accuracy,
                "changes": [c.to_metrics() for c in self.changes], "evidence": self.evidence}

    @classmethod
    def from_metrics(cls, m: dict) -> FixMade:
        return cls(m["code"], m["what"], m.get("promised_accuracy"),
                   tuple(ChangeMade(c["file"], c["key"], c["before"], c["after"]) for c in m.get("changes") or ()),
                   dict(m.get("evidence") or {}))


@dataclass(frozen=True)
class FindingBefore:
    """A finding of the original checkpoint, as its JSON holds it."""

    code: str
    severity: str
    message: str
    evidence: dict
    hint: str

    def to_metrics(self) -> dict:
        return {"code": self.code, "severity": self.severity, "message": self.message, "evidence": self.evidence,
                "hint": self.hint}

    @classmethod
    def from_metrics(cls, m: dict) -> FindingBefore:
        return cls(m["code"], m["severity"], m["message"], dict(m.get("evidence") or {}), m.get("hint") or "")


@dataclass(frozen=True)
class FixOutcome:
    """What `fix` changed and what the original showed: `report.fix.fixes[0].changes[0].after`. `to_metrics()`
    gives the JSON's "fixes", "before" and "accuracy_before"."""

    fixes: tuple[FixMade, ...]
    before: tuple[FindingBefore, ...]
    accuracy_before: float | None

    def to_metrics(self) -> dict:
        return {"fixes": [f.to_metrics() for f in self.fixes], "before": [f.to_metrics() for f in self.before],
                "accuracy_before": self.accuracy_before}

    @classmethod
    def from_metrics(cls, m: dict) -> FixOutcome:
        return cls(tuple(FixMade.from_metrics(f) for f in m.get("fixes") or ()),
                   tuple(FindingBefore.from_metrics(f) for f in m.get("before") or ()), m.get("accuracy_before"))
