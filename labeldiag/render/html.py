"""One self-contained HTML page for a report, to attach to an issue or a pull request.

Everything lives in the page: inline CSS, figures as data: URIs, no script, font, link or URL, so
it opens offline and sends no request. Every string that comes from the user's model, data or
command line goes through html.escape.
"""
from __future__ import annotations

import base64
import html
import json
import math
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from labeldiag.severity import SEVERITY_RANK
from labeldiag.render.output import HTML_GENERATOR

if TYPE_CHECKING:
    from labeldiag.findings import Report
    from labeldiag.records import Cause, CurvePoint, GradFlowSummary, LayerRow, LogitsSummary, TrainingSummary

# Rows of the smoke-train curve shown in the page; the JSON report keeps every step.
CURVE_ROWS = 12
# A nested value longer than this is cut in the page (the JSON report keeps it whole).
MAX_VALUE_CHARS = 1500
# Evidence lists longer than this are folded behind their first items.
FOLD_ITEMS, FOLD_CHARS = 8, 240

STYLE = """
:root { --error: #b91c1c; --warning: #b45309; --info: #1d4ed8; --ok: #15803d; --muted: #5b6472;
        --line: #e3e6ea; --soft: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; color: #16191d; background: #fff;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 1.55rem; margin: 0 0 6px; }
h2 { font-size: 1.2rem; margin: 34px 0 12px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.02rem; margin: 0; display: flex; flex-wrap: wrap; align-items: center; gap: 8px; }
h3 .muted { font-weight: 400; }
h4 { font-size: .95rem; margin: 18px 0 6px; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
            font-size: .92em; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px;
      margin: 8px 0; white-space: pre-wrap; overflow-wrap: anywhere; }
.muted { color: var(--muted); }
.counts { margin: 0 0 12px; display: flex; flex-wrap: wrap; gap: 8px; align-items: center; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 999px; color: #fff; font-size: .75rem;
         font-weight: 700; letter-spacing: .04em; text-transform: uppercase; background: var(--sev, var(--muted)); }
.error { --sev: var(--error); } .warning { --sev: var(--warning); } .info { --sev: var(--info); }
.ok { --sev: var(--ok); }
.finding, .cause { border: 1px solid var(--line); border-left: 5px solid var(--sev, var(--muted));
                   border-radius: 6px; padding: 12px 16px; margin: 12px 0; }
.finding p, .cause p { margin: 6px 0; }
.message { font-weight: 600; }
.hint::before { content: "Fix: "; font-weight: 700; color: var(--sev); }
details { margin: 8px 0; }
summary { cursor: pointer; color: var(--muted); font-size: .9rem; }
dl.explain { margin: 6px 0 0; display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; font-size: .92rem; }
dl.explain dt { font-weight: 600; color: var(--muted); }
dl.explain dd { margin: 0; }
table { border-collapse: collapse; font-size: 13px; margin: 4px 0; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.kv th { white-space: nowrap; background: none; color: var(--muted); font-weight: 500; }
.kv td { overflow-wrap: anywhere; font-variant-numeric: tabular-nums; }
.kv details { margin: 0; }
.scroll { overflow-x: auto; max-width: 100%; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 4px 24px; }
.grid h4 { margin-top: 12px; }
tr.flag td { background: #fdf0f0; }
td.diag { outline: 2px solid #1f2937; outline-offset: -2px; }
figure { margin: 16px 0; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: .9rem; margin-top: 4px; }
.none { color: var(--muted); }
"""


