"""Token classification (issue 22): tag schemes, entity spans, and the per-token summary a token
classifier is judged on (plain numbers, no torch).

Tags are read per labelled position: the first sub-word of each word (or every sub-word with
--label-all-subwords, or the data's own per-token labels); -100 marks a position with no label, as
transformers' losses ignore it. Entities are exact spans in the BIO / IOB2 scheme (BIOES and BILOU
prefixes are read too), chunked as conlleval and seqeval's default mode chunk them: an I-X that does
not continue an X entity starts one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

IGNORED = -100  # transformers' ignore_index
_PREFIXED = re.compile(r"^([BIESLU])[-_](.+)$")
OUTSIDE = "O"


@dataclass(frozen=True)
class TokenGold:
    """Per-token gold tags aligned with the encoded sub-words, and what alignment and truncation cost."""

    labels: list[np.ndarray]  # per example, one entry per kept sub-word: tag index or -100
    names: tuple[str, ...]  # tag names in head order
    alignment: str  # how word tags became sub-word labels
    given_tags: int  # tags in the data (not -100), before alignment and truncation
    entities: int  # gold entities in the data, before truncation
    entities_cut: int  # ... of which a word (or token) lies beyond max_length
    examples_cut: int  # examples that lose a labelled word to truncation
    max_length: int

    @property
    def kept_tags(self) -> int:
        return int(sum(int((row >= 0).sum()) for row in self.labels))

    def label_counts(self) -> dict[str, int]:
        """Labelled positions per tag, what the header shows."""
        flat = np.concatenate(self.labels) if self.labels else np.zeros(0, dtype=np.int64)
        counts = np.bincount(flat[flat >= 0], minlength=len(self.names))
        return {name: int(counts[k]) for k, name in enumerate(self.names)}


@dataclass(frozen=True)
class TagScore:
    name: str
    support: int  # gold positions with this tag
    predicted: int  # positions predicted as it
    predicted_rate: float  # predicted / labelled positions
    precision: float | None
    recall: float | None


@dataclass(frozen=True)
class ShiftScore:
    """Gold tags compared with the prediction at their own position and at a neighbour (paired per tag)."""

    unit: str  # "sub-word" or "word"
    offset: int  # +1: the tag is predicted one position later; -1: one earlier
    compared: int  # gold tags with a neighbour in that direction
    given_correct: int
    shifted_correct: int
    only_shifted: int  # right at the neighbour, wrong in place (McNemar's b)
    only_given: int  # right in place, wrong at the neighbour (McNemar's c)
    p_value: float  # exact one-sided McNemar: P(X >= b), X ~ Bin(b + c, 1/2)


@dataclass(frozen=True)
class SchemeReport:
    """How the head's tag names fit the BIO scheme."""

    uses_scheme: bool  # some tag is B-X / I-X (etc.)
    outside: tuple[str, ...]  # names neither O nor prefix-TYPE, in a head that uses the scheme
    inside_without_begin: tuple[str, ...]  # I-X with no B-X among the names
    has_outside_tag: bool  # an "O" tag exists


@dataclass(frozen=True)
class TokenSummary:
    examples: int
    tokens: int  # labelled positions scored
    accuracy: float | None
    accuracy_without_o: float | None  # over gold positions whose tag is not O
    non_o_tokens: int
    entity_precision: float | None
    entity_recall: float | None
    entity_f1: float | None
    gold_entities: int
    predicted_entities: int
    correct_entities: int
    tags: tuple[TagScore, ...]
    confusion: tuple[tuple[int, ...], ...] | None  # [gold][predicted], heads of at most 64 tags
    scheme_positions: int  # positions where an I- tag could break the scheme (gold and predicted scored alike)
    predicted_violations: int  # predicted I-X not continuing an X entity
    gold_violations: int
    violations_only_predicted: int  # positions broken in the prediction, not in the gold (McNemar's b)
    violations_only_gold: int  # ... and the reverse (c)
    violations_p: float  # exact one-sided McNemar on those positions
    shifts: tuple[ShiftScore, ...]
    labelled_examples: int  # examples with at least one labelled position


# --- the scheme -------------------------------------------------------------------------------------

