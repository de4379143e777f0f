"""grad-flow's part of the report: the per-layer table, label-token gradients, and the figure."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from labeldiag.catalogue import NO_GRAD_TO_LABEL_TOKENS
from labeldiag.errors import strip_control
from labeldiag.records import GradFlowSummary
from labeldiag.render.console import SECTIONS, section
from labeldiag.render.figure import plain_label, pyplot, save
from labeldiag.render.text import fmt, print_packed
from labeldiag.render.views import draw_section, shows

if TYPE_CHECKING:
    from labeldiag.findings import Report
    from labeldiag.records import GradientHeatmap, LayerRow


LAYER_NAME_WIDTH = 24  # a layer name up to this long is never folded in the table
LABEL_OUTLINE_SHARE = 0.5  # heat-map columns where at least this share of examples hold a label token are outlined


@shows(GradFlowSummary, "grad_flow")
def draw_grad_flow(g: GradFlowSummary | None, report: Report, console: Console) -> None:
    if g is None:
        return
    print_packed(console, [f"loss {fmt(g.loss)} ({strip_control(str(g.loss_source))})", f"ln C {fmt(g.ln_num_labels)}",
                           f"total grad norm {fmt(g.total_grad_norm)}", f"lr {fmt(g.lr)}"])
    parts = [f"{strip_control(str(c.name))} {fmt(c.value)} (grad into encoder {fmt(c.encoder_grad_norm)})"
             for c in g.loss_components or ()]
    if parts:
        console.print(Text("loss components: " + ", ".join(parts)))
    if g.layers:
        table = _table("gradient per layer (depth order)")
        # a long layer name folds onto a second line; the numbers never do
        longest = max(len(strip_control(str(row.name))) for row in g.layers)
        table.add_column("layer", overflow="fold", min_width=min(longest, LAYER_NAME_WIDTH))
        for col in ("params", "grad norm", "grad/weight", "update/weight", "zero grads"):
            table.add_column(col, justify="right", no_wrap=True)
        with_state = any(row.frozen or row.no_grad for row in g.layers)
        if with_state:
            table.add_column("state")
        for row in g.layers:
            state = []
            if row.frozen:
                state.append(("frozen" if row.frozen == row.params else f"{row.frozen:,} frozen", "cyan"))
            if row.no_grad:
                state.append(("no gradient", "bold red"))
            zero = row.zero_share
            ratio_style = "dim" if row.update_weight_ratio is None else "yellow" if row.update_ratio_unusual else ""
            table.add_row(
                Text(strip_control(str(row.name))), f"{row.params:,}", fmt(row.grad_norm), fmt(row.grad_weight_ratio),
                Text(fmt(row.update_weight_ratio), style=ratio_style),
                Text("-" if zero is None else f"{zero:.0%}", style="yellow" if zero == 1.0 else ""),
                *([Text(", ".join(s for s, _ in state), style=state[0][1] if state else "")] if with_state else []))
        console.print(table)
    hidden = g.activation_gradients
    if hidden:  # --device-map: the activation-gradient mode's table
        table = _table("gradient w.r.t. each layer's hidden states (activation-gradient mode)")
        table.add_column("layer", overflow="fold")
        for col in ("all positions", "pooled position"):
            table.add_column(col, justify="right", no_wrap=True)
        for row in hidden:
            table.add_row(Text(strip_control(str(row.name))), fmt(row.grad_norm), fmt(row.pooled_grad_norm))
        console.print(table)
    label = g.label_tokens
    if label:
        starved = {f.evidence.get("layer") for f in report.findings if f.code == NO_GRAD_TO_LABEL_TOKENS}
        table = _table("gradient w.r.t. hidden states: label-token positions vs others")
        table.add_column("layer", overflow="fold")
        for col in ("label tokens (mean)", "others (median)", "share of peak"):
            table.add_column(col, justify="right", no_wrap=True)
        for row in label.layers:
            table.add_row(Text(strip_control(str(row.layer))), fmt(row.label_mean), fmt(row.other_median),
                          Text(fmt(row.share_of_peak), style="bold red" if row.layer in starved else ""))
        console.print(table)
        if label.embedding_rows:
            print_packed(console, ["word-embedding rows of the label tokens:",
                                   *(f"{strip_control(str(w))} {fmt(v)}" for w, v in label.embedding_rows.items()),
                                   f"(median row with a gradient {fmt(label.embedding_row_median)})"], sep="  ")


def _table(title: str) -> Table:
    """A table without side borders, so seven columns fit 80 characters."""
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)


if "grad-flow" not in SECTIONS:  # registered once even if the module is reloaded
    section("grad-flow")(draw_section)


def plot_grad_flow(report: Report, path: str | None):
    """Classic gradient-flow bars (mean and max |grad| per layer, log scale; a zero gradient is marked
    '0', a missing one 'none', never drawn as a tiny bar); with label tokens, a layer x position heat
    map of hidden-state gradient norms under a strip showing where the label tokens sit."""
    import numpy as np

    from labeldiag.render.figure import message_figure

    layers = report.grad_flow.layers if report.grad_flow else ()
    codes = [f.code for f in report.sorted_findings() if f.severity != "info"]
    title = "gradient flow" + (f" — {', '.join(codes[:3])}" if codes else "")
    if not layers:
        problem = next((f.message for f in report.sorted_findings()), "no layer was measured")
        return message_figure(f"no gradient was measured: {problem}", title, path)
    view = heatmap_view(report.grad_flow.heatmap)
    plt = pyplot()
    width = max(7.0, 0.45 * len(layers) + 3)
    if view is None:
        fig, ax = plt.subplots(figsize=(width, 4.2), layout="constrained")
    else:
        fig = plt.figure(figsize=(max(width, 0.12 * view["log_norm"].shape[1] + 4), 9.4), layout="constrained")
        grid = fig.add_gridspec(3, 1, height_ratios=[4.2, 0.7, 4.2])
        ax = fig.add_subplot(grid[0])
    mean, peak, marks = bar_heights(layers)
    x = np.arange(len(layers))
    if np.isfinite(peak).any():
        ax.bar(x, peak, alpha=0.35, color="#4c72b0", label="max |grad|")
        ax.bar(x, mean, alpha=0.9, color="#dd8452", label="mean |grad|")
        ax.set_yscale("log")
        ax.legend(loc="upper left")
    else:
        ax.set_yticks([])
    for i, mark in enumerate(marks):
        if mark:  # at the foot of the axis, in axis coordinates, whatever the scale
            ax.text(i, 0.02, mark, transform=ax.get_xaxis_transform(), rotation=90, ha="center", va="bottom",
                    fontsize=8, color="red")
    ax.set_xticks(x, [plain_label(row.name) for row in layers], rotation=45, ha="right")
    ax.set_ylabel("|gradient|")
    ax.set_title(title)
    if view is not None:
        _draw_heatmap(fig, grid, view)
    return save(fig, path)


def bar_heights(layers: Sequence[LayerRow]) -> tuple[list[float], list[float], list[str]]:
    """Mean and max |grad| per layer for log-scale bars; NaN (no bar) where a layer's gradient is
    zero or absent, with the mark to write there instead ('0' or 'none'; '' for a drawn bar)."""
    mean, peak, marks = [], [], []
    for row in layers:
        absent = bool(row.no_grad) or row.grad_norm is None
        zero = not absent and not (row.max_abs_grad or 0.0) > 0
        marks.append("none" if absent else ("0" if zero else ""))
        mean.append(row.mean_abs_grad if not marks[-1] and (row.mean_abs_grad or 0.0) > 0 else float("nan"))
        peak.append(row.max_abs_grad if not marks[-1] else float("nan"))
    return mean, peak, marks


def heatmap_view(heat: GradientHeatmap | None) -> dict | None:
    """What the heat map draws: log10 norms with zeros masked (drawn grey, not as a floor value), the
    share of examples holding a label token at each position, and the positions outlined."""
    import numpy as np

    if heat is None or not heat.grad_norm or not heat.grad_norm[0]:
        return None
    arr = np.asarray(heat.grad_norm, dtype=float)
    log_norm = np.ma.masked_where(~(arr > 0), np.log10(np.where(arr > 0, arr, 1.0)))
    share = np.zeros(arr.shape[1])
    given = np.asarray(heat.label_share or [], dtype=float)[: arr.shape[1]]
    share[: given.size] = given
    return {"layers": [plain_label(n) for n in heat.layers], "log_norm": log_norm, "share": share,
            "outlined": [int(p) for p in np.flatnonzero(share >= LABEL_OUTLINE_SHARE)]}


def _draw_heatmap(fig, grid, view: dict) -> None:
    import matplotlib.patches as patches
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    log_norm, share = view["log_norm"], view["share"]
    strip = fig.add_subplot(grid[1])
    heat = fig.add_subplot(grid[2], sharex=strip)
    positions = np.arange(log_norm.shape[1])
    strip.bar(positions, share, width=1.0, color="#c44e52")
    top = max(float(share.max()), 0.05)  # label words scattered over positions hold a few % each: scale to them
    strip.set_ylim(0, top)
    strip.set_yticks([0, top], ["0", f"{top:.0%}"])
    strip.set_ylabel("label\ntokens", fontsize=8)
    strip.tick_params(labelbottom=False)
    strip.set_title("where the label tokens sit: share of examples holding one at each position", fontsize=9)
    cmap = pyplot().get_cmap("viridis").with_extremes(bad="#d9d9d9")
    im = heat.imshow(log_norm, aspect="auto", cmap=cmap, interpolation="nearest")
    for p in view["outlined"]:
        heat.add_patch(patches.Rectangle((p - 0.5, -0.5), 1, log_norm.shape[0], fill=False, edgecolor="#c44e52",
                                         linewidth=1.5))
    heat.set_yticks(range(len(view["layers"])), view["layers"])
    heat.set_xlabel("position")
    heat.xaxis.set_major_locator(MaxNLocator(integer=True))
    heat.set_title("gradient norm w.r.t. hidden states, mean over examples"
                   + (" (grey: exactly zero)" if log_norm.mask.any() else ""), fontsize=9)
    fig.colorbar(im, ax=[strip, heat], fraction=0.046, label="log10 |grad|")