def render_html(report: Report | dict, *, command_line: str, environment: dict,
                figures: Sequence[tuple[str, bytes]] = (),
                explain: Callable[[str], Any] | None = None) -> str:
    """The whole page for one report, or for its JSON dict (whose measurements are read into the same records).

    figures: (caption, PNG bytes) pairs, inlined. explain: code -> an object with .what/.why/.fix,
    or None when there is nothing to add; by default the finding catalogue.
    """
    from labeldiag.records.measurements import measurements_in

    explain = explain or _catalogue_entry
    report_dict = report if isinstance(report, dict) else report.to_dict()
    typed = (measurements_in(str(report_dict.get("command")), report_dict.get("metrics") or {})
             if isinstance(report, dict) else {"logits": report.logits, "grad_flow": report.grad_flow,
                                               "training": report.training})
    command = str(report_dict.get("command") or "report")
    findings = sorted(report_dict.get("findings") or [],
                      key=lambda f: SEVERITY_RANK.get(f.get("severity"), len(SEVERITY_RANK)))
    parts = [
        _header(report_dict, command, findings, command_line),
        _diagnosis(report.diagnosis if not isinstance(report, dict)
                   else [_cause(entry) for entry in report_dict.get("diagnosis") or []]),
        _findings(findings, explain),
        _notes(report_dict.get("notes") or []),
        _figures(figures),
        _metrics(report_dict.get("metrics") or {}, typed["logits"], typed["grad_flow"], typed["training"]),
        _environment(environment),
    ]
    title = f"labeldiag {command}: {_count_text(findings)}"
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n" + HTML_GENERATOR + "\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
            + "\n".join(p for p in parts if p)
            + "\n</main>\n</body>\n</html>\n")


# --- sections ---------------------------------------------------------------------------------

def _header(report: dict, command: str, findings: list[dict], command_line: str) -> str:
    counts = {sev: sum(1 for f in findings if f.get("severity") == sev) for sev in SEVERITY_RANK}
    badges = "".join(f'<span class="badge {sev}">{n} {sev}{"s" if n != 1 else ""}</span>'
                     for sev, n in counts.items() if n)
    if not findings:
        badges = '<span class="badge ok">no findings</span>'
    elapsed = report.get("elapsed_s")
    facts = [f"labeldiag {_e(report.get('labeldiag_version', '?'))}"]
    if isinstance(elapsed, (int, float)):
        facts.append(f"{elapsed:.1f} s")
    rows = [("command", f"<code>{_e(command_line)}</code>"), ("model", _model_line(report.get("model") or {})),
            ("data", _data_line(report.get("data") or {})), ("device", _device_line(report))]
    return (f"<header>\n<h1>labeldiag {_e(command)}</h1>\n"
            f'<p class="counts">{badges}<span class="muted">{" · ".join(facts)}</span></p>\n'
            + _kv_table(rows, escape_values=False) + "\n</header>")


def _model_line(model: dict) -> str:
    if not model:
        return '<span class="none">not recorded</span>'
    details = [str(model[k]) for k in ("class",) if model.get(k)]
    if model.get("num_labels") is not None:
        names = list((model.get("id2label") or {}).values())
        shown = ", ".join(str(n) for n in names[:8]) + (f", … ({len(names)} in all)" if len(names) > 8 else "")
        details.append(f"{model['num_labels']} labels" + (f": {shown}" if shown else ""))
    details += [f"{k}: {_plain_text(v)}" for k, v in model.items()
                if k not in ("path", "class", "num_labels", "id2label") and v not in (None, "", [], {})]
    return f"<code>{_e(model.get('path', '?'))}</code> " + _muted(" · ".join(details))


def _data_line(data: dict) -> str:
    if not data:
        return '<span class="none">not recorded</span>'
    details = []
    if data.get("examples") is not None:
        details.append(f"{data['examples']} examples")
    counts = data.get("label_counts") or {}
    if counts:
        details.append(", ".join(f"{k} {v}" for k, v in list(counts.items())[:10])
                       + (f", … ({len(counts)} labels)" if len(counts) > 10 else ""))
    elif "labelled" in data:
        details.append("labelled" if data["labelled"] else "unlabelled")
    details += [f"{k}: {_plain_text(v)}" for k, v in data.items()
                if k not in ("path", "examples", "label_counts", "labelled") and v not in (None, "", [], {})]
    return f"<code>{_e(data.get('path', '?'))}</code> " + _muted(" · ".join(details))


