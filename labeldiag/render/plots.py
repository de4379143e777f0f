"""PNG figures with matplotlib (Agg backend, imported only when --plot is given)."""
from __future__ import annotations

from pathlib import Path

from labeldiag.errors import UsageError
from labeldiag.findings import Report


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str) -> None:
    try:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    except OSError as exc:
        raise UsageError(f"--plot '{path}' could not be written ({exc.strerror or exc})") from None
    finally:
        pyplot().close(fig)


def plot_confusion(report: Report, path: str) -> None:
    import numpy as np

    m = report.metrics
    matrix, names = m.get("confusion_matrix"), m.get("confusion_labels")
    plt = pyplot()
    if not matrix:
        hist = m.get("prediction_histogram") or {}
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar(list(hist), list(hist.values()), color="#4c72b0")
        ax.set_title("predicted class histogram (no gold labels)")
        save(fig, path)
        return
    arr = np.asarray(matrix, dtype=float)
    size = max(4.0, 0.6 * len(names) + 2.5)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    norm = arr / np.clip(arr.sum(1, keepdims=True), 1, None)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), [f"{i}:{n}" for i, n in enumerate(names)], rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted logit")
    ax.set_ylabel("gold label")
    for i in range(arr.shape[0]):
        for j in range(arr.shape[1]):
            ax.text(j, i, int(arr[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    codes = [f.code for f in report.sorted_findings() if f.severity != "info"]
    ax.set_title("confusion matrix" + (f" — {', '.join(codes[:3])}" if codes else ""))
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of gold row")
    Path(path)
    save(fig, path)
