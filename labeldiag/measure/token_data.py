"""Token classification (issue 22): word lists tokenized with their word_ids, tags aligned to sub-words, and
the per-position logits of a token classifier."""
from __future__ import annotations

from typing import Any

import numpy as np

from labeldiag.errors import UsageError, describe_exception, one_line
from labeldiag.records import Examples
from labeldiag.measure.encode import (TOKENIZE_CHUNK, Encoded, _base_stats, _count_tokens, encode)
from labeldiag.records import IGNORED, TokenGold, align_to_subwords, entity_spans


def tag_names(info: Any) -> tuple[str, ...]:
    return tuple(info.id2label.get(i, f"LABEL_{i}") for i in range(max(info.num_labels, 1)))


def tag_indices(raw: list[list[Any]], names: tuple[str, ...]) -> list[list[int]]:
    """Tag names or indices per word -> indices into the head (-100 kept: an unlabelled word)."""
    index = {name: k for k, name in enumerate(names)}
    out = []
    for n, tags in enumerate(raw):
        row = []
        for tag in tags:
            if isinstance(tag, str) and tag.strip() in index:
                row.append(index[tag.strip()])
                continue
            try:
                value = int(tag.strip() if isinstance(tag, str) else tag)
            except (TypeError, ValueError):
                raise UsageError(f"tag '{one_line(str(tag), 30)}' of example {n} is not one of the model's tags "
                                 f"({', '.join(names[:10])}{', ...' if len(names) > 10 else ''}); give tag names "
                                 "from its id2label or indices") from None
            if value != IGNORED and not 0 <= value < len(names):
                raise UsageError(f"tag {value} of example {n} is not a tag index of the model's {len(names)} tags "
                                 f"(0..{len(names) - 1}, or -100 for no label)")
            row.append(value)
        out.append(row)
    return out


def _entities_beyond(tags: list[int], names: tuple[str, ...], kept: int) -> tuple[int, int]:
    """(entities, entities with a position at or beyond `kept`) of one sequence of tags (-100 skipped)."""
    where = [i for i, t in enumerate(tags) if t >= 0]
    spans = entity_spans([names[tags[i]] for i in where])
    return len(spans), sum(where[last] >= kept for _, _, last in spans)


def encode_tagged(examples: Examples, tokenizer: Any, max_length: int, info: Any, config_pad_id: int | None,
                  every_subword: bool) -> tuple[Encoded, TokenGold | None]:
    """Sub-word ids and aligned tags: word lists through the tokenizer's word_ids, or pre-tokenized ids with
    their own per-token labels (cut at max_length)."""
    names = tag_names(info)
    if examples.tokenized is not None:
        return _pretokenized(examples, tokenizer, max_length, info, config_pad_id, names)
    if examples.labels is not None and not examples.token_level:
        raise UsageError("a token classifier needs one tag per word: rows of word lists with their tags "
                         "({\"tokens\": [...], \"ner_tags\": [...]}) or pre-tokenized input_ids with per-token labels")
    if tokenizer is None:
        raise UsageError("word lists need a tokenizer; pass --tokenizer")
    if not getattr(tokenizer, "is_fast", False):
        raise UsageError("aligning word tags to sub-words needs a fast tokenizer (its word_ids); load the "
                         "tokenizer with use_fast=True or pass pre-tokenized input_ids with per-token labels")
    words = examples.words or [t.split() for t in examples.texts]
    tags = tag_indices(examples.labels, names) if examples.labels is not None else None
    input_names = tuple(getattr(tokenizer, "model_input_names", ("input_ids", "attention_mask")))
    want_types = "token_type_ids" in input_names
    ids, type_ids, labels = [], [] if want_types else None, []
    entities = cut_entities = cut_examples = given = 0
    stats = _base_stats(tokenizer, max_length, info.embedding_rows, info.max_positions, len(words))
    for start in range(0, len(words), TOKENIZE_CHUNK):
        chunk = words[start:start + TOKENIZE_CHUNK]
        try:
            enc = tokenizer(chunk, is_split_into_words=True, truncation=False, add_special_tokens=True,
                            return_token_type_ids=want_types, return_attention_mask=False, verbose=False)
            long = [j for j, row in enumerate(enc["input_ids"]) if len(row) > max_length]
            cut = tokenizer([chunk[j] for j in long], is_split_into_words=True, truncation=True,
                            max_length=max_length, add_special_tokens=True, return_token_type_ids=want_types,
                            return_attention_mask=False, verbose=False) if long else None
        except Exception as exc:
            raise UsageError(f"the tokenizer failed on the word lists ({describe_exception(exc)}); check "
                             "--tokenizer") from None
        where_cut = {j: k for k, j in enumerate(long)}
        for j in range(len(chunk)):
            source, row = (cut, where_cut[j]) if j in where_cut else (enc, j)
            word_ids = source.word_ids(row)
            ids.append(np.asarray(source["input_ids"][row], dtype=np.int64))
            if type_ids is not None:
                type_ids.append(np.asarray(source["token_type_ids"][row], dtype=np.int64))
            if tags is None:
                continue
            word_tags = tags[start + j]
            labels.append(align_to_subwords(word_tags, word_ids, every_subword))
            given += sum(t >= 0 for t in word_tags)
            kept_words = max((w for w in word_ids if w is not None), default=-1) + 1
            found, lost = _entities_beyond(word_tags, names, kept_words)
            entities, cut_entities = entities + found, cut_entities + lost
            cut_examples += any(t >= 0 for t in word_tags[kept_words:])
        stats.kept_fraction_truncated += [len(cut["input_ids"][k]) / len(enc["input_ids"][j])
                                          for j, k in where_cut.items()]
        stats.truncated += len(long)
    special = set(int(s) for s in (tokenizer.all_special_ids or []))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (config_pad_id or 0)
    _count_tokens(stats, ids, special, tokenizer.unk_token_id)
    blank = tokenizer.mask_token_id if tokenizer.mask_token_id is not None else pad_id
    encoded = Encoded(ids=ids, type_ids=type_ids, pad_id=int(pad_id), special_ids=special, blank_id=int(blank),
                      stats=stats, input_names=input_names)
    if tags is None:
        return encoded, None
    alignment = "every sub-word of a word" if every_subword else "the first sub-word of each word (the rest -100)"
    return encoded, TokenGold(labels=labels, names=names, alignment=alignment, given_tags=given, entities=entities,
                               entities_cut=cut_entities, examples_cut=cut_examples, max_length=max_length)