def _device_line(report: dict) -> str:
    precision = (report.get("metrics") or {}).get("precision")
    return _e(report.get("device", "?")) + (" " + _muted(str(precision)) if precision else "")


def _cause(entry: dict) -> Cause:
    """A diagnosis entry of a JSON dict as doctor's record, whatever it leaves out."""
    from labeldiag.records import Cause

    return Cause(entry.get("code", "?"), entry.get("severity", ""), entry.get("confidence"), entry.get("why", ""),
                 tuple(entry.get("explains") or ()), entry.get("next", ""), entry.get("rank", "?"))


def _diagnosis(diagnosis: Sequence[Cause]) -> str:
    if not diagnosis:
        return ""
    items = []
    for cause in sorted(diagnosis, key=lambda c: c.rank if isinstance(c.rank, int) else 1 << 30):
        confidence = cause.confidence
        conf_text = (f"confidence {confidence:.0%}" if isinstance(confidence, (int, float))
                     else f"confidence {_plain_text(confidence)}" if confidence is not None else "")
        extra = {"severity": cause.severity, "explains": list(cause.explains), "next": cause.next}
        items.append(
            f'<div class="cause {"error" if cause.rank == 1 else "warning"}">'
            f'<h3><span class="badge">#{_e(cause.rank)}</span><code>{_e(cause.code)}</code>'
            f"{_muted(conf_text)}</h3>"
            + (f"<p>{_e(cause.why)}</p>" if cause.why else "")
            + _kv_table(extra.items()) + "</div>")
    return ('<section id="diagnosis">\n<h2>Diagnosis</h2>\n'
            '<p class="muted">Most likely root cause first; lower ranks are less likely or explained by it.</p>\n'
            + "\n".join(items) + "\n</section>")


def _findings(findings: list[dict], explain: Callable[[str], Any]) -> str:
    if not findings:
        return ('<section id="findings">\n<h2>Findings</h2>\n'
                '<p class="none">No findings: nothing in this run looks wrong.</p>\n</section>')
    return ('<section id="findings">\n<h2>Findings</h2>\n'
            + "\n".join(_finding(f, explain) for f in findings) + "\n</section>")


def _finding(finding: dict, explain: Callable[[str], Any]) -> str:
    severity = str(finding.get("severity", "info"))
    code = str(finding.get("code", "?"))
    hint = finding.get("hint") or ""
    entry = explain(code)
    explain_html = ""
    if entry is not None:
        rows = [("What it means", getattr(entry, "what", "")), ("Why it matters", getattr(entry, "why", ""))]
        if getattr(entry, "fix", "") and entry.fix != hint:  # the hint is usually the catalogue's fix already
            rows.append(("How to fix", entry.fix))
        items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows if v)
        # open for what needs acting on; info stays folded
        explain_html = (f'<details{" open" if severity != "info" else ""}><summary>About '
                        f"<code>{_e(code)}</code></summary><dl class=\"explain\">{items}</dl></details>")
    evidence = finding.get("evidence") or {}
    evidence_html = ("<h4>Evidence</h4>" + _kv_table(evidence.items())) if evidence else ""
    sev_class = severity if severity in SEVERITY_RANK else ""
    return (f'<article class="finding {_e(sev_class)}">'
            f'<h3><span class="badge">{_e(severity)}</span><code>{_e(code)}</code></h3>'
            f'<p class="message">{_e(finding.get("message", ""))}</p>'
            + (f'<p class="hint">{_e(hint)}</p>' if hint else "")
            + explain_html + evidence_html + "</article>")


