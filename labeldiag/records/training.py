"""Records of a backward pass and a training run: gradients, parameters reached, losses, learning rate.

Settings (steps, lr, target loss) travel in labeldiag.options, not in these records; a check that
reads them takes anything shaped as TrainingTarget.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from labeldiag.records.model import HalfPrecisionWeights

_INDEX = re.compile(r"^\d+$")


def group_layers(names: tuple[str, ...] | list[str]) -> list[str]:
    """Parameter names -> layers: 'bert.encoder.layer.3.attention.self.query.weight' -> 'bert.encoder.layer.3'."""
    out: list[str] = []
    for name in names:
        parts = name.split(".")
        parts = parts[:-1] or parts  # drop weight / bias
        for i, p in enumerate(parts):
            if _INDEX.match(p):
                parts = parts[: i + 1]
                break
        layer = ".".join(parts)
        if layer not in out:
            out.append(layer)
    return out


@dataclass(frozen=True)
class ParameterCensus:
    """Which parameters are trainable, and which trainable ones one backward pass reached."""

    trainable: tuple[str, ...]  # parameter names with requires_grad
    frozen: tuple[str, ...]
    trainable_elements: int
    frozen_elements: int
    no_grad: tuple[str, ...] = ()  # trainable, .grad still None after the backward pass
    no_grad_elements: int = 0
    loss_connected: bool = True  # the loss had a gradient path to the model at all
    backward_ran: bool = True  # False when the pass stopped before backward (non-finite loss)
    frozen_layers: tuple[str, ...] = ()  # the layers those parameters belong to, in model order
    no_grad_layers: tuple[str, ...] = ()
    checkpointing: bool = False  # gradient checkpointing was on during the backward pass


@dataclass(frozen=True)
class InitialLoss:
    """The loss of the first forward pass, to compare with ln C when the head is fresh."""

    loss: float | None
    num_labels: int
    head_fresh: bool


# a layer's row in grad-flow's JSON ("metrics.layers"), in this order: LayerGrad measures it, LayerRow reads it back
LAYER_METRIC_KEYS = ("name", "params", "grad_norm", "grad_weight_ratio", "update_weight_ratio", "zero_share", "frozen",
                     "no_grad", "mean_abs_grad", "max_abs_grad")


@dataclass
class LayerGrad:
    """Gradient statistics of one user-recognisable layer (a group of parameters)."""

    name: str
    params: int  # elements in all its parameters
    trainable: int  # elements with requires_grad
    grad_norm: float | None  # L2 over every trainable element that got a gradient
    weight_norm: float
    grad_weight_ratio: float | None
    update_weight_ratio: float | None  # first AdamW step at --lr, see update_norm
    zero_share: float | None  # share of gradient elements exactly 0.0
    mean_abs_grad: float | None
    max_abs_grad: float | None
    frozen: int  # elements with requires_grad=False
    no_grad: int  # trainable elements whose .grad stayed None
    no_grad_names: list[str] = field(default_factory=list)
    zero_grad_names: list[str] = field(default_factory=list)  # trainable, grad exactly all zero
    nonfinite_names: list[str] = field(default_factory=list)
    frozen_names: list[str] = field(default_factory=list)
    is_stack_layer: bool = False  # one block of the encoder stack

    def as_metrics(self) -> dict:
        return {key: getattr(self, key) for key in LAYER_METRIC_KEYS}


@dataclass
class ActivationStats:
    """How one activation module's units behaved on the batch."""

    module: str
    kind: str  # "relu" (ReLU family, incl. a Linear followed by a functional ReLU), "tanh", "sigmoid"
    units: int
    rows: int  # tokens/examples seen
    dead_units: int = 0  # relu: output <= 0 on every row
    saturated_units: int = 0  # tanh/sigmoid: at a limit on most rows

    @property
    def dead_share(self) -> float:
        return self.dead_units / self.units if self.units else 0.0

    @property
    def saturated_share(self) -> float:
        return self.saturated_units / self.units if self.units else 0.0


