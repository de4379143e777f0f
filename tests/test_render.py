"""The console report and the figures: widths, escaping, the footer's next command, what the figures draw."""
from __future__ import annotations

import io
import json
import re
import shlex
import time
from types import SimpleNamespace

import numpy as np
import pytest
from rich.console import Console

from helpers import clone, edit_config, run_cli
from labeldiag.catalogue import CATALOGUE
from labeldiag.findings import Finding, Report
from labeldiag.records import GradientHeatmap, LayerRow
from labeldiag.render import console as con
from labeldiag.render import grad_flow as gf_view
from labeldiag.render import smoke_train as st_view
from labeldiag.render.text import print_packed

HOSTILE = ["[/]", "[bold]x\x1b[31m", "a$\\frac{$b"]  # markup, a terminal escape, broken matplotlib math


def rendered(report: Report, width: int = 80, **kwargs) -> str:
    out = io.StringIO()
    con.render_report(report, Console(file=out, width=width, soft_wrap=True, highlight=False), **kwargs)
    return out.getvalue()


def report_with(command: str, *codes: str, metrics: dict | None = None, severity: str = "error") -> Report:
    report = Report(command=command, device="cpu (CPU)")
    report.model = {"path": "runs/model", "class": "BertForSequenceClassification", "num_labels": 3,
                    "id2label": {"0": "sport", "1": "politics", "2": "tech"}}
    report.data = {"path": "data/test.jsonl", "examples": 30}
    report.metrics.update(metrics or {})
    for code in codes:
        finding = Finding(code, f"{code} was seen")
        finding.severity = severity
        report.findings.append(finding)
    return Report.from_dict(report.to_dict())  # the typed records (report.grad_flow, ...) read from the metrics


# --- confusion matrix ----------------------------------------------------------------------------

def wide_matrix(size: int, gold_rows: list[int], seed: int = 0) -> list[list[int]]:
    """Gold rows spread their predictions over every logit, with the most on their own."""
    rng = np.random.default_rng(seed)
    matrix = np.zeros((size, size), dtype=int)
    for g in gold_rows:
        matrix[g] = rng.integers(1, 30, size)
        matrix[g, g] = 200
    return matrix.tolist()


@pytest.mark.parametrize("gold_rows", [list(range(27)), [3, 7, 12]], ids=["all-27-present", "3-of-27-present"])
def test_a_27_class_confusion_matrix_fits_80_columns(gold_rows):
    names = [f"web-topic-number-{i}" for i in range(27)]
    matrix = wide_matrix(27, gold_rows)
    report = report_with("check-logits", metrics={"confusion_matrix": matrix, "confusion_labels": names})
    text = rendered(report, width=80)
    lines = text[text.index("gold \\ logit"):].splitlines()
    table = "\n".join(lines[:next(i for i, line in enumerate(lines) if line.startswith(("logits:", "other:")))])
    assert all(len(line) <= 80 for line in table.splitlines()), table
    view = con.confusion_view(matrix, names, 80)
    assert view.rows == gold_rows  # one row per gold class present, no empty rows
    assert view.folded and "other" in table
    # every prediction is counted in a shown column or in 'other'
    assert set(view.columns) | set(view.folded) == set(range(27))
    if len(gold_rows) == 3:
        assert set(gold_rows) <= set(view.columns)  # the correct answers keep their columns
        assert len(table.strip().splitlines()) == 2 + 3


def test_a_small_matrix_keeps_its_names_and_nothing_is_folded():
    matrix = [[9, 1, 0], [0, 10, 0], [2, 0, 8]]
    view = con.confusion_view(matrix, ["sport", "politics", "tech"], 80)
    assert view.columns == [0, 1, 2] and view.folded == [] and view.notes == []
    text = rendered(report_with("check-logits", metrics={"confusion_matrix": matrix,
                                                         "confusion_labels": ["sport", "politics", "tech"]}))
    assert "0:sport" in text and "2:tech" in text and "other" not in text


# --- escaping ------------------------------------------------------------------------------------

