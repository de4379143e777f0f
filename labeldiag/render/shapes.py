"""The console section of the multi-label and regression metrics (check-logits)."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from labeldiag.findings import Report


def render_shape_metrics(report: Report, console: Console) -> None:
    from labeldiag.render.console import fmt, print_packed, safe

    multilabel, regression = report.metrics.get("multilabel"), report.metrics.get("regression")
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