@dataclass
class LabelTokenGrad:
    """Gradient norm of the loss w.r.t. hidden states, at label-token positions and elsewhere, per layer."""

    layers: list[str]  # "embeddings", "layer 0", ...
    label_mean: list[float]  # mean norm over label-token occurrences
    other_median: list[float]  # median norm over other non-padding positions
    peak: list[float]  # mean over examples of the largest per-position norm (the position the loss reads most)
    occurrences: int  # label-token positions found in the batch
    missing: list[str]  # label tokens/positions never found
    heat: list[list[float]]  # layer x position mean norm (positions capped), for the plot
    embedding_rows: dict[str, float] | None = None  # label word -> grad norm of its word-embedding row
    embedding_row_median: float | None = None  # median over rows that got a gradient

    @property
    def share_of_peak(self) -> list[float]:
        return [lm / pk if pk > 0 else 0.0 for lm, pk in zip(self.label_mean, self.peak)]

    def as_metrics(self) -> dict:
        shares = self.share_of_peak
        rows = []
        for i, name in enumerate(self.layers):
            om = self.other_median[i]
            rows.append({"layer": name, "label_mean": self.label_mean[i], "other_median": om,
                         "peak": self.peak[i], "share_of_peak": shares[i],
                         "ratio_to_other_median": self.label_mean[i] / om if om > 0 else None})
        return {"layers": rows, "occurrences": self.occurrences, "missing": self.missing,
                "embedding_rows": self.embedding_rows, "embedding_row_median": self.embedding_row_median}


@dataclass
class NonFinite:
    """Where a NaN/inf first appeared, found by a second pass with hooks on every module."""

    forward_module: str | None = None  # first module (in completion order) with a non-finite output
    backward_module: str | None = None  # first module whose input gradient turned non-finite from finite
    in_loss: bool = False  # every module output was finite: the loss computation itself


@dataclass
class GradFlow:
    loss: float | None
    loss_source: str  # "model" (its own loss) or "cross-entropy"
    num_labels: int
    examples: int
    micro_batches: int
    total_grad_norm: float | None
    layers: list[LayerGrad]
    activations: list[ActivationStats]
    label_tokens: LabelTokenGrad | None
    census: ParameterCensus
    nonfinite_loss: bool = False
    nonfinite: NonFinite | None = None
    dropout_modules: int = 0
    seconds: float = 0.0
    # extra loss terms the model returns (e.g. ce_loss, supcon_loss): value and the gradient norm
    # each alone sends into the encoder, measured on the first micro-batch
    loss_components: dict[str, dict[str, float | None]] = field(default_factory=dict)

    @property
    def trainable(self) -> int:
        return self.census.trainable_elements

    @property
    def frozen(self) -> int:
        return self.census.frozen_elements


@dataclass
class TrainingTrace:
    """What one smoke-train run measured, filled step by step; one entry per step in the lists."""

    num_classes: int  # width of the head
    batch_classes: int  # distinct gold classes in the batch
    losses: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    distinct_predictions: list[int] = field(default_factory=list)
    max_abs_logits: list[float] = field(default_factory=list)
    # cross-entropy of the logits, or the classification component the model returns (e.g. ce_loss):
    # what "fitted" is judged on when the total loss has terms with a floor above 0 (CE + SupCon)
    classification_losses: list[float] = field(default_factory=list)
    classification_source: str = "cross-entropy of the logits"
    initial_loss: float | None = None  # pre-flight pass
    fit_step: int | None = None
    fit_rule: str | None = None  # which criterion declared the fit (see measure.training.fit_rule)
    fit_seconds: float | None = None
    diverged_step: int | None = None
    census: ParameterCensus | None = None  # from the pre-flight backward pass
    unchanged: list[str] = field(default_factory=list)  # trainable, bitwise equal after training
    head_fresh: bool = False
    skipped: str | None = None  # why training could not start

    @property
    def steps_run(self) -> int:
        return len(self.losses)

    @property
    def fitted(self) -> bool:
        return self.fit_step is not None

    @property
    def ln_c(self) -> float:
        return math.log(max(self.num_classes, 2))

    @property
    def final_loss(self) -> float | None:
        return self.losses[-1] if self.losses else None

    @property
    def final_accuracy(self) -> float | None:
        return self.accuracies[-1] if self.accuracies else None

    @property
    def trainable(self) -> tuple[str, ...]:
        return self.census.trainable if self.census else ()

    @property
    def disconnected(self) -> tuple[str, ...]:
        return self.census.no_grad if self.census else ()

    @property
    def loss_has_grad(self) -> bool:
        return self.census.loss_connected if self.census else True


