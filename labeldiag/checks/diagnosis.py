"""doctor's ranking: which finding is the root cause, which ones are its symptoms.

Every rule (a catalogue row's `explains`, `cause_rank` and `confidence`) is read as "CAUSE explains
these SYMPTOMS": a missing head explains uniform logits and chance predictions; a detached pooled
vector explains disconnected parameters downstream and a batch that cannot be fitted. A finding explained by a higher-ranked cause that was also found is shown
under that cause, not as a problem of its own.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from labeldiag.catalogue import CATALOGUE
from labeldiag.records import Cause

if TYPE_CHECKING:
    from labeldiag.findings import Finding

UNRANKED = math.inf  # the rank of a code that is never a root cause: after every cause
SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2}


def rank_findings(findings: list[Finding]) -> list[Cause]:
    """One ranked list: each entry a cause (or a finding no cause explains) with the symptoms it explains.

    Info findings never rank (they describe, they do not diagnose), nor do consequences of the options.
    """
    problems = [f for f in findings if f.severity != "info" and not CATALOGUE[f.code].from_options]
    codes = {f.code for f in problems}
    explained_by: dict[str, str] = {}
    causes = sorted((f for f in problems if CATALOGUE[f.code].cause_rank is not None), key=lambda f: _rank(f.code))
    for cause in causes:
        if cause.code in explained_by:
            continue  # itself a symptom of a cause ranked above it
        for code in codes & CATALOGUE[cause.code].explains:
            explained_by.setdefault(code, cause.code)
    entries = []
    for f in sorted(problems, key=lambda f: (_rank(f.code), SEVERITY_RANK[f.severity])):
        if f.code in explained_by:
            continue
        symptoms = sorted(c for c, by in explained_by.items() if by == f.code)
        base = CATALOGUE[f.code].confidence
        confidence = min(0.99, base + 0.03 * len(symptoms)) if f.severity == "error" else base - 0.15
        why = f.message + (f"; this explains {', '.join(symptoms)}" if symptoms else "")
        entries.append((f, round(confidence, 2), why, tuple(symptoms)))
    entries.sort(key=lambda e: (SEVERITY_RANK[e[0].severity], _rank(e[0].code)))
    return [Cause(f.code, f.severity, confidence, why, symptoms, f.hint, rank)
            for rank, (f, confidence, why, symptoms) in enumerate(entries, 1)]


def _rank(code: str) -> float:
    rank = CATALOGUE[code].cause_rank
    return UNRANKED if rank is None else rank
