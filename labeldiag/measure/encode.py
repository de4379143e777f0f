"""Tokenize examples once, keep per-example token ids (no padding) and token statistics."""
from __future__ import annotations

import contextlib
import itertools
import signal
import threading
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from labeldiag.errors import UsageError, describe_exception
from labeldiag.records import Examples
from labeldiag.measure.runtime import release_freed_memory
from labeldiag.records import TokenStats

TOKENIZE_CHUNK = 1024  # texts per tokenizer call: Ctrl-C is seen between calls, not after the last one


@dataclass
class Encoded:
    ids: list[np.ndarray]  # one int64 array per example, unpadded
    type_ids: list[np.ndarray] | None
    pad_id: int
    special_ids: set[int]
    blank_id: int  # what content tokens are replaced with for the input-independence baseline
    stats: TokenStats
    input_names: tuple[str, ...] = ("input_ids", "attention_mask")

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(x) for x in self.ids], dtype=np.int64)


def default_max_length(tokenizer: Any, model_max: int | None) -> int:
    """The tokenizer's limit, capped at 512 and at what the model accepts."""
    limit = getattr(tokenizer, "model_max_length", None) if tokenizer is not None else None
    if not isinstance(limit, int) or limit <= 0 or limit > 100_000:
        limit = 512
    limit = min(limit, 512)
    if model_max:
        limit = min(limit, model_max)
    return limit


def encode(examples: Examples, tokenizer: Any, max_length: int, embedding_rows: int | None,
           model_max: int | None, config_pad_id: int | None = None, type_vocab_size: int | None = None) -> Encoded:
    if examples.tokenized is not None:
        _check_type_ids(examples, type_vocab_size)
        return _from_tensors(examples, tokenizer, max_length, embedding_rows, model_max, config_pad_id)
    if tokenizer is None:
        raise UsageError("text data needs a tokenizer; pass --tokenizer")
    names = tuple(getattr(tokenizer, "model_input_names", ("input_ids", "attention_mask")))
    want_types = "token_type_ids" in names
    texts, pairs = examples.texts, examples.pairs
    try:
        full = _tokenize(tokenizer, texts, pairs, truncation=False, add_special_tokens=True,
                         return_token_type_ids=want_types, return_attention_mask=False, verbose=False)
    except Exception as exc:
        raise UsageError(f"the tokenizer failed on DATA ({describe_exception(exc)}); check --tokenizer") from None
    ids = full["input_ids"]
    type_ids = full["token_type_ids"] if want_types and "token_type_ids" in full else None
    too_long = [i for i, x in enumerate(ids) if len(x) > max_length]
    stats = _base_stats(tokenizer, max_length, embedding_rows, model_max, len(ids))
    if too_long:
        sub_t = [texts[i] for i in too_long]
        sub_p = [pairs[i] for i in too_long] if pairs is not None else None
        cut = _tokenize(tokenizer, sub_t, sub_p, truncation=True, max_length=max_length, add_special_tokens=True,
                        return_token_type_ids=want_types, return_attention_mask=False, verbose=False)
        for j, i in enumerate(too_long):
            stats.kept_fraction_truncated.append(len(cut["input_ids"][j]) / max(1, len(ids[i])))
            ids[i] = cut["input_ids"][j]
            if type_ids is not None:
                type_ids[i] = cut["token_type_ids"][j]
    stats.truncated = len(too_long)
    special = set(int(s) for s in (tokenizer.all_special_ids or []))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (config_pad_id or 0)
    _count_tokens(stats, ids, special, tokenizer.unk_token_id)
    release_freed_memory()  # the tokenizer's work for all N, freed
    blank = tokenizer.mask_token_id if tokenizer.mask_token_id is not None else pad_id
    return Encoded(ids=ids, type_ids=type_ids, pad_id=int(pad_id), special_ids=special, blank_id=int(blank),
                   stats=stats, input_names=names)


def _tokenize(tokenizer: Any, texts: list[str], pairs: list[str] | None, **kwargs: Any) -> dict[str, list[np.ndarray]]:
    """The token ids (and type ids) of all texts, one int64 array per text, made in chunks so that Ctrl-C
    stops it promptly. Each chunk's Python lists of ints become one array at once, and each text's row a
    view of it: lists for all N would take ~1.4 KB per example each, and one small buffer per example
    interleaved with the tokenizer's freed work would leave the heap fragmented, growing with N."""
    out: dict[str, list[np.ndarray]] = {}
    with _ctrl_c_noted() as interrupted:
        for start in range(0, len(texts), TOKENIZE_CHUNK):
            part = tokenizer(texts[start:start + TOKENIZE_CHUNK],
                             pairs[start:start + TOKENIZE_CHUNK] if pairs is not None else None, **kwargs)
            if interrupted:
                raise KeyboardInterrupt
            for key in ("input_ids", "token_type_ids"):
                if key in part:
                    lengths = [len(x) for x in part[key]]
                    flat = np.fromiter(itertools.chain.from_iterable(part[key]), dtype=np.int64, count=sum(lengths))
                    out.setdefault(key, []).extend(np.split(flat, np.cumsum(lengths)[:-1]))
    return out


