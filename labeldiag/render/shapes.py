"""The console section of the multi-label and regression metrics (check-logits)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from labeldiag.findings import Report


def render_shape_metrics(report: Report, console: Console) -> None:
    from labeldiag.render.text import fmt, print_packed, safe

    multilabel, regression = report.metrics.get("multilabel"), report.metrics.get("regression")
    if report.metrics.get("token"):  # issue 22
        from labeldiag.render.tokens import render_token_metrics

        render_token_metrics(report, console)
    if multilabel:
        table = Table("label", "support", "predicted", "F1", "AUROC", box=None, pad_edge=False)
        for row in multilabel["labels"][:30]:
            table.add_row(safe(row["name"]), str(row["support"]), str(row["predicted"]), fmt(row["f1"]),
                          fmt(row["auroc"]))
        console.print(f"per label, at sigmoid >= {multilabel['threshold']:g}:")
        console.print(table)
        keys = [("micro_f1", "micro-F1"), ("macro_f1", "macro-F1"), ("subset_accuracy", "subset accuracy"),
                ("gold_per_example", "gold labels/example"), ("predicted_per_example", "predicted labels/example")]
        print_packed(console, [f"{label} {fmt(multilabel.get(k))}" for k, label in keys
                               if multilabel.get(k) is not None])
    if regression and "r2" in regression:
        keys = [("r2", "R²"), ("pearson", "Pearson"), ("spearman", "Spearman"), ("spearman_p", "permutation p"),
                ("mse", "MSE"), ("target_mean", "target mean"), ("target_std", "target std"),
                ("prediction_std", "prediction std")]
        print_packed(console, [f"{label} {fmt(regression.get(k))}" for k, label in keys])
    pairwise = report.metrics.get("pairwise")
    if pairwise:
        q = pairwise["margin_quantiles"]
        print_packed(console, [f"pairwise accuracy {fmt(pairwise['accuracy'])} ({pairwise['preferred']} of "
                               f"{pairwise['pairs']} pairs, binomial p {fmt(pairwise['binomial_p'])})",
                               f"Bradley-Terry loss {fmt(pairwise['bradley_terry_loss'])}",
                               f"score std {fmt(pairwise['score_std'])}"])
        console.print("margin chosen - rejected: " + ", ".join(f"{p}% {fmt(v)}" for p, v in zip((5, 25, 50, 75, 95), q)))


def plot_shape(report: Report, path: str) -> bool:
    """The figure of a multi-label, regression or pairwise check-logits report; False for other reports."""
    from labeldiag.render.figure import plain_label, pyplot, save

    m = report.metrics
    if m.get("token"):  # issue 22
        from labeldiag.render.tokens import plot_tokens

        return plot_tokens(report, path)
    multilabel, regression, pairwise = m.get("multilabel"), m.get("regression"), m.get("pairwise")
    codes = [f.code for f in report.sorted_findings() if f.severity != "info"]
    suffix = f" — {', '.join(codes[:3])}" if codes else ""
    plt = pyplot()
    if multilabel:
        labels = multilabel["labels"][:40]
        n = max(1, multilabel["examples"])
        width = max(6.0, 0.55 * len(labels) + 2)
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(width, 6), sharex=True, layout="constrained",
                                          height_ratios=(3, 2))
        x = list(range(len(labels)))
        top.bar([i - 0.2 for i in x], [r["support"] / n for r in labels], width=0.4, label="gold share",
                color="#4c72b0")
        top.bar([i + 0.2 for i in x], [r["predicted"] / n for r in labels], width=0.4, label="predicted rate",
                color="#dd8452")
        top.set_ylabel("share of examples")
        top.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        top.set_title(f"per label, {multilabel['examples']} examples, sigmoid >= {multilabel['threshold']:g}"
                      + (f"\n{', '.join(codes[:3])}" if codes else ""))
        aurocs = [r["auroc"] if r["auroc"] is not None else 0.0 for r in labels]
        bottom.bar(x, aurocs, width=0.6, color=["#55a868" if (a or 0) >= 0.7 else "#c44e52" for a in aurocs])
        bottom.axhline(0.5, color="grey", linestyle=":", label="chance")
        for i, r in zip(x, labels):
            bottom.annotate("n/a" if r["auroc"] is None else f"{r['auroc']:.2f}", (i, aurocs[i]), ha="center",
                            va="bottom", fontsize=8)
        bottom.set_ylim(0, 1.12)
        bottom.set_ylabel("AUROC")
        bottom.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        bottom.set_xticks(x, [plain_label(r["name"]) for r in labels], rotation=45, ha="right")
    elif regression and regression.get("binned"):
        gold, pred = zip(*regression["binned"])
        fig, ax = plt.subplots(figsize=(5.5, 5), layout="constrained")
        points = regression.get("points") or ()
        if points:
            ax.scatter(*zip(*points), s=9, alpha=0.35, color="#8c8c8c",
                       label=f"examples ({len(points)} of {regression['examples']})")
        ax.plot(gold, pred, "o-", color="#4c72b0", label="mean prediction per target decile")
        xs, ys = [*gold, *(p[0] for p in points)], [*pred, *(p[1] for p in points)]
        low, high = min(min(xs), min(ys)), max(max(xs), max(ys))
        ax.plot([low, high], [low, high], ":", color="black", label="prediction = target")
        ax.set_xlabel("gold target")
        ax.set_ylabel("prediction")
        ax.legend(fontsize=8)
        ax.set_title(f"predicted vs gold (R² {regression['r2']:.3g}){suffix}")
    elif pairwise:
        edges, counts = pairwise["margin_histogram"]
        fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
        ax.bar(edges[:-1], counts, width=[b - a for a, b in zip(edges, edges[1:])] or 1.0, align="edge",
               color="#4c72b0", edgecolor="white", linewidth=0.5)
        if len(counts) == 1:  # one bin: every margin is the same number
            ax.text(0.02, 0.95, f"all {pairwise['pairs']} margins equal {pairwise['margin_mean']:.3g}",
                    transform=ax.transAxes, va="top", fontsize=9, bbox={"facecolor": "white", "edgecolor": "none"})
        if edges[0] <= 0 <= edges[-1]:  # the line where chosen and rejected tie, when the margins reach it
            ax.axvline(0, color="grey", linestyle=":")
        else:
            side = "above" if edges[0] > 0 else "below"
            ax.text(0.02, 0.95, f"every margin {side} 0", transform=ax.transAxes, va="top", fontsize=9)
        ax.ticklabel_format(axis="x", useOffset=False)
        ax.set_xlabel("margin: score(chosen) - score(rejected)")
        ax.set_ylabel("pairs")
        ax.set_title(f"{pairwise['pairs']} pairs, pairwise accuracy {pairwise['accuracy']:.1%}{suffix}")
    else:
        return False
    save(fig, path)
    return True
