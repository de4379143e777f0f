"""smoke-train's part of the report and its figure (its live view while training is in render.progress)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from labeldiag.errors import strip_control
from labeldiag.records import BatchMakeup, TrainingSummary, TriageRun
from labeldiag.render.console import SECTIONS, section
from labeldiag.render.text import fmt, print_packed
from labeldiag.render.views import draw_section, shows

if TYPE_CHECKING:
    from labeldiag.findings import Report
    from labeldiag.records import CurvePoint


BARS = "▁▂▃▄▅▆▇█"
SHORT_RUN = 30  # figure: steps up to which each step is drawn as a point
LOG_SPAN = 20  # figure: triage final losses further apart than this factor are compared on a log axis


def sparkline(values: list, width: int = 60) -> str:
    """One line of block characters; the loss on a log scale (it spans decades), x for NaN/inf."""
    if not values:
        return ""
    if len(values) > width:  # keep the first and last point, sample in between
        idx = [round(i * (len(values) - 1) / (width - 1)) for i in range(width)]
        values = [values[i] for i in idx]
    good = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    if not good:
        return "x" * len(values)
    lo, hi = math.log(min(good)), math.log(max(good))
    out = []
    for v in values:
        if v is None or not math.isfinite(v):
            out.append("x")
        elif v <= 0:
            out.append(BARS[0])
        else:
            k = 0 if hi == lo else round((math.log(v) - lo) / (hi - lo) * (len(BARS) - 1))
            out.append(BARS[k])
    return "".join(out)


def _sample_rows(curve: list[CurvePoint], n: int = 6) -> list[CurvePoint]:
    if len(curve) <= n:
        return curve
    idx = sorted({round(i * (len(curve) - 1) / (n - 1)) for i in range(n)})
    return [curve[i] for i in idx]


@shows(BatchMakeup, "batch")
def _batch(b: BatchMakeup | None, report: Report, console: Console) -> None:
    if b is None:
        return
    counts = ", ".join(f"{strip_control(str(k))} {v}" for k, v in b.label_counts)
    print_packed(console, [Text("batch", style="bold"), f"{b.examples} examples, {b.classes} classes",
                           *([f"({counts})"] if counts else []),
                           *([f"{b.tokens} tokens"] if b.tokens is not None else []),
                           *([f"{b.world_size} ranks"] if b.world_size > 1 else [])], sep="  ")


@shows(TrainingSummary, "training")
def _training(t: TrainingSummary | None, report: Report, console: Console) -> None:
    if t is None:
        return
    pre = t.preflight
    if pre:
        print_packed(console, [Text("pre-flight", style="bold"),
                               f"trainable {pre.trainable}, frozen {pre.frozen}, no gradient {pre.disconnected};",
                               f"loss at init {fmt(t.initial_loss)} (ln C = {fmt(t.ln_num_labels)})"],
                     sep="  ")
    if t.curve:
        if t.fitted:
            verdict = Text(f"fitted at step {t.fit_step}", style="green") + Text(
                f" in {fmt(t.fit_seconds)} s" if t.fit_seconds is not None else "")
        else:
            verdict = Text("not fitted", style="red") + Text(f" in {t.steps_run} steps")
        print_packed(console, [Text("training", style="bold"), verdict, f"lr {fmt(t.lr)}",
                               f"final loss {fmt(t.final_loss)}", f"accuracy {fmt(t.final_accuracy)}"])
        console.print(f"  loss  {sparkline([c.loss for c in t.curve])}")
        table = Table(show_edge=False, box=None, padding=(0, 2))
        for col in ("step", "loss", "accuracy", "grad norm"):
            table.add_column(col, justify="right")
        for c in _sample_rows(list(t.curve)):
            table.add_row(str(c.step), fmt(c.loss), fmt(c.accuracy), fmt(c.grad_norm))
        console.print(table)
        print_packed(console, [Text("speed", style="bold"), f"{fmt(t.steps_per_second)} steps/s,",
                               f"{fmt(t.examples_per_second)} examples/s,",
                               f"{fmt(t.tokens_per_second)} tokens/s;",
                               f"peak memory {_bytes(t.peak_memory_bytes)}",
                               f"({t.peak_memory_kind or '-'});",
                               f"{strip_control(str(t.device_name))}, {t.precision}"], sep=" ")
    ranks = t.ranks or ()
    if len(ranks) > 1:
        table = Table(title="per rank", title_justify="left", show_edge=False)
        for col in ("rank", "steps/s", "examples/s", "tokens/s", "peak memory"):
            table.add_column(col, justify="right")
        for r in ranks:
            table.add_row(str(r.rank), fmt(r.steps_per_second), fmt(r.examples_per_second), fmt(r.tokens_per_second),
                          _bytes(r.peak_memory_bytes))
        console.print(table)
    if t.triage:
        table = Table(title="triage (each from the original weights)", title_justify="left", box=box.SIMPLE_HEAD,
                      show_edge=False, pad_edge=False)
        for col in ("variant", "fitted", "fit step", "final loss", "final accuracy"):
            table.add_column(col, justify="right" if col != "variant" else "left")
        for r in t.triage:
            table.add_row(Text(strip_control(str(r.variant))), "[green]yes[/]" if r.fitted else "[red]no[/]",
                          fmt(r.fit_step), fmt(r.final_loss), fmt(r.final_accuracy))
        console.print(table)



if "smoke-train" not in SECTIONS:  # registered once even if the module is reloaded
    section("smoke-train")(draw_section)

def _bytes(n) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def plot_training(report: Report, path: str | None):
    """Loss (log scale), batch accuracy and gradient norm per step, with a point per step when the run
    is short (a run that fits at step 1 is one point, not an empty panel); with --triage, a fourth
    panel of each rerun's final loss, fitted or not."""
    from matplotlib.ticker import MaxNLocator

    from labeldiag.render.figure import message_figure, pyplot, save

    t = report.training
    curve = t.curve if t else ()
    triage = t.triage if t else ()
    codes = [f.code for f in report.sorted_findings() if f.severity != "info"]
    title = "smoke-train" + (f" — {', '.join(codes[:3])}" if codes else (" — fitted" if t and t.fitted else ""))
    if not curve:
        why = (t and t.skipped) or next((n for n in report.notes if "skipped" in n), None) or next(
            (f.message for f in report.sorted_findings()), "no training step ran")
        return message_figure(f"nothing was trained: {why}", title, path)
    plt = pyplot()
    fig, axes = plt.subplots(1, 4 if triage else 3, figsize=(17 if triage else 13, 3.6), layout="constrained")
    steps = [c.step for c in curve]
    marker = "o" if len(curve) <= SHORT_RUN else None

    def series(key):
        return [getattr(c, key) if getattr(c, key) is not None else float("nan") for c in curve]

    axes[0].plot(steps, series("loss"), color="#c44e52", marker=marker, markersize=4)
    if any(v > 0 for v in series("loss")):
        axes[0].set_yscale("log")
    axes[0].axhline(t.target_loss or 0.05, ls=":", color="grey", label="target")
    if t.ln_num_labels:
        axes[0].axhline(t.ln_num_labels, ls="--", color="grey", label="ln C")
    broken = [s for s, v in zip(steps, series("loss")) if not math.isfinite(v)]
    if broken:  # a NaN/inf loss has no place on the axis: mark its steps along the top
        axes[0].scatter(broken, [0.95] * len(broken), marker="x", color="red", label="NaN/inf",
                        transform=axes[0].get_xaxis_transform())
    axes[0].set_title("loss")
    axes[0].legend(fontsize=8)
    axes[1].plot(steps, series("accuracy"), color="#55a868", marker=marker, markersize=4)
    axes[1].set_ylim(-0.02, 1.02)
    axes[1].set_title("batch accuracy")
    axes[2].plot(steps, series("grad_norm"), color="#4c72b0", marker=marker, markersize=4)
    axes[2].set_title("gradient norm")
    pad = max(1.0, 0.02 * (steps[-1] - steps[0]))  # one point, or a NaN at the last step, stays in view
    for ax in axes[:3]:
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(steps[0] - pad, steps[-1] + pad)
    if triage:
        _draw_triage(axes[3], t)
    fig.suptitle(title)
    return save(fig, path)


