"""Judge a grad-flow measurement: every check reads plain numbers (no torch) and returns findings."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Iterator

from labeldiag import thresholds as T
from labeldiag.checks.learning_rate import learning_rate_too_high
from labeldiag.checks.parameters import loss_at_init, nothing_trainable, parameters_disconnected, parameters_frozen
from labeldiag.checks.precision import half_precision_weights
from labeldiag.checks.training_run import no_grad_under_checkpointing
from labeldiag.findings import Finding
from labeldiag.records import InitialLoss
from labeldiag.catalogue import (
    DEAD_UNITS, EXPLODING_GRADIENTS, LOSS_TERM_WITHOUT_GRADIENT, NONFINITE_GRADIENTS, NONFINITE_LOSS,
    NO_GRAD_TO_LABEL_TOKENS, SATURATED_ACTIVATIONS, VANISHING_GRADIENTS, ZERO_GRADIENTS,
)

if TYPE_CHECKING:
    from labeldiag.records import ActivationStats, GradFlow, GradFlowPass, LabelTokenGrad, LayerGrad


def _grouped(layers: list[LayerGrad], attr: str, limit: int = 6) -> tuple[str, dict[str, int]]:
    """'layer 0 (16 tensors), pooler (2 tensors)' for the parameter names listed under `attr`."""
    counts = {lg.name: len(getattr(lg, attr)) for lg in layers if getattr(lg, attr)}
    parts = [f"{name} ({n} tensor{'s' if n != 1 else ''})" for name, n in counts.items()]
    text = ", ".join(parts[:limit]) + (f", ... ({len(parts) - limit} more)" if len(parts) > limit else "")
    return text, counts


def _names(layers: list[LayerGrad], attr: str, limit: int = 20) -> list[str]:
    return [n for lg in layers for n in getattr(lg, attr)][:limit]


def gradients_nonfinite(flow: GradFlow) -> list[Finding]:
    where = flow.nonfinite
    if flow.nonfinite_loss:
        if where is not None and where.forward_module:
            origin = f"the first module whose output turned non-finite is '{where.forward_module}'"
        elif where is not None and where.in_loss:
            origin = "every module's output was finite: the loss computation itself produced it"
        else:
            origin = "its origin could not be located"
        return [Finding(NONFINITE_LOSS, f"the loss is {flow.loss}; {origin}",
                        {"loss": None, "first_nonfinite_module": where.forward_module if where else None,
                         "in_loss_computation": bool(where and where.in_loss)})]
    text, counts = _grouped(flow.layers, "nonfinite_names")
    if not counts:
        return []
    origin = ""
    if where is not None and where.forward_module:
        origin = f"; the first module whose output turned non-finite is '{where.forward_module}'"
    elif where is not None and where.backward_module:
        origin = f"; the gradient first turns non-finite in the backward pass of '{where.backward_module}'"
    return [Finding(NONFINITE_GRADIENTS, f"NaN/inf gradients in {text}{origin}",
                    {"layers": counts, "parameters": _names(flow.layers, "nonfinite_names"),
                     "first_nonfinite_module": where.forward_module if where else None,
                     "backward_origin_module": where.backward_module if where else None})]


def gradients_zero(flow: GradFlow) -> list[Finding]:
    if flow.nonfinite_loss:
        return []
    text, counts = _grouped(flow.layers, "zero_grad_names")
    if not counts:
        return []
    return [Finding(ZERO_GRADIENTS, f"gradients exactly zero in {text}",
                    {"layers": counts, "parameters": _names(flow.layers, "zero_grad_names")})]


def gradients_vanishing(flow: GradFlow) -> list[Finding]:
    blocks = [lg for lg in flow.layers if lg.is_stack_layer and lg.trainable]
    if len(blocks) < 2 or flow.nonfinite_loss:
        return []
    first, last = blocks[0], blocks[-1]
    if not first.grad_norm or not last.grad_norm or not math.isfinite(first.grad_norm + last.grad_norm):
        return []  # absent gradients are disconnected-/zero-gradients, not vanishing
    ratio = first.grad_norm / last.grad_norm
    if ratio >= T.VANISHING_MAX_RATIO:
        return []
    return [Finding(VANISHING_GRADIENTS,
                    f"'{first.name}' gets {ratio:.1e} of the gradient norm of '{last.name}' "
                    f"(threshold {T.VANISHING_MAX_RATIO:g})",
                    {"first_layer": first.name, "last_layer": last.name, "first_grad_norm": first.grad_norm,
                     "last_grad_norm": last.grad_norm, "ratio": ratio, "threshold": T.VANISHING_MAX_RATIO})]


def gradients_exploding(flow: GradFlow) -> list[Finding]:
    total = flow.total_grad_norm
    if total is None or not math.isfinite(total) or total < T.EXPLODING_MIN_TOTAL_NORM:
        return []
    top = max((lg for lg in flow.layers if lg.grad_norm is not None), key=lambda lg: lg.grad_norm)
    return [Finding(EXPLODING_GRADIENTS,
                    f"total gradient norm {total:.3g} (threshold {T.EXPLODING_MIN_TOTAL_NORM:g}); largest in "
                    f"'{top.name}' ({top.grad_norm:.3g})",
                    {"total_grad_norm": total, "threshold": T.EXPLODING_MIN_TOTAL_NORM, "largest_layer": top.name,
                     "largest_layer_grad_norm": top.grad_norm})]


def label_tokens_gradient(label: LabelTokenGrad | None) -> list[Finding]:
    if label is None or not label.layers or not label.occurrences:
        return []
    share = label.share_of_peak[-1]
    if share >= T.LABEL_TOKEN_MIN_SHARE:
        return []
    first = label.share_of_peak[0]
    return [Finding(NO_GRAD_TO_LABEL_TOKENS,
                    f"the label-token positions of '{label.layers[-1]}' get {share:.1e} of the gradient of the "
                    f"most-used position (threshold {T.LABEL_TOKEN_MIN_SHARE:g}); "
                    f"at '{label.layers[0]}' they get {first:.2g}",
                    {"layer": label.layers[-1], "share_of_peak": share, "label_mean": label.label_mean[-1],
                     "other_median": label.other_median[-1], "peak": label.peak[-1],
                     "threshold": T.LABEL_TOKEN_MIN_SHARE, "occurrences": label.occurrences,
                     "embedding_rows": label.embedding_rows})]


def units_dead(activations: list[ActivationStats]) -> list[Finding]:
    dead = [a for a in activations if a.kind == "relu" and a.dead_share >= T.DEAD_UNITS_MIN_SHARE]
    if not dead:
        return []
    text = ", ".join(f"'{a.module}' {a.dead_units}/{a.units}" for a in dead[:4])
    return [Finding(DEAD_UNITS, f"ReLU units never active on the batch: {text} "
                    f"(threshold {T.DEAD_UNITS_MIN_SHARE:.0%} of a module's units)",
                    {"modules": {a.module: {"dead": a.dead_units, "units": a.units, "share": a.dead_share}
                                 for a in dead}, "threshold": T.DEAD_UNITS_MIN_SHARE})]


def activations_saturated(activations: list[ActivationStats]) -> list[Finding]:
    sat = [a for a in activations if a.kind in ("tanh", "sigmoid") and a.saturated_share >= T.SATURATED_MIN_UNIT_SHARE]
    if not sat:
        return []
    text = ", ".join(f"'{a.module}' ({a.kind}) {a.saturated_units}/{a.units}" for a in sat[:4])
    return [Finding(SATURATED_ACTIVATIONS, f"units stuck at their limits on {T.SATURATED_MIN_ROW_SHARE:.0%} "
                    f"of the batch: {text}",
                    {"modules": {a.module: {"kind": a.kind, "saturated": a.saturated_units, "units": a.units,
                                            "share": a.saturated_share} for a in sat},
                     "threshold_unit_share": T.SATURATED_MIN_UNIT_SHARE})]


def grad_flow_checks(m: GradFlowPass) -> Iterator[tuple]:
    """The checks that apply to one grad-flow pass, each with the record it judges, in the order a user should
    read them. A frozen base is the design under LoRA and in activation-gradient mode (said in the header),
    so the frozen-parameter checks stand aside there."""
    flow = m.flow
    yield half_precision_weights, m.half_precision
    yield gradients_nonfinite, flow
    if not m.activation_mode:
        yield nothing_trainable, flow.census
    if not (m.lora or m.activation_mode):
        yield parameters_frozen, flow.census
    if not flow.nonfinite_loss:
        yield parameters_disconnected, flow.census
        yield no_grad_under_checkpointing, flow.census
    yield gradients_zero, flow
    yield gradients_exploding, flow
    yield gradients_vanishing, flow
    yield label_tokens_gradient, flow.label_tokens
    yield units_dead, flow.activations
    yield activations_saturated, flow.activations
    yield loss_at_init, InitialLoss(flow.loss, flow.num_labels, m.fresh_head)
    yield loss_terms_without_gradient, flow.loss_components
    yield learning_rate_too_high, m.updates


def loss_terms_without_gradient(components: dict) -> list[Finding]:
    """A loss term that is a sizeable part of the loss but sends (almost) no gradient to the encoder.

    The CE + SupCon situation: a SupCon term fed [batch, dim] instead of [batch, views, dim] is large
    yet its gradient is ~1e-5 of the CE term's: it costs compute and teaches nothing.
    """
    norms = {k: c.get("encoder_grad_norm") for k, c in components.items()}
    known = [v for v in norms.values() if v is not None]
    if len(known) < 2 or max(known) <= 0:
        return []
    top = max(known)
    out = []
    for name, c in components.items():
        g, value = norms[name], c.get("value")
        if g is None or value is None or not math.isfinite(value):
            continue
        if abs(value) >= T.LOSS_TERM_MIN_VALUE and g < T.LOSS_TERM_MAX_GRAD_SHARE * top:
            out.append(Finding(
                LOSS_TERM_WITHOUT_GRADIENT,
                f"loss term '{name}' = {value:.3g} sends only {g:.2e} of gradient into the encoder, "
                f"{g / top:.1e} of the strongest term's",
                {"term": name, "value": value, "encoder_grad_norm": g, "strongest_encoder_grad_norm": top,
                 "threshold_share": T.LOSS_TERM_MAX_GRAD_SHARE, "components": components},
            ))
    return out
