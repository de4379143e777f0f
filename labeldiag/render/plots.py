"""check-logits' figure: the confusion matrix, or the task shape's own figure (drawn with render.figure)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from labeldiag.render.figure import message_figure, plain_label, pyplot, save

if TYPE_CHECKING:
    from labeldiag.findings import Report


# more columns than this and a confusion figure gets unreadable; the least predicted go into 'other'
FIGURE_MAX_COLUMNS = 40


def confusion_figure_data(matrix: list[list[int]], names: list) -> dict:
    """What plot_confusion draws: rows are the gold classes present, columns the predicted logits (and
    the rows' own), the least predicted folded into 'other' past FIGURE_MAX_COLUMNS."""
    import numpy as np

    from labeldiag.render.console import confusion_axes

    rows, columns, ranked = confusion_axes(matrix)
    folded = []
    if len(columns) > FIGURE_MAX_COLUMNS:
        columns, folded = sorted(ranked[:FIGURE_MAX_COLUMNS - 1]), sorted(ranked[FIGURE_MAX_COLUMNS - 1:])
    arr = np.asarray(matrix, dtype=float)[np.ix_(rows, columns)]
    label = [plain_label(names[i]) if i < len(names) else str(i) for i in range(len(matrix))]
    col_labels = [f"{j}:{label[j]}" for j in columns]
    if folded:
        arr = np.column_stack([arr, np.asarray(matrix, dtype=float)[np.ix_(rows, folded)].sum(1)])
        col_labels.append(f"other ({len(folded)})")
    return {"counts": arr, "row_labels": [f"{i}:{label[i]}" for i in rows], "column_labels": col_labels,
            "rows": rows, "columns": columns, "folded": folded}


def plot_confusion(report: Report, path: str | None):
    import numpy as np

    from labeldiag.render.shapes import plot_shape

    if plot_shape(report, path):
        return
    lg = report.logits
    matrix = [list(row) for row in lg.confusion_matrix or ()] if lg else []
    names = list(lg.confusion_labels or ()) if lg else []
    codes = [f.code for f in report.sorted_findings() if f.severity != "info"]
    title = "confusion matrix" + (f" — {', '.join(codes[:3])}" if codes else "")
    plt = pyplot()
    if not matrix or not any(map(any, matrix)):
        hist = lg.prediction_histogram if lg else {}
        if not hist:
            problem = next((f.message for f in report.sorted_findings()), "no prediction was made")
            return message_figure(f"nothing to draw: {problem}", title, path)
        fig, ax = plt.subplots(figsize=(max(6.0, 0.4 * len(hist) + 2), 3.5), layout="constrained")
        ax.bar([plain_label(k) for k in hist], list(hist.values()), color="#4c72b0")
        ax.tick_params(axis="x", labelrotation=45)
        ax.set_title("predicted class histogram (no gold labels)")
        return save(fig, path)
    data = confusion_figure_data(matrix, names)
    arr = data["counts"]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * arr.shape[1] + 3), max(3.0, 0.5 * arr.shape[0] + 2.5)),
                           layout="constrained")
    norm = arr / np.clip(arr.sum(1, keepdims=True), 1, None)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(arr.shape[1]), data["column_labels"], rotation=45, ha="right")
    ax.set_yticks(range(arr.shape[0]), data["row_labels"])
    ax.set_xlabel("predicted logit")
    ax.set_ylabel("gold label")
    for i in range(arr.shape[0]):
        for j in range(arr.shape[1]):
            ax.text(j, i, int(arr[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black",
                    fontsize=8 if arr.shape[1] > 12 else 10)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of gold row")
    return save(fig, path)
