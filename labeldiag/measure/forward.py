"""Batched inference: sorted by length, dynamically padded, under inference mode.

Keeps only what the checks need: the logits and the features that feed the head (pooled /
[CLS] vector), never all hidden states of all examples.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from labeldiag.measure.encode import Encoded
from labeldiag.measure.runtime import (Runtime, base_of, call_model, extract_logits, filter_inputs, forward_params,
                                       last_token_positions)

FEATURE_MODULES = ("pre_classifier", "classifier", "score", "classification_head", "head", "fc", "out_proj")


@dataclass
class ForwardResult:
    logits: np.ndarray  # [N, C] float32, in example order
    features: np.ndarray | None  # [min(N, feature_rows), H] float32 features feeding the head, or None
    feature_source: str | None
    seconds: float = 0.0


def make_batches(enc: Encoded, batch_size: int, sort: bool = True, max_tokens: int | None = None,
                 max_rows: int | None = None) -> list[np.ndarray]:
    """Index batches; longest first so padding is minimal and memory peaks show up at once.

    With max_tokens (sorted only), a batch takes as many rows as fit rows x its longest member
    <= max_tokens (at least batch_size, at most max_rows): short examples share bigger batches.
    """
    lengths = enc.lengths
    order = np.argsort(-lengths, kind="stable") if sort else np.arange(len(enc.ids))
    if max_tokens is None or not sort:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    batches, start = [], 0
    while start < len(order):
        rows = max(batch_size, max_tokens // max(1, int(lengths[order[start]])))
        if max_rows is not None:
            rows = min(rows, max(batch_size, max_rows))
        batches.append(order[start:start + rows])
        start += rows
    return batches


def collate(enc: Encoded, idx: np.ndarray, device: Any, side: str = "right") -> dict:
    """Rows of `enc` padded with its pad id on `side`, as a tokenizer with that padding_side does."""
    import torch

    width = max(1, max(len(enc.ids[i]) for i in idx))
    ids = np.full((len(idx), width), enc.pad_id, dtype=np.int64)
    mask = np.zeros((len(idx), width), dtype=np.int64)
    types = np.zeros((len(idx), width), dtype=np.int64) if enc.type_ids is not None else None
    for row, i in enumerate(idx):
        n = len(enc.ids[i])
        span = slice(0, n) if side == "right" else slice(width - n, width)
        ids[row, span] = enc.ids[i]
        mask[row, span] = 1
        if types is not None:
            types[row, span] = enc.type_ids[i]
    batch = {"input_ids": torch.from_numpy(ids).to(device), "attention_mask": torch.from_numpy(mask).to(device)}
    if types is not None:
        batch["token_type_ids"] = torch.from_numpy(types).to(device)
    return batch


def find_feature_module(model: Any) -> tuple[str | None, Any]:
    for name in FEATURE_MODULES:
        mod = getattr(model, name, None)
        if mod is not None and hasattr(mod, "register_forward_pre_hook"):
            return name, mod
    return None, None


class FeatureTap:
    """Captures the first input of the head module per forward call, pooled as the model pools it.

    A head that maps [B, T, H] to [B, C] pools inside (its [CLS] row is taken); a head applied at
    every position ([B, T, C], transformers' decoder classifiers) is read at the last non-pad token.
    """

    def __init__(self, model: Any):
        self.name, module = find_feature_module(model)
        self.captured: Any = None
        self.input_ids: Any = None
        self.pad_id = getattr(getattr(base_of(model), "config", None), "pad_token_id", None)
        self.handles = []
        if module is not None:
            self.handles = [model.register_forward_pre_hook(self._inputs, with_kwargs=True),
                            module.register_forward_hook(self._hook, with_kwargs=True)]

    def _inputs(self, module, args, kwargs):
        self.input_ids = kwargs.get("input_ids", args[0] if args else None)

    def _hook(self, module, args, kwargs, output):
        if self.captured is not None:
            return None
        x = args[0] if args else next(iter(kwargs.values()), None)
        import torch

        if isinstance(x, torch.Tensor) and x.dim() in (2, 3):
            per_position = isinstance(output, torch.Tensor) and output.dim() == 3 and x.dim() == 3
            if per_position and isinstance(self.input_ids, torch.Tensor) and self.input_ids.shape[:2] == x.shape[:2]:
                last = last_token_positions(self.input_ids, self.pad_id).to(x.device)
                x = x[torch.arange(x.shape[0], device=x.device), last]
            elif x.dim() == 3:
                x = x[:, 0]
            self.captured = x.detach().float().cpu().numpy()
        return None

    def take(self) -> np.ndarray | None:
        out, self.captured = self.captured, None
        return out

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def run_forward(model: Any, enc: Encoded, runtime: Runtime, batch_size: int, *,
                capture_features: bool = True, feature_rows: int | None = None, sort: bool = True,
                progress: Callable[[int], None] | None = None, max_tokens: int | None = None) -> ForwardResult:
    """Logits of every example (and head features of the first feature_rows, default all), in example order.

    Memory stays flat in N: each batch's logits are copied into one [N, C] array and only the bounded
    feature sample is copied out, so no batch output (nor the hidden states a feature row may be a view
    of) outlives its batch. The heap is not trimmed between batches: the next batch would fault the
    same pages in again (measured: 4x the page faults, ~5 % of the forward time on a CPU), and batches
    sorted longest first fit in the memory the first one freed.

    max_tokens lets short examples share batches bigger than batch_size (see make_batches). Off by
    default: on a CPU it measured no faster (benchmarks/bench_forward.py), since sorting already
    removes most padding and the work grows with real tokens, not with the number of batches.
    """
    import time

    import torch

    params = forward_params(model)
    n = len(enc.ids)
    sampled = n if feature_rows is None else min(n, feature_rows)
    logits: np.ndarray | None = None
    widths: set[int] = set()
    features: np.ndarray | None = None
    every_batch_tapped = True
    tap = FeatureTap(model) if capture_features else None
    start = time.perf_counter()
    try:
        with torch.inference_mode(), runtime.autocast():
            for idx in make_batches(enc, batch_size, sort, max_tokens=max_tokens):
                batch = filter_inputs(collate(enc, idx, runtime.device), params)
                out = call_model(model, batch)
                arr = extract_logits(out, len(idx))[: len(idx)]
                widths.add(arr.shape[1])
                if logits is None:
                    logits = np.empty((n, arr.shape[1]), dtype=np.float32)
                if len(widths) == 1:
                    logits[idx] = arr
                f = tap.take() if tap is not None else None
                if f is None or f.shape[0] != len(idx):
                    every_batch_tapped = False
                elif every_batch_tapped:
                    if features is None:
                        features = np.empty((sampled, *f.shape[1:]), dtype=f.dtype)
                    wanted = idx < sampled
                    features[idx[wanted]] = f[wanted]
                if progress is not None:
                    progress(len(idx))
                del batch, out, arr, f  # freed now, not when the next batch replaces them
    finally:
        if tap is not None:
            tap.close()
    if len(widths) > 1:
        from labeldiag.errors import ModelCodeError

        raise ModelCodeError(f"the model returned logits of different widths across batches ({sorted(widths)})")
    if logits is None:
        raise ValueError("run_forward needs at least one example")
    features = features if every_batch_tapped else None
    return ForwardResult(logits=logits, features=features,
                         feature_source=tap.name if (tap is not None and features is not None) else None,
                         seconds=time.perf_counter() - start)



def whole_batch_rows(enc: Encoded, batch_size: int, wanted: int, seed: int) -> np.ndarray:
    """Rows of randomly chosen whole batches of run_forward's batching (about `wanted` rows), in example order.

    run_forward on subset(enc, rows) then forms exactly those batches again (the same examples with the
    same neighbours and padding: a stable sort by length keeps their order, and every batch but the
    last is full), so two passes differ only where the forward itself is nondeterministic.
    """
    batches = make_batches(enc, batch_size)
    take = max(1, min(len(batches), -(-wanted // batch_size)))
    picked = np.random.default_rng(seed).choice(len(batches), size=take, replace=False)
    return np.sort(np.concatenate([batches[i] for i in picked]))