def triage_rows(t: TrainingSummary) -> list[dict]:
    """The triage panel's bars, this run first: label, final loss (None: no bar), fitted, and what to
    write at the bar ('fit at step N', 'not fitted', 'skipped: why')."""
    this = TriageRun(f"this run (lr {fmt(t.lr)})", t.lr, t.fitted, t.fit_step, t.final_loss, t.final_accuracy,
                     t.steps_run)
    out = []
    for row in [this, *(t.triage or ())]:
        if row.skipped:
            note = f"skipped: {row.skipped}"
        elif row.fitted:
            note = f"fit at step {row.fit_step}"
        else:
            note = "diverged" if row.diverged else "not fitted"
        loss = row.final_loss
        out.append({"label": str(row.variant), "final_loss": loss if loss is not None and math.isfinite(loss)
                    else None, "fitted": row.fitted, "note": note})
    return out


def _draw_triage(ax, t: TrainingSummary) -> None:
    from labeldiag.render.figure import plain_label

    rows = triage_rows(t)
    y = list(range(len(rows)))
    losses = [r["final_loss"] if r["final_loss"] is not None else float("nan") for r in rows]
    ax.barh(y, losses, color=["#55a868" if r["fitted"] else "#c44e52" for r in rows])
    drawn = [v for v in losses if v > 0]
    if drawn and max(drawn) / min(drawn) > LOG_SPAN:
        ax.set_xscale("log")
    if t.ln_num_labels:
        ax.axvline(t.ln_num_labels, ls="--", color="grey", label="ln C")
        ax.legend(fontsize=8, loc="lower right")
    for i, r in enumerate(rows):
        ax.text(0.02, i, r["note"], transform=ax.get_yaxis_transform(), va="center", fontsize=8,
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1})
    ax.set_yticks(y, [plain_label(r["label"]) for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("final loss")
    ax.set_title("triage (each from the original weights)")
