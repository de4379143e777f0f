"""smoke-train's part of the report, its live view while training, and its figure."""
from __future__ import annotations

import contextlib
import math
import sys
from typing import Callable, Iterator

from rich.console import Console
from rich.table import Table

from labeldiag.findings import Report
from labeldiag.render.console import fmt, section

BARS = "▁▂▃▄▅▆▇█"


@contextlib.contextmanager
def live_view(total: int, title: str, enabled: bool = True) -> Iterator[Callable[[int, float, float, float], None]]:
    """A progress bar with step / loss / accuracy / grad norm on stderr; silent when not a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield lambda step, loss, acc, gnorm: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("loss {task.fields[loss]}  acc {task.fields[acc]}  grad-norm {task.fields[gnorm]}"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(title, total=total, loss="-", acc="-", gnorm="-")

        def update(step: int, loss: float, acc: float, gnorm: float) -> None:
            bar.update(task, completed=step, loss=fmt(loss), acc=f"{acc:.0%}", gnorm=fmt(gnorm))

        yield update


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


def _sample_rows(curve: list[dict], n: int = 6) -> list[dict]:
    if len(curve) <= n:
        return curve
    idx = sorted({round(i * (len(curve) - 1) / (n - 1)) for i in range(n)})
    return [curve[i] for i in idx]


@section("smoke-train")
def _smoke_train(report: Report, console: Console) -> None:
    m = report.metrics
    pre = m.get("preflight") or {}
    b = m.get("batch") or {}
    console.print(f"[bold]batch[/]  {b.get('examples')} examples, {b.get('classes')} classes"
                  + (f" ({', '.join(f'{k} {v}' for k, v in (b.get('label_counts') or {}).items())})"
                     if b.get("label_counts") else "")
                  + (f", {b.get('tokens')} tokens" if b.get("tokens") is not None else "")
                  + (f", {m.get('world_size')} ranks" if (m.get("world_size") or 1) > 1 else ""))
    if pre:
        console.print(f"[bold]pre-flight[/]  trainable {pre.get('trainable')}, frozen {pre.get('frozen')}, "
                      f"no gradient {pre.get('disconnected')}; loss at init {fmt(m.get('initial_loss'))} "
                      f"(ln C = {fmt(m.get('ln_num_labels'))})")
    curve = m.get("curve") or []
    if curve:
        verdict = (f"[green]fitted at step {m.get('fit_step')}[/]" + (f" in {fmt(m.get('fit_seconds'))} s"
                                                                     if m.get("fit_seconds") is not None else "")
                   if m.get("fitted") else f"[red]not fitted[/] in {m.get('steps_run')} steps")
        console.print(f"[bold]training[/]  {verdict}   lr {fmt(m.get('lr'))}   final loss {fmt(m.get('final_loss'))}"
                      f"   accuracy {fmt(m.get('final_accuracy'))}")
        console.print(f"  loss  {sparkline([c.get('loss') for c in curve])}")
        table = Table(show_edge=False, box=None, padding=(0, 2))
        for col in ("step", "loss", "accuracy", "grad norm"):
            table.add_column(col, justify="right")
        for c in _sample_rows(curve):
            table.add_row(str(c["step"]), fmt(c.get("loss")), fmt(c.get("accuracy")), fmt(c.get("grad_norm")))
        console.print(table)
        mem = m.get("peak_memory_bytes")
        console.print(f"[bold]speed[/]  {fmt(m.get('steps_per_second'))} steps/s, "
                      f"{fmt(m.get('examples_per_second'))} examples/s, {fmt(m.get('tokens_per_second'))} tokens/s; "
                      f"peak memory {_bytes(mem)} ({m.get('peak_memory_kind') or '-'}); "
                      f"{m.get('device_name')}, {m.get('precision')}")
    ranks = m.get("ranks") or []
    if len(ranks) > 1:
        t = Table(title="per rank", title_justify="left", show_edge=False)
        for col in ("rank", "steps/s", "examples/s", "tokens/s", "peak memory"):
            t.add_column(col, justify="right")
        for r in ranks:
            t.add_row(str(r.get("rank")), fmt(r.get("steps_per_second")), fmt(r.get("examples_per_second")),
                      fmt(r.get("tokens_per_second")), _bytes(r.get("peak_memory_bytes")))
        console.print(t)
    tri = m.get("triage") or []
    if tri:
        t = Table(title="triage (each from the original weights)", title_justify="left", show_edge=False)
        for col in ("variant", "fitted", "fit step", "final loss", "final accuracy"):
            t.add_column(col, justify="right" if col != "variant" else "left")
        for r in tri:
            t.add_row(r["variant"], "[green]yes[/]" if r.get("fitted") else "[red]no[/]", fmt(r.get("fit_step")),
                      fmt(r.get("final_loss")), fmt(r.get("final_accuracy")))
        console.print(t)


def _bytes(n) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def plot_training(report: Report, path: str) -> None:
    from labeldiag.render.plots import pyplot, save

    curve = report.metrics.get("curve") or []
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    steps = [c["step"] for c in curve]

    def series(key):
        return [c.get(key) if c.get(key) is not None else float("nan") for c in curve]

    axes[0].plot(steps, series("loss"), color="#c44e52")
    if any(v is not None and v > 0 for v in series("loss")):
        axes[0].set_yscale("log")
    axes[0].axhline(report.metrics.get("target_loss") or 0.05, ls=":", color="grey", label="target")
    if report.metrics.get("ln_num_labels"):
        axes[0].axhline(report.metrics["ln_num_labels"], ls="--", color="grey", label="ln C")
    axes[0].set_title("loss")
    axes[0].legend(fontsize=8)
    axes[1].plot(steps, series("accuracy"), color="#55a868")
    axes[1].set_ylim(-0.02, 1.02)
    axes[1].set_title("batch accuracy")
    axes[2].plot(steps, series("grad_norm"), color="#4c72b0")
    axes[2].set_title("gradient norm")
    for ax in axes:
        ax.set_xlabel("step")
    codes = [f.code for f in report.sorted_findings() if f.severity != "info"]
    fig.suptitle("smoke-train" + (f" — {', '.join(codes[:3])}" if codes else " — fitted"), y=1.04)
    save(fig, path)
