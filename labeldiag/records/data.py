"""Records of the data: the examples as read, how the tokenizer reads them, casing, and what padding does to
the logits."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labeldiag import thresholds as T


@dataclass
class TokenStats:
    """Plain numbers the tokenizer checks read."""

    max_length: int
    model_max_positions: int | None
    max_token_id: int
    embedding_rows: int | None
    tokenizer_size: int | None
    unk_tokens: int = 0
    content_tokens: int = 0
    truncated: int = 0
    kept_fraction_truncated: list[float] = field(default_factory=list)
    examples: int = 0


@dataclass
class CasingStats:
    lowercases: bool  # the tokenizer maps "Word" and "word" to the same ids
    vocab_cased_share: float  # share of alphabetic vocabulary entries holding an upper-case letter
    words: int  # distinct capitalised words of the data that were tested
    changed: int  # of them, words whose ids differ only through case handling
    examples: list[str] = field(default_factory=list)


@dataclass
class RoundTrip:
    """Pre-tokenized ids decoded and re-encoded with the model's tokenizer."""

    examples: int
    changed: int
    changed_rows: list[int] = field(default_factory=list)


@dataclass
class TemporaryPad:
    """A decoder classifier without config.pad_token_id, and the pad labeldiag measured with."""

    model_class: str
    pad_id: int
    source: str  # "the tokenizer's pad token", "the eos token" or "token id 0"
    tokenizer_has_pad: bool


@dataclass
class PaddingProbe:
    """Logits of the same examples alone and batched with padding on one side."""

    side: str  # "right" or "left"
    examples: int  # sampled examples that got padding in the batch
    max_abs_delta: float
    logit_scale: float  # mean |logit| of the unpadded pass
    changed_predictions: float  # share of sampled examples whose argmax changed
    precision: str
    # max |delta logit| between two identical unpadded passes; None when not measured because no
    # side's delta passed the precision's limit (the repeat only tells a real effect from noise)
    repeat_abs_delta: float | None = 0.0

    @property
    def relative_delta(self) -> float:
        return self.max_abs_delta / max(self.logit_scale, 1e-6)


def padding_limit(precision: str) -> float:
    """Largest relative logit change that padding may cause at this precision."""
    return T.PADDING_MAX_REL_DELTA.get(precision, T.PADDING_MAX_REL_DELTA["fp32"])


@dataclass
class Examples:
    """Examples read from DATA: texts (and pairs) or already tokenized tensors, with raw labels."""

    path: str
    columns: list[str]
    texts: list[str] | None = None
    pairs: list[str] | None = None
    labels: list[Any] | None = None  # raw values as read (int / float / str / bool)
    text_field: str | None = None
    pair_field: str | None = None
    label_field: str | None = None
    tokenized: dict[str, Any] | None = None  # numpy arrays for .pt / .safetensors data
    notes: list[str] = field(default_factory=list)
    # class names in index order as the data declares them (a datasets ClassLabel, parquet schema metadata)
    declared_label_names: list[str] | None = None
    # preference data (reward models): texts hold the N chosen texts, then the N rejected ones
    preference_pairs: int | None = None
    # token classification (issue 22): each example's words, and labels holding one tag per word or token
    words: list[list[str]] | None = None
    token_level: bool = False

    def __len__(self) -> int:
        if self.tokenized is not None:
            return int(self.tokenized["input_ids"].shape[0])
        return len(self.texts or [])

    @property
    def labelled(self) -> bool:
        return self.labels is not None
