"""Tokenizer against model: ids beyond the embedding table, [UNK]-heavy text, heavy truncation."""
from __future__ import annotations

import numpy as np

from labeldiag import thresholds as T
from labeldiag.findings import Finding
from labeldiag.records import TokenStats
from labeldiag.catalogue import TOKENIZER_MODEL_MISMATCH, TRUNCATION_HEAVY, UNK_HEAVY


def check_tokenizer(stats: TokenStats) -> list[Finding]:
    out: list[Finding] = []
    rows = stats.embedding_rows
    if rows is not None and (stats.max_token_id >= rows or (stats.tokenizer_size or 0) > rows):
        parts = []
        if stats.max_token_id >= rows:
            parts.append(f"token id {stats.max_token_id} is beyond the embedding table ({rows} rows)")
        if (stats.tokenizer_size or 0) > rows:
            parts.append(f"the tokenizer has {stats.tokenizer_size} tokens but the model embeds {rows}")
        out.append(Finding(TOKENIZER_MODEL_MISMATCH, "; ".join(parts),
                           {"max_token_id": stats.max_token_id, "embedding_rows": rows,
                            "tokenizer_size": stats.tokenizer_size}))
    if stats.content_tokens:
        share = stats.unk_tokens / stats.content_tokens
        if share > T.UNK_MAX_SHARE:
            out.append(Finding(UNK_HEAVY,
                               f"{share:.1%} of the {stats.content_tokens} text tokens are the unknown token",
                               {"unk_share": share, "unk_tokens": stats.unk_tokens,
                                "tokens": stats.content_tokens, "threshold": T.UNK_MAX_SHARE}))
    if stats.examples:
        share = stats.truncated / stats.examples
        kept = float(np.median(stats.kept_fraction_truncated)) if stats.kept_fraction_truncated else 1.0
        room = stats.model_max_positions is None or stats.max_length < stats.model_max_positions
        if share >= T.TRUNCATION_MIN_SHARE and kept <= T.TRUNCATION_MAX_KEPT and room:
            out.append(Finding(
                TRUNCATION_HEAVY,
                f"{share:.0%} of {stats.examples} examples are cut at --max-length {stats.max_length}, keeping a median "
                f"{kept:.0%} of their tokens" + (f" (the model accepts {stats.model_max_positions})"
                                                  if stats.model_max_positions else ""),
                {"truncated_share": share, "median_kept_fraction": kept, "max_length": stats.max_length,
                 "model_max_positions": stats.model_max_positions, "n": stats.examples},
            ))
    return out