@dataclass(frozen=True)
class GradFlowPass:
    """What one grad-flow pass measured, and how the model was set up for it (what decides which checks apply:
    checks.gradients.grad_flow_checks)."""

    flow: GradFlow
    half_precision: HalfPrecisionWeights | None  # trainable weights stored in fp16/bf16, before the pass
    updates: UpdateRatios  # each layer's first AdamW step at --lr
    fresh_head: bool
    lora: bool = False  # an adapter trains on a frozen base
    activation_mode: bool = False  # a dispatched model: parameters frozen, hidden-state gradients measured
    activation_gradients: tuple[HiddenStateGrad, ...] | None = None  # in activation-gradient mode


# --- issue 21: sharded runs -----------------------------------------------------------------------

@dataclass
class HeadAcrossRanks:
    """The head as each rank loaded / initialised it: a SHA-256 prefix and the L2 norm per rank."""
    world: int
    head_parameters: list[str]
    digests: list[str]  # rank order
    norms: list[float]
    max_relative_difference: float | None  # max |head_rank - head_rank0| / max |head|


@dataclass
class ShardedForward:
    """One batch through a copy of the model's config cut to `layers` blocks, whole and FSDP2-sharded."""
    world: int
    layers: int
    examples: int
    precision: str
    tolerance: float
    logits_relative_difference: float | None = None  # max over ranks of max |sharded - whole| / max |whole|
    head_grad_relative_difference: float | None = None
    head_parameters: list[str] = field(default_factory=list)
    skipped: str | None = None


@dataclass(frozen=True)
class ShardedStart:
    """What a launched run measures before its command (checks.sharding.sharding_checks judges it): the head as
    every rank holds it, and under FSDP2 one batch through a 2-layer copy, whole and sharded (None: not
    measured, as in one process)."""

    head: HeadAcrossRanks | None = None
    forward: ShardedForward | None = None


@dataclass(frozen=True)
class HiddenStateGrad:
    """grad-flow under --device-map: the loss's gradient w.r.t. one layer's output hidden states (L2 over the
    batch), and at the position the head pools."""

    name: str
    grad_norm: float | None
    pooled_grad_norm: float | None

    def to_metrics(self) -> dict:
        return {"name": self.name, "grad_norm": self.grad_norm, "pooled_grad_norm": self.pooled_grad_norm}

    @classmethod
    def from_metrics(cls, m: dict) -> HiddenStateGrad:
        return cls(m.get("name", ""), m.get("grad_norm"), m.get("pooled_grad_norm"))


# --- the learning rate and the Trainer's logged loss -----------------------------------------------

class TrainingTarget(Protocol):
    """What a training verdict reads of the settings (labeldiag.options.TrainSettings is one)."""

    steps: int
    lr: float
    target_loss: float


@dataclass
class UpdateRatios:
    """grad-flow: each layer's first AdamW update norm / weight norm at --lr."""

    lr: float
    ratios: dict[str, float]  # layer -> ratio, layers with a gradient only


@dataclass
class LowerRateRerun:
    """smoke-train: training went wrong at --lr; the same batch from the same weights at lr / 10."""

    lr: float
    rerun_lr: float
    problem: str  # what went wrong at --lr (measure.learning_rate.went_wrong)
    final_loss: float | None
    rerun_fitted: bool
    rerun_fit_step: int | None
    rerun_final_loss: float | None
    rerun_steps: int


@dataclass
class LossScaleRecord:
    """Training losses between two Trainer log entries: the Trainer's logged value and ours."""

    logged_loss: float
    recomputed_loss: float  # mean cross-entropy of the same micro-batches, from their own logits and labels
    micro_batches: int
    accumulation_steps: int
    examples: int


# --- issue 18: what a grad-flow report carries, typed (Report.grad_flow) ---------------------------
# Plain numbers only; `to_metrics()` is the JSON's "metrics" keys, `from_metrics()` reads them back.

