"""doctor's ranked diagnosis (issue 18: typed, `report.diagnosis[0].code`)."""
from __future__ import annotations

from dataclasses import dataclass


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
