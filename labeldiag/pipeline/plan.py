"""The last step of a command's plan: one judging pass over the checks that apply to what was measured.

A command's checks are a generator of (check, inputs) pairs, as scikit-learn yields its estimator checks: each
check is a judge of checks/ that returns findings, and the pass adds them in the order they come. The generator
runs lazily, so a check may read the findings added before it (class-findings waits for constant-predictions).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from labeldiag.findings import Report

Check = tuple[Callable[..., Any], tuple]


def judge(report: Report, checks: Iterable[Check]) -> Report:
    """Add each check's findings to `report`, in order."""
    for check, inputs in checks:
        report.add(check(*inputs))
    return report