def _rows(cls, items) -> tuple:
    return tuple(cls.from_metrics(item) for item in items or ())


@dataclass(frozen=True)
class LayerRow:
    """One row of grad-flow's per-layer table."""

    name: str
    params: int
    grad_norm: float | None
    grad_weight_ratio: float | None
    update_weight_ratio: float | None
    zero_share: float | None
    frozen: int
    no_grad: int
    mean_abs_grad: float | None
    max_abs_grad: float | None
    # checks.learning_rate's verdict on update_weight_ratio, for the table's mark; not in the JSON
    update_ratio_unusual: bool = field(default=False, compare=False)

    def to_metrics(self) -> dict:
        return {key: getattr(self, key) for key in LAYER_METRIC_KEYS}

    @classmethod
    def from_metrics(cls, m: dict) -> LayerRow:
        return cls(name=m.get("name", ""), params=m.get("params") or 0, grad_norm=m.get("grad_norm"),
                   grad_weight_ratio=m.get("grad_weight_ratio"), update_weight_ratio=m.get("update_weight_ratio"),
                   zero_share=m.get("zero_share"), frozen=m.get("frozen") or 0, no_grad=m.get("no_grad") or 0,
                   mean_abs_grad=m.get("mean_abs_grad"), max_abs_grad=m.get("max_abs_grad"))


@dataclass(frozen=True)
class ActivationRow:
    module: str
    kind: str
    units: int
    dead_units: int
    saturated_units: int

    def to_metrics(self) -> dict:
        return {"module": self.module, "kind": self.kind, "units": self.units, "dead_units": self.dead_units,
                "saturated_units": self.saturated_units}

    @classmethod
    def from_metrics(cls, m: dict) -> ActivationRow:
        return cls(m.get("module", ""), m.get("kind", ""), m.get("units") or 0, m.get("dead_units") or 0,
                   m.get("saturated_units") or 0)


@dataclass(frozen=True)
class LabelTokenRow:
    """Hidden-state gradient at label-token positions vs the others, in one layer."""

    layer: str
    label_mean: float | None
    other_median: float | None
    peak: float | None
    share_of_peak: float | None
    ratio_to_other_median: float | None

    def to_metrics(self) -> dict:
        return {"layer": self.layer, "label_mean": self.label_mean, "other_median": self.other_median,
                "peak": self.peak, "share_of_peak": self.share_of_peak,
                "ratio_to_other_median": self.ratio_to_other_median}

    @classmethod
    def from_metrics(cls, m: dict) -> LabelTokenRow:
        return cls(m.get("layer", ""), m.get("label_mean"), m.get("other_median"), m.get("peak"),
                   m.get("share_of_peak"), m.get("ratio_to_other_median"))


@dataclass(frozen=True)
class LabelTokenSummary:
    layers: tuple[LabelTokenRow, ...]
    occurrences: int
    missing: tuple[str, ...]
    embedding_rows: dict[str, float] | None = None
    embedding_row_median: float | None = None

    def to_metrics(self) -> dict:
        return {"layers": [r.to_metrics() for r in self.layers], "occurrences": self.occurrences,
                "missing": list(self.missing), "embedding_rows": self.embedding_rows,
                "embedding_row_median": self.embedding_row_median}

    @classmethod
    def from_metrics(cls, m: dict) -> LabelTokenSummary:
        return cls(_rows(LabelTokenRow, m.get("layers")), m.get("occurrences") or 0, tuple(m.get("missing") or ()),
                   m.get("embedding_rows"), m.get("embedding_row_median"))


@dataclass(frozen=True)
class LossComponent:
    """An extra loss term the model returns (e.g. supcon_loss): its value and the gradient norm it alone sends
    into the encoder (None: the term has no gradient path)."""

    name: str
    value: float | None
    encoder_grad_norm: float | None


def _components_to_metrics(components: tuple[LossComponent, ...]) -> dict:
    return {c.name: {"value": c.value, "encoder_grad_norm": c.encoder_grad_norm} for c in components}


def _components_from_metrics(m: dict | None) -> tuple[LossComponent, ...] | None:
    if not m:
        return None
    return tuple(LossComponent(str(name), c.get("value"), c.get("encoder_grad_norm")) for name, c in m.items())