def hostile_reports() -> list[Report]:
    check = report_with("check-logits", metrics={"confusion_matrix": [[5, 0, 0], [0, 5, 0], [0, 0, 5]],
                                                 "confusion_labels": HOSTILE})
    layers = [{"name": name, "params": 10, "grad_norm": 1.0, "grad_weight_ratio": 0.1, "update_weight_ratio": 1e-3,
               "zero_share": 0.0, "frozen": 0, "no_grad": 0, "mean_abs_grad": 0.1, "max_abs_grad": 1.0}
              for name in HOSTILE]
    flow = report_with("grad-flow", metrics={
        "loss": 1.0, "loss_source": HOSTILE[0], "layers": layers,
        "loss_components": {HOSTILE[0]: {"value": 1.0, "encoder_grad_norm": 0.5}},
        "label_token_gradients": {"layers": [{"layer": HOSTILE[0], "label_mean": 0.1, "other_median": 0.1,
                                              "share_of_peak": 0.5}],
                                  "embedding_rows": {HOSTILE[0]: 0.1}, "embedding_row_median": 0.1},
        "label_token_heatmap": {"layers": HOSTILE, "grad_norm": [[0.1, 0.2]] * 3, "label_share": [1.0, 0.0]}})
    train = report_with("smoke-train", metrics={
        "batch": {"examples": 6, "classes": 3, "label_counts": {name: 2 for name in HOSTILE}},
        "curve": [{"step": 1, "loss": 1.0, "accuracy": 0.5, "grad_norm": 1.0}], "device_name": HOSTILE[0],
        "triage": [{"variant": HOSTILE[0], "fitted": False, "fit_step": None, "final_loss": 1.0,
                    "final_accuracy": 0.5}]})
    for report in (check, flow, train):
        report.model["id2label"] = dict(enumerate(HOSTILE))
        report.data["label_counts"] = {name: 2 for name in HOSTILE}
    return [check, flow, train]


@pytest.mark.parametrize("report", hostile_reports(), ids=lambda r: r.command)
def test_hostile_names_render_as_text(report, tmp_path):
    text = rendered(report)
    assert "[/]" in text and "[bold]x" in text and "\x1b" not in text
    plot = {"check-logits": "labeldiag.render.plots:plot_confusion",
            "grad-flow": "labeldiag.render.grad_flow:plot_grad_flow",
            "smoke-train": "labeldiag.render.smoke_train:plot_training"}[report.command]
    module, name = plot.split(":")
    getattr(__import__(module, fromlist=[name]), name)(report, str(tmp_path / "figure.png"))
    assert (tmp_path / "figure.png").stat().st_size > 1000


# --- footer --------------------------------------------------------------------------------------

@pytest.mark.parametrize("command, code, metrics, expected", [
    ("check-logits", "label-permutation", {}, "labeldiag fix runs/model data/test.jsonl --out runs/model-fixed"),
    ("smoke-train", "disconnected-parameters", {}, "labeldiag grad-flow runs/model data/test.jsonl"),
    ("smoke-train", "cannot-overfit", {}, "labeldiag smoke-train runs/model data/test.jsonl --triage"),
    ("smoke-train", "cannot-overfit", {"triage": [{"variant": "head only"}]},
     "labeldiag grad-flow runs/model data/test.jsonl"),
    ("check-logits", "constant-predictions", {}, "labeldiag doctor runs/model data/test.jsonl"),
    ("grad-flow", "no-grad-to-label-tokens", {}, "labeldiag explain no-grad-to-label-tokens"),
    ("check-logits", "label-set-mismatch", {}, "labeldiag explain label-set-mismatch"),
])
def test_the_footer_names_the_next_command_for_the_worst_finding(command, code, metrics, expected):
    report = report_with(command, code, metrics=metrics)
    report.findings.append(Finding("too-few-examples", "info only"))  # info never decides the next step
    report.findings[-1].severity = "info"
    assert con.next_step(report)[1] == expected
    text = rendered(report, width=40)
    assert f"\n  {expected}\n" in text  # on a line of its own, never wrapped, however narrow the terminal


