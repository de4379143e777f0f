"""The console section and the figure of a token classifier's check-logits report (issue 22)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from labeldiag.findings import Report


def render_token_metrics(report: Report, console: Console) -> None:
    from labeldiag.render.text import fmt, print_packed, safe

    token = report.metrics.get("token")
    if not token or "tags" not in token:
        return
    table = Table("tag", "support", "predicted", "predicted rate", "precision", "recall", box=None, pad_edge=False)
    for row in token["tags"][:40]:
        table.add_row(safe(row["name"]), str(row["support"]), str(row["predicted"]), fmt(row["predicted_rate"]),
                      fmt(row["precision"]), fmt(row["recall"]))
    console.print(f"per tag, over {token['tokens']} labelled tokens of {token['labelled_examples']} examples:")
    console.print(table)
    keys = [("accuracy", "token accuracy"), ("accuracy_without_o", "accuracy without O"),
            ("entity_precision", "entity precision"), ("entity_recall", "entity recall"), ("entity_f1", "entity F1")]
    parts = [f"{label} {fmt(token.get(k))}" for k, label in keys if token.get(k) is not None]
    if token.get("gold_entities"):
        parts.append(f"entities gold {token['gold_entities']}, predicted {token['predicted_entities']}, exact "
                     f"{token['correct_entities']}")
    print_packed(console, parts)


def plot_tokens(report: Report, path: str) -> bool:
    """The tag confusion matrix (rows gold, columns predicted, share of each gold tag)."""
    import numpy as np

    from labeldiag.render.figure import plain_label, pyplot, save

    token = report.metrics.get("token") or {}
    if not token.get("confusion"):
        return False
    table = np.array(token["confusion"], dtype=float)
    names = [plain_label(t["name"]) for t in token["tags"]]
    shares = table / np.maximum(table.sum(1, keepdims=True), 1)
    codes = [f.code for f in report.sorted_findings() if f.severity != "info"]
    plt = pyplot()
    size = max(4.0, 0.45 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85), layout="constrained")
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="share of the gold tag")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted tag")
    ax.set_ylabel("gold tag")
    f1 = token.get("entity_f1")
    ax.set_title("tag confusion" + (f", entity F1 {f1:.3f}" if f1 is not None else "")
                 + (f" — {', '.join(codes[:3])}" if codes else ""))
    save(fig, path)
    return True