def _notes(notes: list) -> str:
    if not notes:
        return ""
    return ('<section id="notes">\n<h2>Notes</h2>\n<ul>'
            + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>\n</section>")


def _figures(figures: Iterable[tuple[str, bytes]]) -> str:
    blocks = []
    for caption, png in figures:
        data = base64.b64encode(png).decode("ascii")
        blocks.append(f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
                      f"<figcaption>{_e(caption)}</figcaption></figure>")
    if not blocks:
        return ""
    return '<section id="figures">\n<h2>Figures</h2>\n' + "\n".join(blocks) + "\n</section>"


def _metrics(metrics: dict, logits: LogitsSummary | None, flow: GradFlowSummary | None,
             training: TrainingSummary | None) -> str:
    """The measurements the records carry get their own tables; the other metrics are shown as they come."""
    if not metrics:
        return ""
    metrics = dict(metrics)
    blocks = []
    if logits is not None and logits.confusion_matrix and logits.confusion_labels:
        blocks.append(_confusion(logits.confusion_matrix, logits.confusion_labels))
        del metrics["confusion_matrix"], metrics["confusion_labels"]
    token = metrics.get("token")
    if isinstance(token, dict) and token.get("confusion") and token.get("tags"):  # issue 22: tags and their confusion
        metrics["token"] = token = dict(token)
        blocks.append(_confusion(token.pop("confusion"), [t["name"] for t in token["tags"]]))
        blocks.append("<h4>tags</h4>" + _rows_table(token.pop("tags")))
        blocks.append("<h4>tags against their neighbours' predictions</h4>" + _rows_table(token.pop("shifts")))
    blocks += _shape_blocks(metrics)  # issue 19: multi-label, regression and pairwise tables
    if training is not None and training.curve:
        blocks.append(_curve(training.curve, training.fit_step))
        del metrics["curve"]
    if flow is not None and flow.layers:
        blocks.append("<h4>Layers</h4>" + _rows_table([row.to_metrics() for row in flow.layers],
                                                      flagged=[_without_gradient(row) for row in flow.layers]))
        del metrics["layers"]
    for key in [k for k, v in metrics.items() if _is_rows(v)]:
        blocks.append(f"<h4>{_e(key)}</h4>" + _rows_table(metrics.pop(key)))
    for key in [k for k, v in metrics.items() if _is_table_of_dicts(v)]:
        value = metrics.pop(key)
        blocks.append(f"<h4>{_e(key)}</h4>" + _rows_table([{"": name, **row} for name, row in value.items()]))
    scalars = [(k, v) for k, v in metrics.items() if not isinstance(v, dict)]
    groups = [(k, v) for k, v in metrics.items() if isinstance(v, dict)]
    small = ([("<h4>Summary</h4>" + _kv_table(scalars))] if scalars else [])
    small += [f"<h4>{_e(k)}</h4>" + (_kv_table(v.items()) if v else '<p class="none">none</p>') for k, v in groups]
    if small:
        blocks.append('<div class="grid">' + "".join(f"<div>{s}</div>" for s in small) + "</div>")
    return '<section id="metrics">\n<h2>Metrics</h2>\n' + "\n".join(blocks) + "\n</section>"


def _shape_blocks(metrics: dict) -> list[str]:
    """The per-label table and the label x logit AUROC matrix of a multi-label report, the binned targets of a
    regression one; the long lists the figure draws (scatter points, margin histogram) leave the tables."""
    blocks = []
    multilabel = metrics.get("multilabel")
    if isinstance(multilabel, dict) and _is_rows(multilabel.get("labels")):
        metrics["multilabel"] = multilabel = dict(multilabel)
        labels = multilabel.pop("labels")
        blocks.append(f"<h4>labels (at sigmoid &ge; {_e(_fmt(multilabel.get('threshold')))})</h4>"
                      + _rows_table(labels))
        matrix = multilabel.pop("auroc_matrix", None)
        if matrix:
            blocks.append(_auroc_matrix(matrix, [row.get("name") for row in labels]))
    regression = metrics.get("regression")
    if isinstance(regression, dict) and regression.get("binned"):
        metrics["regression"] = regression = dict(regression)
        regression.pop("points", None)
        blocks.append("<h4>targets in quantile bins</h4>" + _rows_table(
            [{"mean target": t, "mean prediction": p} for t, p in regression.pop("binned")]))
    pairwise = metrics.get("pairwise")
    if isinstance(pairwise, dict) and pairwise.get("margin_histogram"):
        metrics["pairwise"] = pairwise = dict(pairwise)
        pairwise.pop("margin_histogram")
    return blocks


def _auroc_matrix(matrix: list[list[Any]], names: list[Any]) -> str:
    head = "".join(f'<th class="num">{j}:{_e(name)}</th>' for j, name in enumerate(names))
    rows = []
    for i, row in enumerate(matrix):
        cells = []
        for j, value in enumerate(row):
            shade = abs(value - 0.5) * 2 if isinstance(value, (int, float)) else 0.0
            ink = "#fff" if shade > 0.6 else "#16191d"
            cells.append(f'<td class="num{" diag" if i == j else ""}" style="background: rgba(37, 99, 235, '
                         f'{shade:.2f}); color: {ink}">{_fmt(value)}</td>')
        rows.append(f"<tr><th>{_e(names[i] if i < len(names) else i)}</th>{''.join(cells)}</tr>")
    return ("<h4>AUROC of each logit for each gold label</h4>"
            '<p class="muted">gold label (rows) × logit (columns); shade = distance from 0.5, outlined = the logit '
            "of that label</p>"
            f'<div class="scroll"><table><tr><th>gold \\ logit</th>{head}</tr>{"".join(rows)}</table></div>')


def _confusion(matrix: Sequence[Sequence[Any]], labels: Sequence[Any]) -> str:
    head = "".join(f'<th class="num">{i}:{_e(name)}</th>' for i, name in enumerate(labels))
    rows = []
    for i, row in enumerate(matrix):
        total = sum(v for v in row if isinstance(v, (int, float))) or 1
        cells = []
        for j, value in enumerate(row):
            share = value / total if isinstance(value, (int, float)) else 0.0
            ink = "#fff" if share > 0.5 else "#16191d"
            cells.append(f'<td class="num{" diag" if i == j else ""}" style="background: rgba(37, 99, 235, '
                         f'{share:.2f}); color: {ink}">{_fmt(value)}</td>')
        name = labels[i] if i < len(labels) else i
        rows.append(f"<tr><th>{_e(name)}</th>{''.join(cells)}</tr>")
    return ("<h4>Confusion matrix</h4>"
            '<p class="muted">gold label (rows) × predicted logit (columns); shade = share of the gold row, '
            "outlined = logit index equals label index</p>"
            f'<div class="scroll"><table><tr><th>gold \\ logit</th>{head}</tr>{"".join(rows)}</table></div>')


def _curve(curve: Sequence[CurvePoint], fit_step: int | None) -> str:
    """Summarise the per-step training curve: first, last, the fit step and evenly spaced steps."""
    n = len(curve)
    if n > CURVE_ROWS:
        picks = {round(i * (n - 1) / (CURVE_ROWS - 1)) for i in range(CURVE_ROWS)}
    else:
        picks = set(range(n))
    picks |= {i for i, point in enumerate(curve) if point.step == fit_step}
    shown = [curve[i] for i in sorted(picks)]
    losses = [point.loss for point in curve if _is_number(point.loss)]
    summary = f"{n} step(s) recorded" + (f", showing {len(shown)}" if len(shown) < n else "")
    if losses:
        summary += f"; loss {_fmt(losses[0])} → {_fmt(losses[-1])} (lowest {_fmt(min(losses))})"
    return (f"<h4>Training curve</h4><p class=\"muted\">{_e(summary)}</p>"
            + _rows_table([point.to_metrics() for point in shown],
                          flagged=[fit_step is not None and point.step == fit_step for point in shown]))


def _environment(environment: dict) -> str:
    from labeldiag.env import environment_text

    body = (_e(environment_text(environment)) if environment
            else '<span class="none">not recorded</span>')
    return f'<section id="environment">\n<h2>Environment</h2>\n<pre>{body}</pre>\n</section>'


# --- tables and values ------------------------------------------------------------------------

def _kv_table(items: Iterable[tuple[Any, Any]], escape_values: bool = True) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_cell(v, fold=True) if escape_values else v}</td></tr>"
                   for k, v in items)
    return f'<table class="kv">{rows}</table>'