def _pretokenized(examples: Examples, tokenizer: Any, max_length: int, info: Any, config_pad_id: int | None,
                  names: tuple[str, ...]) -> tuple[Encoded, TokenGold | None]:
    encoded = encode(examples, tokenizer, max_length, info.embedding_rows, info.max_positions, config_pad_id,
                     type_vocab_size=info.type_vocab_size)
    if examples.labels is None:
        return encoded, None
    if not examples.token_level:
        raise UsageError("a token classifier needs per-token labels: 'labels' of the same shape as input_ids "
                         "(-100 where a token has no tag)")
    mask = examples.tokenized["attention_mask"].astype(bool)
    labels, entities, cut_entities, cut_examples, given = [], 0, 0, 0, 0
    for i, row in enumerate(examples.labels):
        full = np.asarray(row, dtype=np.int64)[mask[i]]
        bad = full[(full != IGNORED) & ((full < 0) | (full >= len(names)))]
        if bad.size:
            raise UsageError(f"label {int(bad[0])} of example {i} is not a tag index of the model's {len(names)} "
                             f"tags (0..{len(names) - 1}, or -100 for no label)")
        labels.append(full[:max_length])
        given += int((full >= 0).sum())
        found, lost = _entities_beyond(full.tolist(), names, max_length)
        entities, cut_entities = entities + found, cut_entities + lost
        cut_examples += bool((full[max_length:] >= 0).any())
    return encoded, TokenGold(labels=labels, names=names, alignment="as given (pre-tokenized labels)",
                               given_tags=given, entities=entities, entities_cut=cut_entities,
                               examples_cut=cut_examples, max_length=max_length)


def token_logits(model: Any, enc: Encoded, runtime: Any, batch_size: int, progress: Any = None) -> list[np.ndarray]:
    """Per example, the logits [tokens, C] of every kept sub-word (float32), in example order."""
    import torch

    from labeldiag.measure.forward import collate, make_batches
    from labeldiag.measure.runtime import call_model, filter_inputs, forward_params

    params = forward_params(model)
    out: list[np.ndarray | None] = [None] * len(enc.ids)
    with torch.inference_mode():
        for idx in make_batches(enc, batch_size):
            batch = filter_inputs(collate(enc, idx, runtime.device), params)
            logits = per_position_logits(call_model(model, batch), len(idx))
            for row, i in enumerate(idx):
                out[i] = logits[row, :len(enc.ids[i])].float().cpu().numpy()
            if progress is not None:
                progress(len(idx))
    return out  # type: ignore[return-value]


def per_position_logits(output: Any, batch: int) -> Any:
    import torch

    from labeldiag.errors import ModelCodeError

    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, dict):
        logits = output.get("logits")
    if logits is None and isinstance(output, (tuple, list)):
        logits = next((x for x in output if isinstance(x, torch.Tensor) and x.dim() == 3), None)
    if logits is None and isinstance(output, torch.Tensor):
        logits = output
    if not isinstance(logits, torch.Tensor) or logits.dim() != 3 or logits.shape[0] != batch:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(output).__name__
        raise ModelCodeError(f"a token classifier returns logits of shape [batch, tokens, tags]; this model returned "
                             f"{shape} (pass --task to judge it as another shape)")
    return logits
