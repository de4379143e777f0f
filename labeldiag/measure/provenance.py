"""Were the token ids made the way the model expects? Casing of tokenizer vs vocabulary; ids of another tokenizer."""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from labeldiag.measure.encode import Encoded
from labeldiag.records import CasingStats, RoundTrip

WORD = re.compile(r"[^\W\d_]+")
WORD_START = ("▁", "Ġ")  # SentencePiece and byte-level BPE mark a word start; WordPiece marks continuations
MAX_WORDS = 500  # distinct capitalised words tested: enough for a share, cheap to tokenize


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _vocab_words(tokenizer: Any) -> tuple[set[str], float] | None:
    """Whole-word vocabulary entries (word-start markers removed) and the share of cased alphabetic entries."""
    try:
        vocab = tokenizer.get_vocab()
    except (AttributeError, NotImplementedError, TypeError):  # a custom tokenizer without a vocabulary
        return None
    special = set(getattr(tokenizer, "all_special_tokens", []) or [])
    words, cased, alphabetic = set(), 0, 0
    for entry in vocab:
        if entry in special or (entry[:1] in ("[", "<") and entry[-1:] in ("]", ">")
                                and "\n" not in entry):  # [unused3], <extra_id_0>: markup, not words
            continue
        bare = entry[1:] if entry.startswith(WORD_START) else entry
        if not bare or not WORD.fullmatch(bare.removeprefix("##")):
            continue
        alphabetic += 1
        cased += any(c.isupper() for c in bare)
        if not entry.startswith("##"):
            words.add(bare)
    return (words, cased / alphabetic) if alphabetic else None


def measure_casing(tokenizer: Any, texts: list[str] | None) -> CasingStats | None:
    """None without text, vocabulary or capitalised words."""
    if tokenizer is None or not texts:
        return None
    found = _vocab_words(tokenizer)
    if found is None:
        return None
    vocab, cased_share = found
    capitalised: list[str] = []
    seen: set[str] = set()
    for text in texts:
        for w in WORD.findall(text):
            if w not in seen and w != w.lower():
                seen.add(w)
                capitalised.append(w)
        if len(capitalised) >= MAX_WORDS:
            break
    if not capitalised:
        return None
    probes = [w for w in sorted(vocab) if len(w) >= 3 and w.islower()][:: max(1, len(vocab) // 50)][:5]
    if not probes:
        return None
    # words of the vocabulary itself: an unknown word would be [UNK] in either case and prove nothing
    lowercases = sum(_ids(tokenizer, w.capitalize()) == _ids(tokenizer, w) for w in probes) > len(probes) / 2
    changed = []
    for w in capitalised:
        if lowercases:
            # a case-keeping tokenizer would give the vocabulary's own entry for w; this one gives w.lower()'s
            differs = w in vocab
        else:
            # the vocabulary lacks the capitalised form, so it falls apart where the lower-case one would not
            differs = w not in vocab and w.lower() in vocab and _ids(tokenizer, w) != _ids(tokenizer, w.lower())
        if differs:
            changed.append(w)
    return CasingStats(lowercases, cased_share, len(capitalised), len(changed), changed[:10])


def measure_round_trip(enc: Encoded, tokenizer: Any, sample: int, seed: int) -> RoundTrip | None:
    """Decode each sampled example's content ids and encode the text again; None without a tokenizer."""
    if tokenizer is None or not enc.ids:
        return None
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(enc.ids), size=min(sample, len(enc.ids)), replace=False))
    special = np.array(sorted(enc.special_ids), dtype=np.int64)
    changed = []
    for i in rows:
        content = enc.ids[i][~np.isin(enc.ids[i], special)] if special.size else enc.ids[i]
        if not content.size:
            continue
        try:
            again = _ids(tokenizer, tokenizer.decode(content.tolist()))
        except (ValueError, TypeError, IndexError, KeyError, OverflowError):
            return None  # a tokenizer that cannot decode these ids says nothing about their provenance
        if again != content.tolist():
            changed.append(int(i))
    return RoundTrip(examples=len(rows), changed=len(changed), changed_rows=changed[:10])
