"""Gradients at label-token positions (per layer) and into the label words' embedding rows."""
from __future__ import annotations

from typing import Any

import numpy as np

from labeldiag import thresholds as T
from labeldiag.records import LabelTokenGrad



class LabelAccumulator:
    """Collects per-position hidden-state gradient norms across micro-batches."""

    def __init__(self, names: list[str], token_ids: list[int] | None, positions: list[int] | None):
        self.names = names
        self.token_ids = token_ids
        self.positions = positions
        self.label: list[list[np.ndarray]] = [[] for _ in names]
        self.other: list[list[np.ndarray]] = [[] for _ in names]
        self.peaks: list[list[np.ndarray]] = [[] for _ in names]
        self.heat_sum = np.zeros((len(names), T.GRAD_HEATMAP_MAX_POSITIONS))
        self.heat_count = np.zeros(T.GRAD_HEATMAP_MAX_POSITIONS)
        self.found: set[int] = set()

    def add(self, grads: dict, input_ids, attention_mask, per_example_weight: float) -> None:
        import torch

        ids = input_ids.detach().cpu().numpy()
        mask = attention_mask.detach().cpu().numpy().astype(bool)
        label_mask = np.zeros_like(mask)
        if self.token_ids is not None:
            for k, tid in enumerate(self.token_ids):
                hit = (ids == tid) & mask
                if hit.any():
                    self.found.add(k)
                label_mask |= hit
        else:
            for k, pos in enumerate(self.positions or []):
                if pos < ids.shape[1]:
                    hit = mask[:, pos]
                    if hit.any():
                        self.found.add(k)
                    label_mask[:, pos] |= hit
        other_mask = mask & ~label_mask
        width = min(ids.shape[1], T.GRAD_HEATMAP_MAX_POSITIONS)
        self.heat_count[:width] += mask[:, :width].sum(0)
        for i in range(len(self.names)):
            g = grads.get(i)
            if g is None:
                norms = np.zeros(mask.shape)
            else:
                # undo the batch-share weighting so micro-batches of different sizes compare
                norms = torch.linalg.vector_norm(g.float(), dim=-1).cpu().numpy() / per_example_weight
                if norms.shape != mask.shape:
                    continue
            self.label[i].append(norms[label_mask])
            self.other[i].append(norms[other_mask])
            self.peaks[i].append(np.where(mask, norms, 0.0).max(1))
            self.heat_sum[i, :width] += np.where(mask, norms, 0.0)[:, :width].sum(0)

    def result(self, model: Any, token_ids: list[int] | None, words: list[str] | None) -> LabelTokenGrad:
        def cat(parts):
            return np.concatenate(parts) if parts else np.zeros(0)

        label_mean, other_median, peak = [], [], []
        for i in range(len(self.names)):
            lab, oth, pk = cat(self.label[i]), cat(self.other[i]), cat(self.peaks[i])
            label_mean.append(float(lab.mean()) if lab.size else 0.0)
            other_median.append(float(np.median(oth)) if oth.size else 0.0)
            peak.append(float(pk.mean()) if pk.size else 0.0)
        occurrences = int(cat(self.label[0]).size) if self.names else 0
        count = len(token_ids) if token_ids is not None else len(self.positions or [])
        described = words if words is not None else [str(p) for p in (self.positions or [])]
        missing = [described[k] if k < len(described) else str(k) for k in range(count) if k not in self.found]
        used = self.heat_count > 0
        last = int(np.nonzero(used)[0].max()) + 1 if used.any() else 0
        heat = (self.heat_sum[:, :last] / np.maximum(self.heat_count[:last], 1)).tolist()
        rows, row_median = None, None
        if token_ids is not None:
            rows, row_median = _embedding_rows(model, token_ids, words or [str(t) for t in token_ids])
        return LabelTokenGrad(layers=list(self.names), label_mean=label_mean, other_median=other_median,
                              peak=peak, occurrences=occurrences, missing=missing, heat=heat,
                              embedding_rows=rows, embedding_row_median=row_median)


def _embedding_rows(model: Any, token_ids: list[int], words: list[str]) -> tuple[dict | None, float | None]:
    import torch

    from labeldiag.measure.dtensor import full

    try:
        emb = model.get_input_embeddings()
    except Exception:
        return None, None
    weight = getattr(emb, "weight", None)
    if weight is None or weight.grad is None:
        return None, None
    with torch.no_grad():
        norms = torch.linalg.vector_norm(full(weight.grad).float(), dim=1)  # whole table when sharded
        got = norms[norms > 0]
        median = float(got.median()) if got.numel() else 0.0
        rows = {w: float(norms[t]) for w, t in zip(words, token_ids) if 0 <= t < norms.shape[0]}
    return rows, median
