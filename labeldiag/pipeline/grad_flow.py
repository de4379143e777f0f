"""grad-flow: one forward/backward pass; where does the gradient go (and where not)?"""
from __future__ import annotations

import contextlib
import dataclasses
import math

import numpy as np

from labeldiag.pipeline.common import Inputs, head_options_for_data, prepare, tokens_fit_model
from labeldiag.errors import UsageError
from labeldiag.findings import Report, plain
from labeldiag.options import GradFlowSettings, Options
from labeldiag.records import (
    ActivationRow, GradFlowSummary, GradientHeatmap, LabelTokenSummary, LayerRow,
)
from labeldiag.progress import SILENT
from labeldiag.catalogue import FROZEN_PARAMETERS, NOTHING_TRAINABLE


def run(inputs: Inputs, opts: Options, settings: GradFlowSettings) -> Report:
    from labeldiag.checks.gradients import check_grad_flow
    from labeldiag.measure.encode import subset
    from labeldiag.checks.learning_rate import learning_rate_too_high
    from labeldiag.checks.precision import half_precision_weights
    from labeldiag.measure.gradients import measure_grad_flow
    from labeldiag.measure.learning_rate import update_ratios
    from labeldiag.measure.precision import measure_half_precision
    from labeldiag.pipeline.sharding import start as start_sharding
    from labeldiag.distributed import from_env, init, local_device, shutdown
    from labeldiag.load.dispatch import announce as announce_dispatch, is_dispatched, place
    from labeldiag.measure.activation_grads import ActivationGradients
    from labeldiag.measure.parameters import head_parameter_names
    from labeldiag.measure.sharded import sharded_copy
    from labeldiag.measure.lora import announce, lora_copy, plan_for, zero_by_design

    lr = settings.lr
    d = from_env()
    if d.active:  # under a launcher: this rank's device; rank 0 alone shows progress
        opts = dataclasses.replace(opts, device=local_device(d, opts.device),
                                   progress=opts.progress if d.main else SILENT)
    s = prepare(inputs, opts, "grad-flow", fresh_head_expected=True)
    report, enc, model = s.report, s.encoded, s.loaded.model
    if not tokens_fit_model(s):
        return report
    if s.task.kind == "pairwise":  # its loss is per example; the Bradley-Terry loss couples two texts
        report.notes.append("grad-flow measures a loss per example, so it does not take preference pairs; "
                            "smoke-train trains them with the Bradley-Terry loss")
        return report
    if s.task.kind != "single-label":
        from labeldiag.pipeline.shapes import labelled_rows

        rows, labels = labelled_rows(s, "grad-flow")
    else:
        rows, labels = _labelled_rows(s)
    enc = subset(enc, rows)
    if s.label_token_ids is not None:
        _require_label_tokens(enc, s.label_token_ids, ",".join(opts.label_tokens))
    init(d, s.runtime.device)
    start_sharding(s, opts, d)
    lora = plan_for(model, opts.lora) if opts.lora else None  # grad-flow adapts only when asked
    if lora is not None:  # on a copy: peft replaces the modules it adapts
        model, summary = lora_copy(model, lora)
        announce(report, summary)
    if d.shard == "fsdp":  # a sharded copy: fully_shard changes the modules it wraps
        model = sharded_copy(model, s.runtime.device)
        report.notes.append(f"FSDP2 shards the parameters, not the data: every rank passes the same {len(enc.ids)} "
                            "examples, so the averaged gradient is the one-process gradient; the table reads "
                            "whole (gathered) parameters and gradients")
    else:
        place(model, s.runtime.device)  # a dispatched model stays where accelerate put it
    dispatched = is_dispatched(model)
    announce_dispatch(report, model)
    report.add(half_precision_weights(measure_half_precision(model, lr)))
    words = list(opts.label_tokens) if opts.label_tokens else None
    mode = ActivationGradients(model, head_parameter_names(model)) if dispatched else contextlib.nullcontext()
    with opts.progress.phase(f"forward and backward on {len(enc.ids)} examples"), mode:
        flow = measure_grad_flow(model, enc, labels, s.runtime, opts.batch_size, lr,
                                 num_labels=2 if s.task.kind == "multi-label" else s.num_classes, base_prefix=s.loaded.base_prefix,
                                 label_token_ids=s.label_token_ids, label_words=words,
                                 label_positions=list(s.label_positions) if s.label_positions else None)
    fresh_head = bool(s.loaded.audit.missing_head)
    if dispatched:
        _activation_mode_report(report, mode)
        if not mode.head_in_memory:  # no parameter got a gradient: there is no norm to show
            flow = dataclasses.replace(flow, total_grad_norm=None)
    if lora is not None:
        flow, zero_a = zero_by_design(flow)
        report.notes.append(f"{zero_a} lora_A tensor(s) get an exactly zero gradient at initialisation by design "
                            "(lora_B starts at zero); they are not judged by zero-gradients")
    findings = check_grad_flow(flow, fresh_head)
    if lora is not None or dispatched:  # the frozen base is the design (LoRA, activation mode), said above
        by_design = {FROZEN_PARAMETERS, NOTHING_TRAINABLE} if dispatched else {FROZEN_PARAMETERS}
        findings = [f for f in findings if f.code not in by_design]
    report.add(findings)
    report.add(learning_rate_too_high(updates=update_ratios(flow.layers, lr)))
    report.notes.append(f"train mode with dropout disabled ({flow.dropout_modules} dropout module(s) set to p=0 "
                        "for the pass, then restored), so the gradient is deterministic")
    report.notes.append("update/weight ratio: the first AdamW step moves each element with a nonzero gradient by "
                        f"about lr={lr:g}, so the update norm is taken as lr * sqrt(elements with a gradient); "
                        "~1e-3 is the usual healthy order")
    if flow.micro_batches > 1:
        report.notes.append(f"{flow.examples} examples in {flow.micro_batches} micro-batches of at most "
                            f"{opts.batch_size}; gradients accumulated, each loss weighted by its batch share")
    share = None
    if flow.label_tokens is not None and flow.label_tokens.heat:
        # where the label tokens sit, so the figure can mark those positions
        share = _label_position_share(enc, s.label_token_ids, s.label_positions, len(flow.label_tokens.heat[0]))
    report.attach(_summary(flow, lr, fresh_head, share))
    shutdown(d)
    return report


