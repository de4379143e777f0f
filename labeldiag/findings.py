"""The record types every command produces: Finding and Report (stdlib only)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("error", "warning", "info")
SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2}


@dataclass
class Finding:
    """One diagnosis. Severity and hint default to the code's catalogue entry."""

    code: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    severity: str = ""
    hint: str = ""

    def __post_init__(self) -> None:
        from labeldiag.catalogue import lookup

        entry = lookup(self.code)
        if not self.severity:
            self.severity = entry.severity
        if self.severity not in SEVERITIES:
            raise ValueError(f"bad severity {self.severity!r}")
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
    command: str
    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    findings: list[Finding] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def add(self, findings: list[Finding] | Finding | None) -> None:
        if findings is None:
            return
        if isinstance(findings, Finding):
            findings = [findings]
        self.findings.extend(findings)

    def sorted_findings(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: SEVERITY_RANK[f.severity])

    def codes(self) -> list[str]:
        return [f.code for f in self.findings]

    def worst(self) -> str | None:
        found = self.sorted_findings()
        return found[0].severity if found else None

    def exit_code(self, fail_on: str) -> int:
        if fail_on == "never":
            return 0
        limit = SEVERITY_RANK[fail_on]
        return 1 if any(SEVERITY_RANK[f.severity] <= limit for f in self.findings) else 0

    def to_dict(self) -> dict[str, Any]:
        from labeldiag import __version__

        return {
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
