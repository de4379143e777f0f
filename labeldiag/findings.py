"""The record types every command produces: Finding and Report (stdlib only).

A Finding's severity and default hint come from its catalogue entry (per command where the entry
says so), never from the check that emits it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from labeldiag.severity import SEVERITIES, SEVERITY_RANK

if TYPE_CHECKING:
    from labeldiag.records import (BatchMakeup, Cause, DeviceMap, DoctorRun, FixOutcome, ForwardSpeed, GradFlowSummary,
                                   LogitStats, LogitsSummary, LoraSummary, Representation, ShardedAgreement, ShardMode,
                                   TokenCounts, TrainingSummary)


@dataclass
class Finding:
    """One diagnosis: what the evidence shows (`message`, `evidence`) and what to do (`hint`)."""

    code: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    hint: str = ""
    severity: str = field(default="", init=False)

    def __post_init__(self) -> None:
        from labeldiag.catalogue import lookup

        entry = lookup(self.code)
        self.severity = entry.severity
        if not self.hint:
            self.hint = entry.fix

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "evidence": plain(self.evidence),
            "hint": self.hint,
        }


@dataclass
class Report:
    """What one command (or check_predictions, or one callback event) found.

    `to_dict()` is the JSON report of CONTRACT.md and `from_dict()` reads it back; in Jupyter the report
    shows itself. Measurements come typed (`grad_flow`, `training`, `diagnosis`: frozen records of plain
    numbers); `attach()` puts a record on the report and its `to_metrics()` keys into `metrics`, the JSON's
    flat view, which also holds what is not typed yet.
    """

    command: str
    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    findings: list[Finding] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    diagnosis: list[Cause] = field(default_factory=list)  # doctor: ranked root causes, rank 1 first
    # the measurements, typed (issue 18): report.grad_flow.layers[0].grad_norm; None where the command has none
    grad_flow: GradFlowSummary | None = None
    training: TrainingSummary | None = None  # smoke-train: report.training.curve[-1].loss
    batch: BatchMakeup | None = None  # smoke-train's batch, also when training stopped before it started
    logits: LogitsSummary | None = None  # check-logits' predictions: report.logits.accuracy
    doctor: DoctorRun | None = None  # doctor's stages: report.doctor.stages[0].seconds
    fix: FixOutcome | None = None  # fix's re-check of the copy: what it changed, report.fix.fixes[0].code
    # how a model that outgrows one device was run: report.lora.rank, report.device_map.offloaded_tensors
    device_map: DeviceMap | None = None  # --device-map: where each module went
    shard: ShardMode | None = None  # a launched run: DDP or FSDP2 over how many ranks
    sharded_forward: ShardedAgreement | None = None  # FSDP2: the sharded copy's logits against the whole one's
    lora: LoraSummary | None = None  # --lora: what trains
    # check-logits' other measurements: report.forward.examples_per_second, report.token_stats.truncated_examples
    forward: ForwardSpeed | None = None
    representation: Representation | None = None
    token_stats: TokenCounts | None = None
    logit_stats: LogitStats | None = None

    def attach(self, record: Any) -> None:
        """Carry a typed measurement; its `to_metrics()` keys fill `metrics` (the JSON), so both read the same."""
        from labeldiag.records import BatchMakeup, DoctorRun, FixOutcome, GradFlowSummary, LogitsSummary, TrainingSummary

        if isinstance(record, DoctorRun):
            self.doctor = record
        elif isinstance(record, FixOutcome):
            self.fix = record
        elif isinstance(record, LogitsSummary):
            self.logits = record
        elif isinstance(record, GradFlowSummary):
            self.grad_flow = record
        elif isinstance(record, TrainingSummary):
            self.training = record
        elif isinstance(record, BatchMakeup):
            self.batch = record
        elif hasattr(record, "report_field"):  # a record that names its field (records.logits, records.bigmodel)
            setattr(self, record.report_field, record)
        else:
            raise TypeError(f"a Report carries no {type(record).__name__}")
        self.metrics.update(record.to_metrics())

    def add(self, findings: list[Finding] | Finding | None) -> None:
        """Add findings, each taking the severity its catalogue entry gives for this command."""
        from labeldiag.catalogue import lookup

        if findings is None:
            return
        for f in [findings] if isinstance(findings, Finding) else findings:
            f.severity = lookup(f.code).severity_for(self.command)
            self.findings.append(f)

    def sorted_findings(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: SEVERITY_RANK[f.severity])

    def has(self, code: str) -> bool:
        return any(f.code == code for f in self.findings)

    def get(self, code: str) -> Finding | None:
        return next((f for f in self.findings if f.code == code), None)

    def exit_code(self, fail_on: str = "error") -> int:
        """0, or 1 when a finding is at or above `fail_on` (error, warning or never)."""
        if fail_on == "never":
            return 0
        if fail_on not in SEVERITY_RANK or fail_on == "info":
            from labeldiag.errors import UsageError

            raise UsageError(f"--fail-on must be error, warning or never, got '{fail_on}'")
        limit = SEVERITY_RANK[fail_on]
        return 1 if any(SEVERITY_RANK[f.severity] <= limit for f in self.findings) else 0

    def to_dict(self) -> dict[str, Any]:
        from labeldiag import __version__

        out = {
            "labeldiag_version": __version__,
            "command": self.command,
            "model": plain(self.model),
            "data": plain(self.data),
            "device": self.device,
            "findings": [f.to_dict() for f in self.sorted_findings()],
            "metrics": plain(self.metrics),
            "notes": list(self.notes),
            "elapsed_s": round(self.elapsed_s, 3),
        }
        if self.command == "doctor":
            out["diagnosis"] = plain([cause.to_dict() for cause in self.diagnosis])
        if self.environment:
            out["environment"] = dict(self.environment)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Report:
        """A JSON report (as `to_dict()` writes it) read back: `from_dict(r.to_dict()).to_dict() == r.to_dict()`."""
        findings = []
        for f in d.get("findings") or []:
            finding = Finding(f["code"], f["message"], dict(f.get("evidence") or {}), f.get("hint") or "")
            finding.severity = f["severity"]  # as the command judged it, which may differ from the catalogue's
            findings.append(finding)
        from labeldiag.records import Cause
        from labeldiag.records.measurements import measurements_in

        command, metrics = d["command"], dict(d.get("metrics") or {})
        return cls(command=command, model=dict(d.get("model") or {}), data=dict(d.get("data") or {}),
                   device=d.get("device", "cpu"), findings=findings, metrics=metrics,
                   elapsed_s=d.get("elapsed_s") or 0.0, notes=list(d.get("notes") or []),
                   environment=dict(d.get("environment") or {}),
                   diagnosis=[Cause.from_dict(c) for c in d.get("diagnosis") or []],
                   **measurements_in(command, metrics))

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def __rich_console__(self, console, options):
        from labeldiag.render.notebook import report_renderables

        yield from report_renderables(self, options.max_width)

    def _repr_html_(self) -> str:
        from labeldiag.render.notebook import report_html

        return report_html(self)

    def plot(self, path: str | None = None) -> Any:
        """The command's figure as a matplotlib Figure (what --plot draws); also written as PNG at `path`."""
        from labeldiag.render.notebook import report_figure

        return report_figure(self, path)

    def to_html(self) -> str:
        """The self-contained HTML page that --html writes (figure inlined, no script, no request)."""
        from labeldiag.render.notebook import report_page

        return report_page(self)

    def __repr__(self) -> str:
        counts = {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}
        codes = ", ".join(f.code for f in self.sorted_findings()[:6])
        return (f"<Report {self.command}: {counts['error']} error(s), {counts['warning']} warning(s), "
                f"{counts['info']} info{': ' + codes if codes else ''}>")


def plain(value: Any) -> Any:
    """Turn numpy scalars/arrays and tuples into JSON-ready values; NaN/inf become None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return plain(value.tolist())
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f if math.isfinite(f) else None