def test_the_next_command_keeps_the_options_that_say_how_to_read_model_and_data():
    from typer.main import get_command

    from labeldiag.cli import app

    commands = get_command(app).commands  # what the CLI hands down to parse the line it was given
    report = report_with("smoke-train", "disconnected-parameters")
    typed = ("labeldiag smoke-train 'my runs/model' data.csv --label-field topic --steps 5 --lr 0.001 "
             "--json r.json --trust-remote-code")
    why, command = con.next_step(report, typed, commands)
    # --steps/--lr mean another thing in grad-flow, and --json would overwrite this report
    assert shlex.split(command) == ["labeldiag", "grad-flow", "my runs/model", "data.csv", "--label-field", "topic",
                                    "--trust-remote-code"], command
    report = report_with("smoke-train", "cannot-overfit")
    # the same command again keeps its own settings, with --triage added
    assert shlex.split(con.next_step(report, typed, commands)[1]) == [
        "labeldiag", "smoke-train", "my runs/model", "data.csv", "--label-field", "topic", "--trust-remote-code",
        "--steps", "5", "--lr", "0.001", "--triage"]


def test_no_next_command_without_an_error_or_warning():
    report = report_with("check-logits", "too-few-examples", severity="info")
    assert con.next_step(report) is None
    assert "next," not in rendered(report) and "labeldiag explain CODE" in rendered(report)


def test_every_catalogued_next_command_is_one_the_footer_knows():
    for info in CATALOGUE.values():
        assert info.next_command == "fix" or info.next_command in con.CANDIDATES, info.code


def test_the_corrected_id2label_is_printed_with_label_permutation():
    report = report_with("check-logits")
    corrected = {"0": "politics", "1": "sport", "2": "tech"}
    report.findings.append(Finding("label-permutation", "logit 0 behaves like 'politics'",
                                   evidence={"suggested_id2label": corrected}))
    report.findings[-1].severity = "error"
    line = next(line for line in rendered(report, width=40).splitlines() if "corrected id2label" in line)
    assert json.loads(line.split("corrected id2label: ")[1]) == corrected


def test_doctor_prints_the_corrected_id2label_under_its_diagnosis():
    import labeldiag.render.doctor  # noqa: F401  (registers doctor's section)
    from labeldiag.checks.diagnosis import rank_findings

    report = report_with("doctor", "cannot-overfit")
    corrected = {"0": "politics", "1": "sport", "2": "tech"}
    report.findings.append(Finding("label-permutation", "logit 0 behaves like 'politics'",
                                   evidence={"suggested_id2label": corrected}))
    report.diagnosis = rank_findings(report.findings)
    text = rendered(report)
    assert text.index("1. label-permutation") < text.index("corrected id2label") < text.index("explains")
    assert "labeldiag fix runs/model data/test.jsonl --out runs/model-fixed" in text


def test_packed_metrics_never_split_a_value():
    stream = io.StringIO()
    parts = [f"metric-{i} {i * 1000.5}" for i in range(12)]
    print_packed(Console(file=stream, width=50, soft_wrap=True), parts)
    lines = stream.getvalue().splitlines()
    assert len(lines) > 1 and all(len(line) <= 50 for line in lines)
    assert [p for line in lines for p in line.split("   ")] == parts


def test_the_footer_time_includes_drawing_the_figure(tmp_path, monkeypatch):
    from labeldiag.render import deliver as out
    from labeldiag.render import plots

    def slow_plot(report, path):
        time.sleep(0.3)
        (tmp_path / "f.png").write_bytes(b"")

    monkeypatch.setattr(plots, "plot_confusion", slow_plot)
    report = report_with("check-logits")
    report.elapsed_s = 5.0
    stream = io.StringIO()
    monkeypatch.setattr(con, "make_console", lambda to_stderr: Console(file=stream, width=80, soft_wrap=True))
    out.deliver(report, out.Outputs(plot_path=str(tmp_path / "f.png")))
    seconds = float(re.search(r"in ([\d.]+) s", stream.getvalue()).group(1))
    assert seconds >= 5.3, stream.getvalue()


