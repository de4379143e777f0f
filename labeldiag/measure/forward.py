"""Batched inference: sorted by length, dynamically padded, under inference mode.

Keeps only what the checks need: the logits and the features that feed the head (pooled /
[CLS] vector), never all hidden states of all examples.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from labeldiag.measure.encode import Encoded
from labeldiag.measure.runtime import Runtime, call_model, extract_logits, filter_inputs, forward_params

FEATURE_MODULES = ("pre_classifier", "classifier", "score", "classification_head", "head", "fc", "out_proj")


@dataclass
class ForwardResult:
    logits: np.ndarray  # [N, C] float32, in example order
    features: np.ndarray | None  # [N, H] float32 features feeding the head, or None
    feature_source: str | None
    seconds: float = 0.0


def make_batches(enc: Encoded, batch_size: int, sort: bool = True) -> list[np.ndarray]:
    """Index batches; longest first so padding is minimal and memory peaks show up at once."""
    order = np.argsort(-enc.lengths, kind="stable") if sort else np.arange(len(enc.ids))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def collate(enc: Encoded, idx: np.ndarray, device: Any) -> dict:
    import torch

    width = max(1, max(len(enc.ids[i]) for i in idx))
    ids = np.full((len(idx), width), enc.pad_id, dtype=np.int64)
    mask = np.zeros((len(idx), width), dtype=np.int64)
    types = np.zeros((len(idx), width), dtype=np.int64) if enc.type_ids is not None else None
    for row, i in enumerate(idx):
        n = len(enc.ids[i])
        ids[row, :n] = enc.ids[i]
        mask[row, :n] = 1
        if types is not None:
            types[row, :n] = enc.type_ids[i]
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
    """Captures the first input of the head module per forward call (its [CLS] row if 3-D)."""

    def __init__(self, model: Any):
        self.name, module = find_feature_module(model)
        self.captured: Any = None
        self.handle = None
        if module is not None:
            self.handle = module.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        if self.captured is not None:
            return None
        x = args[0] if args else next(iter(kwargs.values()), None)
        import torch

        if isinstance(x, torch.Tensor) and x.dim() in (2, 3):
            x = x[:, 0] if x.dim() == 3 else x
            self.captured = x.detach().float().cpu().numpy()
        return None

    def take(self) -> np.ndarray | None:
        out, self.captured = self.captured, None
        return out

    def close(self) -> None:
        if self.handle is not None:
            self.handle.remove()


def run_forward(model: Any, enc: Encoded, runtime: Runtime, batch_size: int, *,
                capture_features: bool = True, sort: bool = True,
                progress: Callable[[int], None] | None = None,
                extra_inputs: dict | None = None) -> ForwardResult:
    import time

    import torch

    params = forward_params(model)
    n = len(enc.ids)
    logits: list[np.ndarray | None] = [None] * n
    feats: list[np.ndarray | None] = [None] * n
    tap = FeatureTap(model) if capture_features else None
    start = time.perf_counter()
    try:
        with torch.inference_mode(), runtime.autocast():
            for idx in make_batches(enc, batch_size, sort):
                batch = filter_inputs(collate(enc, idx, runtime.device), params)
                if extra_inputs:
                    batch.update(extra_inputs)
                out = call_model(model, batch)
                arr = extract_logits(out, len(idx))
                f = tap.take() if tap is not None else None
                for row, i in enumerate(idx):
                    logits[i] = arr[row]
                    if f is not None and f.shape[0] == len(idx):
                        feats[i] = f[row]
                if progress is not None:
                    progress(len(idx))
    finally:
        if tap is not None:
            tap.close()
    widths = {x.shape[0] for x in logits}
    if len(widths) > 1:
        from labeldiag.errors import ModelCodeError

        raise ModelCodeError(f"the model returned logits of different widths across batches ({sorted(widths)})")
    features = np.stack(feats) if all(f is not None for f in feats) and n else None
    return ForwardResult(logits=np.stack(logits).astype(np.float32), features=features,
                         feature_source=tap.name if (tap is not None and features is not None) else None,
                         seconds=time.perf_counter() - start)

