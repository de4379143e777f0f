"""The console section of the multi-label and regression metrics (check-logits)."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from labeldiag.findings import Report


def render_shape_metrics(report: Report, console: Console) -> None:
    from labeldiag.render.console import fmt, print_packed, safe

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
    from labeldiag.render.plots import plain_label, pyplot, save

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
        fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(labels) + 2), 4), layout="constrained")
        x = range(len(labels))
        ax.bar([i - 0.2 for i in x], [r["support"] for r in labels], width=0.4, label="gold support", color="#4c72b0")
        ax.bar([i + 0.2 for i in x], [r["predicted"] for r in labels], width=0.4, label="predicted",
               color="#dd8452")
        for i, r in zip(x, labels):
            if r["auroc"] is not None:
                ax.annotate(f"AUROC {r['auroc']:.2f}", (i, max(r["support"], r["predicted"])), ha="center",
                            va="bottom", fontsize=8)
        ax.set_xticks(list(x), [plain_label(r["name"]) for r in labels], rotation=45, ha="right")
        ax.set_ylabel("examples")
        ax.legend()
        ax.set_title(f"per label at sigmoid >= {multilabel['threshold']:g}{suffix}")
    elif regression and regression.get("binned"):
        gold, pred = zip(*regression["binned"])
        fig, ax = plt.subplots(figsize=(5, 4.5), layout="constrained")
        ax.plot(gold, pred, "o-", color="#4c72b0", label="mean prediction per target decile")
        low, high = min(min(gold), min(pred)), max(max(gold), max(pred))
        ax.plot([low, high], [low, high], ":", color="grey", label="prediction = target")
        ax.set_xlabel("target")
        ax.set_ylabel("prediction")
        ax.legend()
        ax.set_title(f"predicted vs gold (R² {regression['r2']:.3g}){suffix}")
    elif pairwise:
        edges, counts = pairwise["margin_histogram"]
        fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
        ax.stairs(counts, edges, fill=True, color="#4c72b0")
        ax.axvline(0, color="grey", linestyle=":")
        ax.set_xlabel("margin: score(chosen) - score(rejected)")
        ax.set_ylabel("pairs")
        ax.set_title(f"pairwise accuracy {pairwise['accuracy']:.1%}{suffix}")
    else:
        return False
    save(fig, path)
    return True