@dataclass(frozen=True)
class GradientHeatmap:
    """Layer x position mean hidden-state gradient norm, and the share of examples holding a label token at
    each position (None when not measured)."""

    layers: tuple[str, ...]
    grad_norm: tuple[tuple[float, ...], ...]
    label_share: tuple[float, ...] | None = None

    def to_metrics(self) -> dict:
        out: dict = {"layers": list(self.layers), "grad_norm": [list(row) for row in self.grad_norm]}
        if self.label_share is not None:
            out["label_share"] = list(self.label_share)
        return out

    @classmethod
    def from_metrics(cls, m: dict) -> GradientHeatmap:
        share = m.get("label_share")
        return cls(tuple(m.get("layers") or ()), tuple(tuple(row) for row in m.get("grad_norm") or ()),
                   None if share is None else tuple(share))


@dataclass(frozen=True)
class GradFlowSummary:
    """What grad-flow measured, as the report carries it: `report.grad_flow.layers[0].grad_norm`."""

    loss: float | None
    loss_source: str
    ln_num_labels: float | None
    loss_over_ln_num_labels: float | None
    fresh_head: bool
    total_grad_norm: float | None
    lr: float | None
    examples: int
    micro_batches: int
    trainable_params: int
    frozen_params: int
    layers: tuple[LayerRow, ...]
    activations: tuple[ActivationRow, ...]
    dropout_disabled: bool = True
    grad_flow_seconds: float = 0.0
    loss_components: tuple[LossComponent, ...] | None = None  # extra loss terms the model returns
    label_tokens: LabelTokenSummary | None = None
    heatmap: GradientHeatmap | None = None
    # --device-map (activation-gradient mode): the gradient w.r.t. each layer's hidden states
    activation_gradients: tuple[HiddenStateGrad, ...] | None = None

    def to_metrics(self) -> dict:
        out = {} if self.activation_gradients is None else {
            "activation_gradients": [h.to_metrics() for h in self.activation_gradients]}
        out |= {
            "loss": self.loss, "loss_source": self.loss_source, "ln_num_labels": self.ln_num_labels,
            "loss_over_ln_num_labels": self.loss_over_ln_num_labels, "fresh_head": self.fresh_head,
            "total_grad_norm": self.total_grad_norm, "lr": self.lr, "examples": self.examples,
            "micro_batches": self.micro_batches, "trainable_params": self.trainable_params,
            "frozen_params": self.frozen_params, "layers": [r.to_metrics() for r in self.layers],
            "activations": [a.to_metrics() for a in self.activations],
            "dropout_disabled": self.dropout_disabled, "grad_flow_seconds": self.grad_flow_seconds,
        }
        if self.loss_components:
            out["loss_components"] = _components_to_metrics(self.loss_components)
        if self.label_tokens is not None:
            out["label_token_gradients"] = self.label_tokens.to_metrics()
        if self.heatmap is not None:
            out["label_token_heatmap"] = self.heatmap.to_metrics()
        return out

    @classmethod
    def from_metrics(cls, m: dict) -> GradFlowSummary:
        label, heat, hidden = m.get("label_token_gradients"), m.get("label_token_heatmap"), m.get("activation_gradients")
        return cls(
            loss=m.get("loss"), loss_source=m.get("loss_source") or "", ln_num_labels=m.get("ln_num_labels"),
            loss_over_ln_num_labels=m.get("loss_over_ln_num_labels"), fresh_head=bool(m.get("fresh_head")),
            total_grad_norm=m.get("total_grad_norm"), lr=m.get("lr"), examples=m.get("examples") or 0,
            micro_batches=m.get("micro_batches") or 0, trainable_params=m.get("trainable_params") or 0,
            frozen_params=m.get("frozen_params") or 0, layers=_rows(LayerRow, m.get("layers")),
            activations=_rows(ActivationRow, m.get("activations")),
            dropout_disabled=bool(m.get("dropout_disabled", True)), grad_flow_seconds=m.get("grad_flow_seconds") or 0.0,
            loss_components=_components_from_metrics(m.get("loss_components")),
            label_tokens=LabelTokenSummary.from_metrics(label) if label else None,
            heatmap=GradientHeatmap.from_metrics(heat) if heat else None,
            activation_gradients=None if hidden is None else _rows(HiddenStateGrad, hidden))