# --- figures -------------------------------------------------------------------------------------

def captured_figure(monkeypatch, module, draw, report, tmp_path):
    figures = []
    monkeypatch.setattr(module, "save", lambda fig, path: figures.append(fig))
    draw(report, str(tmp_path / "figure.png"))
    assert len(figures) == 1
    return figures[0]


def test_the_heat_map_marks_the_label_token_positions(monkeypatch, tmp_path):
    share = [0.0, 1.0, 1.0, 0.9, 0.2, 0.0]
    heat = [[0.5, 0.4, 0.3, 0.2, 0.1, 0.1], [0.2, 0.0, 0.0, 0.0, 0.1, 0.0]]
    metrics = {"layers": hostile_reports()[1].metrics["layers"],
               "label_token_heatmap": {"layers": ["embeddings", "layer 0"], "grad_norm": heat, "label_share": share}}
    view = gf_view.heatmap_view(GradientHeatmap.from_metrics(metrics["label_token_heatmap"]))
    assert view["outlined"] == [1, 2, 3]
    assert view["log_norm"].mask.tolist() == [[False] * 6, [False, True, True, True, False, True]]  # zero = zero
    report = report_with("grad-flow", metrics=metrics)
    fig = captured_figure(monkeypatch, gf_view, gf_view.plot_grad_flow, report, tmp_path)
    strip, heat_ax = fig.axes[1], fig.axes[2]
    assert [round(bar.get_height(), 3) for bar in strip.patches] == share
    outlines = [p.get_x() + 0.5 for p in heat_ax.patches]
    assert outlines == [1, 2, 3]


def test_zero_and_missing_gradients_are_marked_not_drawn_as_tiny_bars():
    layers = [{"name": "embeddings", "grad_norm": 1.0, "mean_abs_grad": 0.1, "max_abs_grad": 0.5},
              {"name": "frozen-ish", "grad_norm": 0.0, "mean_abs_grad": 0.0, "max_abs_grad": 0.0},
              {"name": "detached", "grad_norm": None, "no_grad": 10, "mean_abs_grad": None, "max_abs_grad": None}]
    mean, peak, marks = gf_view.bar_heights([LayerRow.from_metrics(row) for row in layers])
    assert marks == ["", "0", "none"]
    assert peak[0] == 0.5 and np.isnan(peak[1]) and np.isnan(peak[2]) and np.isnan(mean[1])


def test_a_run_that_fits_at_step_one_draws_a_point(monkeypatch, tmp_path):
    report = report_with("smoke-train", metrics={"curve": [{"step": 1, "loss": 0.01, "accuracy": 1.0,
                                                             "grad_norm": 0.1}], "fitted": True, "fit_step": 1})
    fig = captured_figure(monkeypatch, __import__("labeldiag.render.figure", fromlist=["save"]),
                          st_view.plot_training, report, tmp_path)
    for ax in fig.axes[:3]:
        line = ax.lines[0]
        assert line.get_marker() == "o" and list(line.get_xdata()) == [1]
        assert ax.get_xlim()[0] < 1 < ax.get_xlim()[1]


def test_a_nan_loss_is_marked_at_its_step(monkeypatch, tmp_path):
    losses = [2.0, 50.0, float("nan"), float("inf")]
    report = report_with("smoke-train", "loss-diverged", metrics={"curve": [
        {"step": s, "loss": v, "accuracy": 0.3, "grad_norm": 1.0} for s, v in enumerate(losses, 1)]})
    fig = captured_figure(monkeypatch, __import__("labeldiag.render.figure", fromlist=["save"]),
                          st_view.plot_training, report, tmp_path)
    loss_ax = fig.axes[0]
    assert [x for x, _ in loss_ax.collections[0].get_offsets()] == [3, 4]
    assert loss_ax.get_xlim()[1] > 4