def _activation_mode_report(report, mode) -> None:
    """The hidden-state gradients of a dispatched model, and what the mode leaves out."""
    hidden = mode.result()
    report.metrics["activation_gradients"] = [dataclasses.asdict(h) for h in hidden]
    report.notes.append("activation-gradient mode (the model is dispatched over devices): parameters frozen"
                        + (" but the head's" if mode.head_in_memory else " (the head too: it is offloaded)")
                        + "; the table holds the gradient w.r.t. each layer's hidden states (all positions, and "
                        f"the {'last non-pad' if mode.last_token else 'first'} position the head pools), so "
                        "parameter-gradient verdicts cover the head alone")


def _label_position_share(enc, token_ids: list[int] | None, positions: tuple[int, ...] | None,
                          width: int) -> list[float]:
    """For each of the heat map's first `width` positions, the share of examples holding a label token there."""
    held = np.zeros(width)
    for ids in enc.ids:
        n = min(len(ids), width)
        if token_ids is not None:
            held[:n] += np.isin(ids[:n], token_ids)
        else:
            held[[p for p in positions or () if p < n]] += 1
    return [round(float(v), 4) for v in held / max(len(enc.ids), 1)]


def _labelled_rows(s) -> tuple[np.ndarray, np.ndarray]:
    """Examples with a usable gold label inside the model's classes."""
    if s.gold is None:
        raise UsageError("grad-flow needs labelled examples; DATA has no label column (pass --label-field)")
    usable = s.gold.usable & (s.gold.indices < s.num_classes)
    if not usable.any():
        fix = head_options_for_data(s)
        raise UsageError("grad-flow needs labelled examples; none of DATA's labels map to the model's "
                         f"{s.num_classes} classes " + (f"(attach a head that fits them:{fix})" if fix else
                                                        "(see check-logits for the label findings)"))
    rows = np.nonzero(usable)[0]
    return rows, s.gold.indices[rows].astype(np.int64)


def _require_label_tokens(enc, token_ids: list[int], text: str | None) -> None:
    present = set(np.concatenate(enc.ids).tolist()) if enc.ids else set()
    if not any(t in present for t in token_ids):
        raise UsageError(f"--label-tokens '{text}': none of these tokens occurs in the labelled examples; "
                         "put them into the inputs or give --label-token-positions")


def _summary(flow, lr: float, fresh_head: bool, label_share: list[float] | None) -> GradFlowSummary:
    """The measurement as the report carries it: plain numbers (NaN/inf as None)."""
    from labeldiag.checks.learning_rate import update_ratio_unusual

    ln_c = math.log(flow.num_labels) if flow.num_labels >= 2 else None
    layers = tuple(dataclasses.replace(LayerRow.from_metrics(plain(lg.as_metrics())),
                                       update_ratio_unusual=update_ratio_unusual(plain(lg.update_weight_ratio)))
                   for lg in flow.layers)
    label, heat = flow.label_tokens, None
    if label is not None:
        heat = GradientHeatmap(tuple(label.layers), tuple(tuple(plain(round(v, 6)) for v in row) for row in label.heat),
                               None if label_share is None else tuple(label_share))
    return GradFlowSummary(
        loss=plain(flow.loss), loss_source=flow.loss_source, ln_num_labels=ln_c,
        loss_over_ln_num_labels=plain(flow.loss / ln_c) if ln_c and flow.loss is not None else None,
        fresh_head=fresh_head, total_grad_norm=plain(flow.total_grad_norm), lr=lr, examples=flow.examples,
        micro_batches=flow.micro_batches, trainable_params=flow.trainable, frozen_params=flow.frozen,
        layers=layers, activations=tuple(ActivationRow(a.module, a.kind, a.units, a.dead_units, a.saturated_units)
                                         for a in flow.activations),
        grad_flow_seconds=round(flow.seconds, 3), loss_components=plain(flow.loss_components) or None,
        label_tokens=LabelTokenSummary.from_metrics(plain(label.as_metrics())) if label is not None else None,
        heatmap=heat)
