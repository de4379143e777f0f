"""Token ids that do not mean what the model learnt: casing mismatch, ids from another tokenizer."""
from __future__ import annotations

from labeldiag import thresholds as T
from labeldiag.findings import Finding
from labeldiag.records import CasingStats, RoundTrip
from labeldiag.catalogue import FOREIGN_TOKEN_IDS, TOKENIZER_CASING_MISMATCH


def tokenizer_casing_mismatch(c: CasingStats | None) -> list[Finding]:
    if c is None or c.words < T.CASING_MIN_WORDS:
        return []
    share = c.changed / c.words
    # a case-keeping tokenizer is only wrong for a vocabulary without capitals
    if share < T.CASING_MIN_SHARE or (not c.lowercases and c.vocab_cased_share > T.UNCASED_VOCAB_MAX_SHARE):
        return []
    what = ("the tokenizer lower-cases, but the vocabulary is cased" if c.lowercases else
            "the tokenizer keeps case, but the vocabulary is uncased")
    return [Finding(
        TOKENIZER_CASING_MISMATCH,
        f"{what}: {c.changed} of {c.words} capitalised words in the data get other ids than the vocabulary "
        f"holds for them ({share:.0%}), e.g. {', '.join(c.examples[:5])}",
        {"tokenizer_lowercases": c.lowercases, "vocab_cased_share": c.vocab_cased_share, "words": c.words,
         "changed": c.changed, "share": share, "threshold": T.CASING_MIN_SHARE, "examples": c.examples},
    )]


def foreign_token_ids(r: RoundTrip | None) -> list[Finding]:
    if r is None or not r.examples:
        return []
    share = r.changed / r.examples
    if share < T.FOREIGN_IDS_MIN_SHARE:
        return []
    return [Finding(
        FOREIGN_TOKEN_IDS,
        f"decoding and re-encoding the pre-tokenized ids with the model's tokenizer changes {r.changed} of "
        f"{r.examples} sampled examples ({share:.0%}): the ids were made by another tokenizer",
        {"changed": r.changed, "examples": r.examples, "share": share, "threshold": T.FOREIGN_IDS_MIN_SHARE,
         "changed_rows": r.changed_rows},
    )]
