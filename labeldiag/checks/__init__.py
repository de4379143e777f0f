"""Pure checks: plain numbers and arrays in, findings out (numpy/scipy only, no torch).

A command judges in one pass: a generator yields the checks that apply to what it measured, each as
(judge, record, ...), and `judge()` or `judge_into()` calls them in turn (as scikit-learn yields its
estimator checks). A judge returns a Finding, a list of them, or None.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:
    from labeldiag.findings import Finding, Report

Check = tuple[Callable[..., Any], ...]  # (judge, its inputs...)


def judge(checks: Iterable[Check]) -> list[Finding]:
    """Every finding of `checks`, each (judge, record, ...) called as judge(record, ...), in their order."""
    return [finding for check, *inputs in checks for finding in _as_list(check(*inputs))]


def judge_into(report: Report, checks: Iterable[Check]) -> Report:
    """Add each check's findings to `report` as they come: the generator runs lazily, so a later check may
    read what an earlier one added (class-findings waits for constant-predictions)."""
    for check, *inputs in checks:
        report.add(check(*inputs))
    return report


def _as_list(found: Any) -> list:
    from labeldiag.findings import Finding

    return [] if found is None else [found] if isinstance(found, Finding) else list(found)