def test_triage_runs_are_in_the_smoke_train_figure(monkeypatch, tmp_path):
    triage = [{"variant": "head only", "fitted": True, "fit_step": 12, "final_loss": 0.01},
              {"variant": "lr 1e-05", "fitted": False, "final_loss": 1.05},
              {"variant": "fp32", "skipped": "no head found", "fitted": False, "final_loss": None}]
    report = report_with("smoke-train", "cannot-overfit", metrics={
        "curve": [{"step": s, "loss": 1.1, "accuracy": 0.3, "grad_norm": 0.1} for s in range(1, 6)],
        "lr": 1e-4, "final_loss": 1.1, "fitted": False, "triage": triage})
    rows = st_view.triage_rows(report.training)
    assert [r["note"] for r in rows] == ["not fitted", "fit at step 12", "not fitted", "skipped: no head found"]
    fig = captured_figure(monkeypatch, __import__("labeldiag.render.figure", fromlist=["save"]),
                          st_view.plot_training, report, tmp_path)
    panel = fig.axes[3]
    assert [t.get_text() for t in panel.get_yticklabels()] == [r["label"] for r in rows]
    assert [round(b.get_width(), 3) for b in panel.patches[:3]] == [1.1, 0.01, 1.05]


def test_nothing_trained_draws_a_sentence_not_empty_panels(monkeypatch, tmp_path):
    report = report_with("smoke-train", "nothing-trainable", metrics={"skipped": "no parameter is trainable"})
    fig = captured_figure(monkeypatch, __import__("labeldiag.render.figure", fromlist=["save"]),
                          st_view.plot_training, report, tmp_path)
    assert len(fig.axes) == 1 and "no parameter is trainable" in fig.axes[0].texts[0].get_text()


def test_label_position_share_counts_tokens_and_positions():
    from labeldiag.pipeline.grad_flow import _label_position_share

    enc = SimpleNamespace(ids=[np.array([101, 7, 8, 102]), np.array([101, 9, 7, 5, 102])])
    assert _label_position_share(enc, [7], None, 5) == [0.0, 0.5, 0.5, 0.0, 0.0]
    assert _label_position_share(enc, None, (1, 4), 5) == [0.0, 1.0, 0.0, 0.0, 0.5]  # only the longer reaches 4


# --- progress ------------------------------------------------------------------------------------

class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("enabled, tty, shown", [(True, True, True), (False, True, False), (True, False, False)])
def test_a_phase_shows_progress_only_when_asked_and_on_a_terminal(enabled, tty, shown, monkeypatch):
    from labeldiag.render.progress import phase

    stream = Terminal() if tty else io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    with phase("loading [/] model", enabled):
        time.sleep(0.2)
    assert ("loading [/] model" in stream.getvalue()) is shown


# --- end to end ----------------------------------------------------------------------------------

def test_check_logits_prints_the_fix_command_on_one_line(trained, tmp_path):
    broken = clone(trained["checkpoint"], tmp_path / "broken")
    cfg = json.loads((broken / "config.json").read_text())
    names = [cfg["id2label"][str(i)] for i in range(3)]
    swapped = [names[1], names[0], names[2]]
    edit_config(broken, id2label={str(i): n for i, n in enumerate(swapped)},
                label2id={n: i for i, n in enumerate(swapped)})
    r = run_cli("check-logits", broken, trained["data"], "--device", "cpu", tmp=tmp_path)
    assert r.code == 1 and "label-permutation" in r.codes()
    lines = r.out.splitlines()
    assert f"  labeldiag fix {broken} {trained['data']} --out {broken}-fixed" in lines, r.out
    corrected = next(line for line in lines if "corrected id2label" in line)
    assert json.loads(corrected.split("corrected id2label: ")[1]) == {str(i): n for i, n in enumerate(names)}
    footer_seconds = float(re.search(r"error\(s\), \d+ warning\(s\) in ([\d.]+) s", r.out).group(1))
    assert footer_seconds >= round(r.report["elapsed_s"], 1) > 0  # loading included, drawing added
