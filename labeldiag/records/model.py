"""Records of the model as loaded: what was read, the head's values, precision, weights and activations."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class LoadAudit:
    missing_head: list[str] = field(default_factory=list)
    missing_body: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    unused_pretraining: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, Any, Any]] = field(default_factory=list)
    source: str = "transformers"  # "labeldiag" (keys compared by us), "memory" (no load), "statistics" (head numbers)
    # --labels/--num-labels: {"outputs": head size attached, "checkpoint_outputs": saved head's (None: no head)}
    attached_head: dict | None = None


@dataclass
class ModelInfo:
    """Plain facts about the model the checks read (no torch objects)."""

    path: str
    class_name: str
    model_type: str | None
    num_labels: int
    id2label: dict[int, str]
    label2id: dict[str, int]
    problem_type: str | None
    raw_id2label: Any = None
    raw_label2id: Any = None
    embedding_rows: int | None = None
    max_positions: int | None = None
    weights_format: str = "safetensors"
    type_vocab_size: int | None = None  # segment ids (token_type_ids) the model accepts


@dataclass
class HeadValues:
    parameters: list[str]  # the head's tensors
    elements: int
    max_abs: float  # the largest finite |value|
    largest: str  # the tensor that holds it
    nonfinite: int  # NaN/inf elements


@dataclass
class HalfPrecisionWeights:
    lr: float
    trainable_elements: int
    half_elements: dict[str, int] = field(default_factory=dict)  # dtype name -> trainable elements
    lost_elements: int = 0  # w + lr == w in the parameter's own dtype: the step rounds away
    nonfinite_elements: int = 0  # already inf/NaN
    # fp16 elements: AdamW keeps its state in the parameter's dtype, where eps=1e-8 is 0 and (1 - beta2) * g**2
    # underflows for |g| < 7.7e-3, so the first step divides by zero (inf/NaN weights; torch 2.x, verified)
    overflow_elements: int = 0
    examples: list[str] = field(default_factory=list)  # parameters with the most lost elements

    @property
    def half_total(self) -> int:
        return sum(self.half_elements.values())

    @property
    def lost_share(self) -> float:
        return self.lost_elements / self.half_total if self.half_total else 0.0


@dataclass(frozen=True)
class TensorStats:
    """One parameter tensor: its role among siblings, kind, RMS and exactly-zero rows / columns."""

    name: str
    role: str  # the name with the block index as '*'; equal roles are siblings
    block: int | None
    kind: str  # "norm-gain", "norm-bias", "matrix", "bias", "other"
    rows: int
    cols: int
    rms: float
    zero_rows: int
    zero_cols: int


@dataclass(frozen=True)
class BaseDistance:
    """How far one tensor moved from the base model's: |W - W_base| / |W_base| (Frobenius norms)."""

    name: str
    role: str
    block: int | None
    relative_change: float
    base_rms: float


@dataclass(frozen=True)
class BlockStats:
    """One block of the stack: RMS of the stream entering and leaving it, RMS(out - in) / RMS(in), and the
    median over tokens of |out - in| (the block's update; a median, so that the few tokens with massive
    activations some decoders keep do not decide it)."""

    name: str
    index: int
    rms_in: float
    rms_out: float
    change: float
    median_update: float


@dataclass(frozen=True)
class AttentionStats:
    """One self-attention layer, over real (non-pad) query tokens: per head, mean entropy / ln(keys seen),
    mean largest weight, and the mean attention mass on pad keys."""

    name: str
    index: int
    entropy_per_head: tuple[float, ...]
    max_weight_per_head: tuple[float, ...]
    pad_mass: float
    examples: int


@dataclass(frozen=True)
class Activations:
    blocks: tuple[BlockStats, ...]
    attention: tuple[AttentionStats, ...]
    examples: int
    attention_source: str | None  # why attention is absent, or the module class read
