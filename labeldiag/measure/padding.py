"""Padding: the pad token of decoder classifiers, and whether padding changes a model's logits.

transformers' decoder classifiers (Llama, Qwen2, Mistral, Gemma, GPT-2 ...ForSequenceClassification)
score every position and read the rightmost token that is not config.pad_token_id, so they need a
pad id to batch. The probe runs a sample of examples one at a time (no padding at all) and again
batched next to the longest example (so each is padded), on each padding side the pipeline uses.
"""
from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from labeldiag import thresholds as T
from labeldiag.measure.encode import Encoded
from labeldiag.measure.forward import collate
from labeldiag.measure.runtime import (
    Runtime,
    base_of,
    call_model,
    extract_logits,
    filter_inputs,
    forward_params,
)
from labeldiag.records import PaddingProbe, TemporaryPad, padding_limit


def pools_last_token(model: Any) -> bool:
    """Does the classifier read the last non-pad token (transformers' decoder classifiers)?"""
    import torch

    base = base_of(model)
    if isinstance(getattr(base, "score", None), torch.nn.Linear):
        return True
    try:
        return "last_non_pad_token" in inspect.getsource(type(base).forward)
    except (OSError, TypeError):
        return False


def ensure_pad_token(model: Any, tokenizer: Any) -> TemporaryPad | None:
    """Give a decoder classifier without pad_token_id a temporary one (in memory only); None when it has one."""
    config = getattr(base_of(model), "config", None)
    if config is None or getattr(config, "pad_token_id", None) is not None or not pools_last_token(model):
        return None
    tok_pad = getattr(tokenizer, "pad_token_id", None) if tokenizer is not None else None
    eos = getattr(tokenizer, "eos_token_id", None) if tokenizer is not None else None
    if eos is None:
        eos = getattr(config, "eos_token_id", None)
        eos = eos[0] if isinstance(eos, (list, tuple)) and eos else eos
    if tok_pad is not None:
        pad, source = int(tok_pad), "the tokenizer's pad token"
    elif isinstance(eos, int):
        pad, source = eos, "the eos token"
    else:
        pad, source = 0, "token id 0"
    config.pad_token_id = pad
    return TemporaryPad(type(base_of(model)).__name__, pad, source, tok_pad is not None)


def padding_sides(tokenizer: Any) -> list[str]:
    """Right (labeldiag's own batches) and the tokenizer's side when that is left."""
    return ["right", "left"] if getattr(tokenizer, "padding_side", "right") == "left" else ["right"]


def probe_padding(model: Any, enc: Encoded, runtime: Runtime, sides: list[str], seed: int) -> list[PaddingProbe]:
    """One probe per side; empty when every example has the same length (nothing gets padded)."""
    import torch

    lengths = enc.lengths
    longest = int(np.argmax(lengths)) if len(lengths) else 0
    shorter = np.flatnonzero(lengths < lengths[longest]) if len(lengths) else np.zeros(0, int)
    if not shorter.size:
        return []
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(shorter, size=min(shorter.size, T.PADDING_SAMPLE), replace=False))
    params = forward_params(model)
    model.eval()
    out = []
    with torch.inference_mode(), runtime.autocast():
        # examples of one length need no padding, so each length is one unpadded batch
        def unpadded() -> np.ndarray:
            by_row: dict[int, np.ndarray] = {}
            for length in np.unique(lengths[sample]):
                rows = np.flatnonzero(lengths[sample] == length)
                batch = filter_inputs(collate(enc, sample[rows], runtime.device, "right"), params)
                by_row.update(zip(rows.tolist(), extract_logits(call_model(model, batch), len(rows))))
            return np.stack([by_row[r] for r in range(len(sample))]).astype(np.float64)

        alone = unpadded()
        for side in sides:
            idx = np.concatenate([sample, [longest]])
            batch = filter_inputs(collate(enc, idx, runtime.device, side), params)
            together = extract_logits(call_model(model, batch), len(idx))[: len(sample)]
            delta = np.abs(together.astype(np.float64) - alone)
            out.append(PaddingProbe(side=side, examples=len(sample), max_abs_delta=float(delta.max()),
                                    logit_scale=float(np.abs(alone).mean()),
                                    changed_predictions=float(np.mean(together.argmax(1) != alone.argmax(1))),
                                    precision=runtime.precision, repeat_abs_delta=None))
        if any(p.relative_delta > padding_limit(p.precision) for p in out):
            # the same unpadded pass again: what the model changes without any padding (dropout left on, ...)
            noise = float(np.abs(unpadded() - alone).max())
            for p in out:
                p.repeat_abs_delta = noise
    return out