def split_tag(name: str) -> tuple[str, str]:
    """("B", "PER") for B-PER, ("O", "") for O, ("", name) for a name outside the scheme."""
    if name == OUTSIDE:
        return OUTSIDE, ""
    match = _PREFIXED.match(name)
    return (match.group(1), match.group(2)) if match else ("", name)


def scheme_report(names: Sequence[str]) -> SchemeReport:
    parts = [split_tag(n) for n in names]
    uses = any(prefix in "BIESLU" and prefix for prefix, _ in parts)
    begins = {kind for prefix, kind in parts if prefix in ("B", "S", "U")}
    inside = sorted({f"I-{kind}" for prefix, kind in parts if prefix == "I" and kind not in begins})
    outside = tuple(n for n, (prefix, _) in zip(names, parts) if uses and prefix == "")
    return SchemeReport(uses_scheme=uses, outside=outside, inside_without_begin=tuple(inside),
                        has_outside_tag=OUTSIDE in names)


def entity_spans(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """Exact entity spans (type, first, last position) of one tag sequence, conlleval's chunking."""
    spans: set[tuple[str, int, int]] = set()
    start, kind = None, None
    for i, name in enumerate(list(tags) + [OUTSIDE]):
        prefix, label = split_tag(name)
        if prefix == "":
            prefix, label = OUTSIDE, ""  # a name outside the scheme is no entity
        continues = prefix in ("I", "E", "L") and start is not None and label == kind
        if start is not None and not continues:
            spans.add((kind, start, i - 1))
            start, kind = None, None
        if start is None and prefix != OUTSIDE:
            start, kind = i, label
        if prefix in ("E", "L", "S", "U") and start is not None:
            spans.add((kind, start, i))
            start, kind = None, None
    return spans


def scheme_breaks(tags: Sequence[str]) -> np.ndarray:
    """Per position: True where an I-X (or E-X / L-X) does not continue an X entity begun before it."""
    out = np.zeros(len(tags), dtype=bool)
    previous = (OUTSIDE, "")
    for i, name in enumerate(tags):
        prefix, label = split_tag(name)
        if prefix in ("I", "E", "L"):
            out[i] = not (previous[0] in ("B", "I") and previous[1] == label)
        previous = (prefix, label)
    return out


# --- alignment -------------------------------------------------------------------------------------

def align_to_subwords(word_tags: Sequence[int], word_ids: Sequence[int | None], every_subword: bool) -> np.ndarray:
    """Word tags -> one label per sub-word: the first sub-word of each word gets its word's tag, the others
    -100 (or the word's tag with every_subword); special tokens -100. The HF token-classification recipe."""
    out = np.full(len(word_ids), IGNORED, dtype=np.int64)
    previous = None
    for i, word in enumerate(word_ids):
        if word is not None and word < len(word_tags) and (every_subword or word != previous):
            out[i] = word_tags[word]
        previous = word
    return out


# --- the summary -----------------------------------------------------------------------------------

def _exact_mcnemar(b: int, c: int) -> float:
    from scipy.special import bdtrc

    return float(bdtrc(b - 1, b + c, 0.5)) if b else 1.0


def _shift(labels: list[np.ndarray], preds: list[np.ndarray], unit: str, offset: int) -> ShiftScore:
    given = shifted = only_shifted = only_given = compared = 0
    for gold, pred in zip(labels, preds):
        where = np.flatnonzero(gold >= 0)
        if unit == "word":
            own = where[max(0, -offset): len(where) - max(0, offset)]
            neighbour = where[max(0, offset): len(where) - max(0, -offset)]
        else:
            own = where[(where + offset >= 0) & (where + offset < len(pred))]
            neighbour = own + offset
        if not own.size:
            continue
        tag = gold[own]
        right_here, right_there = pred[own] == tag, pred[neighbour] == tag
        compared += own.size
        given += int(right_here.sum())
        shifted += int(right_there.sum())
        only_shifted += int((right_there & ~right_here).sum())
        only_given += int((right_here & ~right_there).sum())
    return ShiftScore(unit=unit, offset=offset, compared=compared, given_correct=given, shifted_correct=shifted,
                      only_shifted=only_shifted, only_given=only_given,
                      p_value=_exact_mcnemar(only_shifted, only_given))


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def summarize_tokens(logits: list[np.ndarray], labels: list[np.ndarray], names: Sequence[str]) -> TokenSummary:
    """Token and entity scores of per-example logits [L_i, C] against aligned labels [L_i] (-100 unscored)."""
    c = len(names)
    preds = [row.argmax(1) if row.size else np.zeros(0, dtype=np.int64) for row in logits]
    gold_flat = np.concatenate([g[g >= 0] for g in labels]) if labels else np.zeros(0, dtype=np.int64)
    pred_flat = np.concatenate([p[g >= 0] for g, p in zip(labels, preds)]) if labels else np.zeros(0, dtype=np.int64)
    n = int(gold_flat.size)
    o_index = names.index(OUTSIDE) if OUTSIDE in names else None
    entity = gold_flat != o_index if o_index is not None else np.ones(n, dtype=bool)
    gold_counts = np.bincount(gold_flat, minlength=c)[:c]
    pred_counts = np.bincount(pred_flat, minlength=c)[:c]
    hits = np.bincount(gold_flat[gold_flat == pred_flat], minlength=c)[:c]
    tags = tuple(TagScore(name=names[k], support=int(gold_counts[k]), predicted=int(pred_counts[k]),
                          predicted_rate=float(pred_counts[k] / n) if n else 0.0,
                          precision=_ratio(hits[k], pred_counts[k]), recall=_ratio(hits[k], gold_counts[k]))
                  for k in range(c))
    confusion = None
    if c <= 64 and n:
        table = np.zeros((c, c), dtype=np.int64)
        np.add.at(table, (gold_flat, pred_flat), 1)
        confusion = tuple(tuple(int(v) for v in row) for row in table)
    scheme = scheme_report(names)
    gold_entities = pred_entities = correct = 0
    positions = pred_breaks = gold_breaks = only_pred = only_gold = 0
    if scheme.uses_scheme:
        for g, p in zip(labels, preds):
            keep = g >= 0
            gold_tags, pred_tags = [names[k] for k in g[keep]], [names[k] for k in p[keep]]
            gs, ps = entity_spans(gold_tags), entity_spans(pred_tags)
            gold_entities, pred_entities, correct = gold_entities + len(gs), pred_entities + len(ps), correct + len(gs & ps)
            gb, pb = scheme_breaks(gold_tags), scheme_breaks(pred_tags)
            positions += len(gold_tags)
            pred_breaks, gold_breaks = pred_breaks + int(pb.sum()), gold_breaks + int(gb.sum())
            only_pred, only_gold = only_pred + int((pb & ~gb).sum()), only_gold + int((gb & ~pb).sum())
    precision = _ratio(correct, pred_entities) if scheme.uses_scheme else None
    recall = _ratio(correct, gold_entities) if scheme.uses_scheme else None
    f1 = (2 * correct / (pred_entities + gold_entities) if pred_entities + gold_entities else None) \
        if scheme.uses_scheme else None
    shifts = tuple(_shift(labels, preds, unit, offset) for unit in ("sub-word", "word") for offset in (1, -1))
    return TokenSummary(
        examples=len(labels), tokens=n, accuracy=float((gold_flat == pred_flat).mean()) if n else None,
        accuracy_without_o=float((gold_flat == pred_flat)[entity].mean()) if entity.any() else None,
        non_o_tokens=int(entity.sum()), entity_precision=precision, entity_recall=recall, entity_f1=f1,
        gold_entities=gold_entities, predicted_entities=pred_entities, correct_entities=correct, tags=tags,
        confusion=confusion, scheme_positions=positions, predicted_violations=pred_breaks,
        gold_violations=gold_breaks, violations_only_predicted=only_pred, violations_only_gold=only_gold,
        violations_p=_exact_mcnemar(only_pred, only_gold), shifts=shifts,
        labelled_examples=sum(int((g >= 0).any()) for g in labels))


def flat_labelled(logits: list[np.ndarray], labels: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The logits [M, C] and gold tags [M] of every labelled position, for the per-token verdicts."""
    rows = [row[g >= 0] for row, g in zip(logits, labels) if (g >= 0).any()]
    gold = [g[g >= 0] for g in labels if (g >= 0).any()]
    if not rows:
        width = logits[0].shape[1] if logits else 0
        return np.zeros((0, width), dtype=np.float32), np.zeros(0, dtype=np.int64)
    return np.concatenate(rows), np.concatenate(gold)
