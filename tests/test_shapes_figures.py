"""Figures and HTML per task shape (issue 19): the per-label bar chart with AUROC, predicted-vs-gold scatter and the
margin histogram, and the HTML tables of each shape, drawn from reports built on arrays alone."""
from __future__ import annotations

import numpy as np
import pytest

from test_shapes_predictions import NAMES, multilabel_arrays, regression_arrays


def pairwise_report(chosen: np.ndarray, rejected: np.ndarray):
    import dataclasses

    from labeldiag.checks.pairwise import pairwise_chance, score_collapse
    from labeldiag.findings import Report
    from labeldiag.records import summarize_pairwise

    summary = summarize_pairwise(chosen, rejected)
    report = Report(command="check-logits", device="n/a")
    report.add(score_collapse(summary) + pairwise_chance(summary))
    report.metrics["pairwise"] = dataclasses.asdict(summary)
    return report


def shaped_reports():
    from labeldiag import check_predictions

    rng = np.random.default_rng(0)
    logits, gold = multilabel_arrays()
    predictions, targets = regression_arrays()
    yield "multi-label", check_predictions(logits, gold, NAMES), ["labels (at sigmoid", "AUROC of each logit"]
    yield "regression", check_predictions(predictions, targets), ["targets in quantile bins"]
    yield "pairwise", pairwise_report(rng.normal(1, 1, 200), rng.normal(0, 1, 200)), ["bradley_terry_loss"]
    yield "pairwise-collapsed", pairwise_report(np.zeros(200), np.zeros(200)), ["score-collapse"]


@pytest.mark.parametrize("name,report,words", list(shaped_reports()), ids=lambda v: v if isinstance(v, str) else "")
def test_each_shape_draws_its_figure_and_html(name, report, words, tmp_path):
    from labeldiag.render.html import render_html
    from labeldiag.render.plots import plot_confusion

    path = tmp_path / f"{name}.png"
    plot_confusion(report, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    page = render_html(report.to_dict(), command_line="labeldiag check-logits", environment={},
                       figures=[(path.name, path.read_bytes())])
    assert all(w in page for w in words), name
    assert "margin_histogram" not in page and '"points"' not in page  # the figure draws those long lists