def _rows_table(rows: list[dict], flagged: Sequence[bool] = ()) -> str:
    """A table of rows; a row whose `flagged` entry is true is highlighted."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    numeric = {c for c in columns if all(_is_number(row.get(c)) for row in rows if row.get(c) is not None)}
    align = {c: ' class="num"' if c in numeric else "" for c in columns}
    head = "".join(f"<th{align[c]}>{_breakable(c)}</th>" for c in columns)
    body = "".join(
        ('<tr class="flag">' if i < len(flagged) and flagged[i] else "<tr>")
        + "".join(f"<td{align[c]}>{_cell(row.get(c))}</td>" for c in columns) + "</tr>"
        for i, row in enumerate(rows))
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


def _without_gradient(row: LayerRow) -> bool:
    """Grad-flow layers that got no gradient at all, or left some trainable parameters without one."""
    return bool(row.no_grad) or (row.grad_norm is None and not row.frozen)


def _is_rows(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _is_table_of_dicts(value: Any) -> bool:
    return (isinstance(value, dict) and bool(value)
            and all(isinstance(v, dict) and not any(isinstance(x, (dict, list)) for x in v.values())
                    for v in value.values()))


def _cell(value: Any, fold: bool = False) -> str:
    """One value; with fold, a long list or mapping is folded behind its first items."""
    if value is None:
        return '<span class="none">—</span>'
    if not isinstance(value, (dict, list, tuple)):
        return _e(_fmt(value))
    text = _compact_json(value)
    if not fold or (len(value) <= FOLD_ITEMS and len(text) <= FOLD_CHARS):
        return f"<code>{_e(text)}</code>"
    first = list(value)[:3]
    kind = "entries" if isinstance(value, dict) else "items"
    return (f"<details><summary>{len(value)} {kind}: <code>{_e(', '.join(str(x) for x in first))}</code>, …"
            f"</summary><code>{_e(text)}</code></details>")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if 1e3 <= abs(value) < 1e12:
            return f"{value:,.0f}"
        if value == 0 or abs(value) >= 1e-3:
            return f"{value:.4g}"
        return f"{value:.3g}"
    return str(value)


def _compact_json(value: Any) -> str:
    text = json.dumps(value, separators=(", ", ": "), ensure_ascii=False, default=str)
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS] + f" … ({len(text) - MAX_VALUE_CHARS} more characters in the JSON report)"
    return text


def _plain_text(value: Any) -> str:
    return _compact_json(value) if isinstance(value, (dict, list, tuple)) else _fmt(value)


def _breakable(name: str) -> str:
    """A column name that may wrap after its underscores, so wide tables fit narrow windows."""
    return "_<wbr>".join(_e(part) for part in str(name).split("_"))


def _muted(text: str) -> str:
    return f'<span class="muted">{_e(text)}</span>' if text else ""


def _count_text(findings: list[dict]) -> str:
    if not findings:
        return "no findings"
    counts = {sev: sum(1 for f in findings if f.get("severity") == sev) for sev in SEVERITY_RANK}
    return ", ".join(f"{n} {sev}{'s' if n != 1 else ''}" for sev, n in counts.items() if n)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _catalogue_entry(code: str):
    from labeldiag.catalogue import CATALOGUE

    return CATALOGUE.get(code)