@contextlib.contextmanager
def _ctrl_c_noted() -> Iterator[list]:
    """While tokenizing, note Ctrl-C instead of raising it: a KeyboardInterrupt raised inside a Rust
    tokenizer's callback is printed as 'Exception ignored' and lost. The caller raises it between chunks;
    Python's own handler is back in place afterwards. Elsewhere (a thread, a custom handler) nothing changes."""
    noted: list = []
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield noted
        return
    signal.signal(signal.SIGINT, lambda signum, frame: noted.append(signum))
    try:
        yield noted
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if noted:
        raise KeyboardInterrupt


def _check_type_ids(examples: Examples, type_vocab_size: int | None) -> None:
    """Segment ids beyond the model's token-type table are the data's fault, not the tokenizer's."""
    types = examples.tokenized.get("token_type_ids")
    if types is None or not types.size or not type_vocab_size:
        return
    top = int(types.max())
    if top >= type_vocab_size:
        raise UsageError(f"DATA '{examples.path}': token_type_ids go up to {top} but the model knows "
                         f"{type_vocab_size} segment type(s) (0..{type_vocab_size - 1}); rebuild the data's segment ids "
                         f"within 0..{type_vocab_size - 1}, or leave token_type_ids out of DATA")


def _base_stats(tokenizer, max_length, embedding_rows, model_max, n) -> TokenStats:
    size = None
    if tokenizer is not None:
        try:
            size = len(tokenizer)
        except Exception:
            size = getattr(tokenizer, "vocab_size", None)
    return TokenStats(max_length=max_length, model_max_positions=model_max, max_token_id=-1,
                      embedding_rows=embedding_rows, tokenizer_size=size, examples=n)


def _count_tokens(stats: TokenStats, ids: list[np.ndarray], special: set[int], unk_id: int | None) -> None:
    allids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
    stats.max_token_id = int(allids.max()) if allids.size else -1
    special_unk = special - ({unk_id} if unk_id is not None else set())
    content = ~np.isin(allids, list(special_unk)) if special_unk else np.ones(allids.shape, bool)
    stats.content_tokens = int(content.sum())
    stats.unk_tokens = int((allids[content] == unk_id).sum()) if unk_id is not None else 0


def _from_tensors(examples, tokenizer, max_length, embedding_rows, model_max, config_pad_id) -> Encoded:
    t = examples.tokenized
    mask = t["attention_mask"].astype(bool)
    ids, type_ids = [], [] if "token_type_ids" in t else None
    for i in range(t["input_ids"].shape[0]):
        row = t["input_ids"][i][mask[i]]
        ids.append(row[:max_length].astype(np.int64))
        if type_ids is not None:
            type_ids.append(t["token_type_ids"][i][mask[i]][:max_length].astype(np.int64))
    stats = _base_stats(tokenizer, max_length, embedding_rows, model_max, len(ids))
    stats.truncated = sum(int(m.sum()) > max_length for m in mask)
    special = set(int(s) for s in (tokenizer.all_special_ids or [])) if tokenizer is not None else set()
    unk = tokenizer.unk_token_id if tokenizer is not None else None
    _count_tokens(stats, ids, special, unk)
    pad = tokenizer.pad_token_id if tokenizer is not None and tokenizer.pad_token_id is not None else (config_pad_id or 0)
    blank = tokenizer.mask_token_id if tokenizer is not None and tokenizer.mask_token_id is not None else pad
    names = ("input_ids", "attention_mask") + (("token_type_ids",) if type_ids is not None else ())
    return Encoded(ids=ids, type_ids=type_ids, pad_id=int(pad), special_ids=special, blank_id=int(blank),
                   stats=stats, input_names=names)


def blanked(enc: Encoded, indices: np.ndarray) -> Encoded:
    """The same examples with every content token replaced by the mask/pad token."""
    special = np.array(sorted(enc.special_ids), dtype=np.int64)
    ids = []
    for i in indices:
        row = enc.ids[i].copy()
        if special.size:
            row[~np.isin(row, special)] = enc.blank_id
        else:
            row[1:-1] = enc.blank_id
        ids.append(row)
    types = [enc.type_ids[i] for i in indices] if enc.type_ids is not None else None
    return Encoded(ids=ids, type_ids=types, pad_id=enc.pad_id, special_ids=enc.special_ids,
                   blank_id=enc.blank_id, stats=enc.stats, input_names=enc.input_names)


def subset(enc: Encoded, indices: np.ndarray) -> Encoded:
    types = [enc.type_ids[i] for i in indices] if enc.type_ids is not None else None
    return Encoded(ids=[enc.ids[i] for i in indices], type_ids=types, pad_id=enc.pad_id,
                   special_ids=enc.special_ids, blank_id=enc.blank_id, stats=enc.stats,
                   input_names=enc.input_names)
