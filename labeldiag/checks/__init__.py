"""Pure checks: plain numbers and arrays in, findings out (numpy/scipy only, no torch).

A command judges in one pass: a generator yields the checks that apply to what it measured, each as
(judge, record, ...), and `judge()` calls them in turn (as scikit-learn yields its estimator checks).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from labeldiag.findings import Finding


def judge(checks: Iterable[tuple]) -> list[Finding]:
    """Every finding of `checks`, each (judge, record, ...) called as judge(record, ...), in their order."""
    return [finding for check, *records in checks for finding in check(*records)]