# --- issue 18: what a smoke-train report carries, typed (Report.training) -------------------------

@dataclass(frozen=True)
class CurvePoint:
    step: int
    loss: float | None
    accuracy: float | None
    grad_norm: float | None

    def to_metrics(self) -> dict:
        return {"step": self.step, "loss": self.loss, "accuracy": self.accuracy, "grad_norm": self.grad_norm}

    @classmethod
    def from_metrics(cls, m: dict) -> CurvePoint:
        return cls(m.get("step") or 0, m.get("loss"), m.get("accuracy"), m.get("grad_norm"))


@dataclass(frozen=True)
class Preflight:
    """The pre-flight backward pass: parameter tensors trainable, frozen and reached by no gradient."""

    trainable: int
    frozen: int
    disconnected: int
    loss_at_init: float | None
    head_fresh: bool

    def to_metrics(self) -> dict:
        return {"trainable": self.trainable, "frozen": self.frozen, "disconnected": self.disconnected,
                "loss_at_init": self.loss_at_init, "head_fresh": self.head_fresh}

    @classmethod
    def from_metrics(cls, m: dict) -> Preflight:
        return cls(m.get("trainable") or 0, m.get("frozen") or 0, m.get("disconnected") or 0, m.get("loss_at_init"),
                   bool(m.get("head_fresh")))


@dataclass(frozen=True)
class TriageRun:
    """One --triage rerun from the original weights (head alone, another lr, fp32)."""

    variant: str
    lr: float | None
    fitted: bool
    fit_step: int | None
    final_loss: float | None
    final_accuracy: float | None
    steps_run: int
    diverged: bool | None = None  # None: the variant did not run (see skipped)
    skipped: str | None = None

    def to_metrics(self) -> dict:
        out = {"variant": self.variant, "lr": self.lr, "fitted": self.fitted, "fit_step": self.fit_step,
               "final_loss": self.final_loss, "final_accuracy": self.final_accuracy, "steps_run": self.steps_run}
        if self.diverged is not None:
            out["diverged"] = self.diverged
        out["skipped"] = self.skipped
        return out

    @classmethod
    def from_metrics(cls, m: dict) -> TriageRun:
        return cls(str(m.get("variant", "")), m.get("lr"), bool(m.get("fitted")), m.get("fit_step"),
                   m.get("final_loss"), m.get("final_accuracy"), m.get("steps_run") or 0, m.get("diverged"),
                   m.get("skipped"))


@dataclass(frozen=True)
class BatchMakeup:
    """smoke-train's one batch (Report.batch): its examples, classes and tokens, the examples of each label, and
    the ranks it is split over. Set before training, so a run stopped before training still shows it."""

    examples: int
    classes: int
    label_counts: tuple[tuple[str, int], ...]  # (label name, examples), in class order
    tokens: int | None
    world_size: int = 1

    def to_metrics(self) -> dict:
        return {"batch": {"examples": self.examples, "classes": self.classes, "label_counts": dict(self.label_counts),
                          "tokens": self.tokens}, "world_size": self.world_size}

    @classmethod
    def from_metrics(cls, m: dict) -> BatchMakeup:
        b = m.get("batch") or {}
        return cls(b.get("examples") or 0, b.get("classes") or 0,
                   tuple((str(k), v) for k, v in (b.get("label_counts") or {}).items()), b.get("tokens"),
                   m.get("world_size") or 1)


@dataclass(frozen=True)
class RankSpeed:
    """One rank's training speed under a launcher."""

    seconds: float | None
    steps_per_second: float | None
    examples_per_second: float | None
    tokens_per_second: float | None
    peak_memory_bytes: int | None
    peak_memory_kind: str | None
    rank: int

    def to_metrics(self) -> dict:
        return {"seconds": self.seconds, "steps_per_second": self.steps_per_second,
                "examples_per_second": self.examples_per_second, "tokens_per_second": self.tokens_per_second,
                "peak_memory_bytes": self.peak_memory_bytes, "peak_memory_kind": self.peak_memory_kind,
                "rank": self.rank}

    @classmethod
    def from_metrics(cls, m: dict) -> RankSpeed:
        return cls(m.get("seconds"), m.get("steps_per_second"), m.get("examples_per_second"),
                   m.get("tokens_per_second"), m.get("peak_memory_bytes"), m.get("peak_memory_kind"),
                   m.get("rank") or 0)


