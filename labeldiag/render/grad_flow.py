"""grad-flow's part of the report: the per-layer table, label-token gradients, and the figure."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from labeldiag.findings import Report
from labeldiag.render.console import SECTIONS, fmt, section
from labeldiag.render.plots import pyplot, save


def _ratio_style(value) -> str:
    if value is None:
        return "dim"
    return "yellow" if value > 1e-2 or value < 1e-5 else ""  # far from the ~1e-3 rule of thumb


def draw_grad_flow(report: Report, console: Console) -> None:
    m = report.metrics
    layers = m.get("layers") or []
    if m.get("loss") is not None or "loss" in m:
        console.print(f"loss {fmt(m.get('loss'))} ({m.get('loss_source')})   ln C {fmt(m.get('ln_num_labels'))}   "
                      f"total grad norm {fmt(m.get('total_grad_norm'))}   lr {fmt(m.get('lr'))}")
    parts = [f"{name} {fmt(c.get('value'))} (grad into encoder {fmt(c.get('encoder_grad_norm'))})"
             for name, c in (m.get("loss_components") or {}).items()]
    if parts:
        console.print("loss components: " + ", ".join(parts))
    if layers:
        table = Table(title="gradient per layer (depth order)", title_justify="left")
        for col, justify in (("layer", "left"), ("params", "right"), ("grad norm", "right"),
                             ("grad/weight", "right"), ("update/weight", "right"), ("zero grads", "right"),
                             ("state", "left")):
            table.add_column(col, justify=justify)
        for row in layers:
            state = []
            if row.get("frozen"):
                state.append(("frozen" if row["frozen"] == row["params"] else f"{row['frozen']:,} frozen", "cyan"))
            if row.get("no_grad"):
                state.append(("no gradient", "bold red"))
            zero = row.get("zero_share")
            table.add_row(
                row["name"], f"{row['params']:,}", fmt(row.get("grad_norm")), fmt(row.get("grad_weight_ratio")),
                Text(fmt(row.get("update_weight_ratio")), style=_ratio_style(row.get("update_weight_ratio"))),
                Text("-" if zero is None else f"{zero:.0%}", style="yellow" if zero == 1.0 else ""),
                Text(", ".join(s for s, _ in state), style=state[0][1] if state else ""))
        console.print(table)
    label = m.get("label_token_gradients")
    if label:
        table = Table(title="gradient w.r.t. hidden states: label-token positions vs others", title_justify="left")
        for col in ("layer", "label tokens (mean)", "others (median)", "share of peak"):
            table.add_column(col, justify="left" if col == "layer" else "right")
        for row in label["layers"]:
            share = row.get("share_of_peak")
            table.add_row(row["layer"], fmt(row.get("label_mean")), fmt(row.get("other_median")),
                          Text(fmt(share), style="bold red" if share is not None and share < 1e-3 else ""))
        console.print(table)
        rows = label.get("embedding_rows")
        if rows:
            txt = ", ".join(f"{w} {fmt(v)}" for w, v in rows.items())
            console.print(f"word-embedding rows of the label tokens: {txt}   "
                          f"(median row with a gradient {fmt(label.get('embedding_row_median'))})")


if "grad-flow" not in SECTIONS:  # registered once even if the module is reloaded
    section("grad-flow")(draw_grad_flow)


def plot_grad_flow(report: Report, path: str) -> None:
    """Classic gradient-flow bars (mean and max |grad| per layer, log scale); with label tokens, a
    layer x position heat map of hidden-state gradient norms."""
    import numpy as np

    m = report.metrics
    layers = [row for row in (m.get("layers") or [])]
    heat = (m.get("label_token_heatmap") or {}).get("grad_norm")
    plt = pyplot()
    n_plots = 2 if heat else 1
    fig, axes = plt.subplots(n_plots, 1, figsize=(max(7.0, 0.45 * len(layers) + 3), 4.2 * n_plots), squeeze=False)
    ax = axes[0][0]
    x = np.arange(len(layers))
    tiny = 1e-12  # log scale: zero/absent gradients drawn at the floor
    mean = [max(row.get("mean_abs_grad") or 0.0, tiny) for row in layers]
    peak = [max(row.get("max_abs_grad") or 0.0, tiny) for row in layers]
    ax.bar(x, peak, alpha=0.35, color="#4c72b0", label="max |grad|")
    ax.bar(x, mean, alpha=0.9, color="#dd8452", label="mean |grad|")
    for i, row in enumerate(layers):
        if row.get("no_grad") or row.get("grad_norm") is None:
            ax.text(i, tiny * 10, "none", rotation=90, ha="center", va="bottom", fontsize=8, color="red")
    ax.set_yscale("log")
    ax.set_xticks(x, [row["name"] for row in layers], rotation=45, ha="right")
    ax.set_ylabel("|gradient|")
    codes = [f.code for f in report.sorted_findings() if f.severity != "info"]
    ax.set_title("gradient flow" + (f" — {', '.join(codes[:3])}" if codes else ""))
    ax.legend(loc="upper left")
    if heat:
        names = m["label_token_heatmap"]["layers"]
        arr = np.asarray(heat, dtype=float)
        ax2 = axes[1][0]
        im = ax2.imshow(np.log10(np.maximum(arr, tiny)), aspect="auto", cmap="viridis", interpolation="nearest")
        ax2.set_yticks(range(len(names)), names)
        ax2.set_xlabel("position")
        ax2.set_title("log10 gradient norm w.r.t. hidden states (mean over examples)")
        fig.colorbar(im, ax=ax2, fraction=0.046)
    fig.tight_layout()
    save(fig, path)