_TRAINING_NUMBERS = ("steps_run", "fitted", "fit_step", "fit_rule", "classification_loss_source",
                     "final_classification_loss", "fit_seconds", "diverged_step", "final_loss", "final_accuracy",
                     "initial_loss", "initial_accuracy", "ln_num_labels", "train_seconds", "steps_per_second",
                     "examples_per_second", "tokens_per_second", "peak_memory_bytes", "peak_memory_kind",
                     "device_name", "precision")


@dataclass(frozen=True)
class TrainingSummary:
    """What smoke-train measured, as the report carries it: `report.training.curve[-1].loss`."""

    lr: float | None
    target_loss: float | None
    steps_run: int
    fitted: bool
    fit_step: int | None
    fit_rule: str | None
    classification_loss_source: str | None
    final_classification_loss: float | None
    fit_seconds: float | None
    diverged_step: int | None
    final_loss: float | None
    final_accuracy: float | None
    initial_loss: float | None
    initial_accuracy: float | None
    ln_num_labels: float | None
    train_seconds: float | None
    steps_per_second: float | None
    examples_per_second: float | None
    tokens_per_second: float | None
    peak_memory_bytes: int | None
    peak_memory_kind: str | None
    device_name: str | None
    precision: str | None
    curve: tuple[CurvePoint, ...]
    preflight: Preflight | None
    skipped: str | None = None  # why training could not start
    ranks: tuple[RankSpeed, ...] | None = None  # per-rank speeds under a launcher (more than one rank)
    triage: tuple[TriageRun, ...] | None = None  # --triage ran
    ranks_max_relative_difference: float | None = None
    steps_budget: int | None = None  # --steps
    stopped_early: str | None = None  # why doctor's give-up rule ended the run before its budget

    def to_metrics(self) -> dict:
        # steps_budget, written before training, keeps its place in the JSON: update() leaves a key where it is
        out: dict = {} if self.stopped_early is None else {"stopped_early": self.stopped_early}
        out |= {"lr": self.lr, "target_loss": self.target_loss}
        if self.steps_budget is not None:
            out["steps_budget"] = self.steps_budget
        out.update({key: getattr(self, key) for key in _TRAINING_NUMBERS})
        out["curve"] = [c.to_metrics() for c in self.curve]
        out["preflight"] = self.preflight.to_metrics() if self.preflight else None
        if self.skipped:
            out["skipped"] = self.skipped
        if self.ranks is not None:
            out["ranks"] = [r.to_metrics() for r in self.ranks]
        if self.triage is not None:
            out["triage"] = [t.to_metrics() for t in self.triage]
        if self.ranks_max_relative_difference is not None:
            out["ranks_max_relative_difference"] = self.ranks_max_relative_difference
        return out

    @classmethod
    def from_metrics(cls, m: dict) -> TrainingSummary:
        pre, ranks, triage = m.get("preflight"), m.get("ranks"), m.get("triage")
        return cls(lr=m.get("lr"), target_loss=m.get("target_loss"),
                   **{key: m.get(key) for key in _TRAINING_NUMBERS if key not in ("steps_run", "fitted")},
                   steps_run=m.get("steps_run") or 0, fitted=bool(m.get("fitted")),
                   curve=_rows(CurvePoint, m.get("curve")), preflight=Preflight.from_metrics(pre) if pre else None,
                   skipped=m.get("skipped"), ranks=None if ranks is None else _rows(RankSpeed, ranks),
                   triage=None if triage is None else _rows(TriageRun, triage),
                   ranks_max_relative_difference=m.get("ranks_max_relative_difference"),
                   steps_budget=m.get("steps_budget"), stopped_early=m.get("stopped_early"))
