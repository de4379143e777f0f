"""grad-flow: one forward/backward pass; where does the gradient go (and where not)?"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math

import numpy as np

from labeldiag.pipeline.common import Inputs, head_options_for_data, prepare, tokens_fit_model
from labeldiag.errors import UsageError
from labeldiag.findings import Report, plain
from labeldiag.options import GradFlowSettings, Options
from labeldiag.records import (
    ActivationRow, GradFlowPass, GradFlowSummary, GradientHeatmap, HiddenStateGrad, LabelTokenSummary, LayerRow,
    LossComponent,
)
from labeldiag.progress import SILENT


def run(inputs: Inputs, opts: Options, settings: GradFlowSettings) -> Report:
    """prepare -> the labelled examples -> the model set up for the pass -> one forward/backward that returns
    records -> one judging pass over the checks that apply -> the report."""
    from labeldiag.checks import judge
    from labeldiag.checks.gradients import grad_flow_checks
    from labeldiag.checks.sharding import sharding_checks
    from labeldiag.distributed import from_env, init, shutdown
    from labeldiag.pipeline.sharding import start as start_sharding

    d = from_env()
    opts = _for_this_rank(opts, d)
    s = prepare(inputs, opts, "grad-flow", fresh_head_expected=True)
    if not tokens_fit_model(s) or not _takes_the_task(s):
        return s.report
    enc, labels = _labelled_examples(s, opts)
    init(d, s.runtime.device)
    sharded = start_sharding(s, opts, d)
    model = _model_for_the_pass(s, opts, d, len(enc.ids))
    measured = _measure(model, enc, labels, s, opts, settings.lr)
    s.report.add(judge(itertools.chain(sharding_checks(sharded), grad_flow_checks(measured))))
    s.report.notes += _how_it_was_measured(measured.flow, settings.lr, opts.batch_size)
    s.report.attach(_summary(measured, enc, s))
    shutdown(d)
    return s.report


def _for_this_rank(opts: Options, d) -> Options:
    """Under a launcher: this rank's device; rank 0 alone shows progress."""
    from labeldiag.distributed import local_device

    if not d.active:
        return opts
    return dataclasses.replace(opts, device=local_device(d, opts.device), progress=opts.progress if d.main else SILENT)


def _takes_the_task(s) -> bool:
    """Preference pairs are not measured: their loss couples two texts (said in a note)."""
    if s.task.kind != "pairwise":
        return True
    s.report.notes.append("grad-flow measures a loss per example, so it does not take preference pairs; "
                          "smoke-train trains them with the Bradley-Terry loss")
    return False


def _labelled_examples(s, opts: Options):
    """The encoded examples with a usable label, and their labels (UsageError when there are none, or when
    --label-tokens occur in none of them)."""
    from labeldiag.measure.encode import subset

    if s.task.kind != "single-label":
        from labeldiag.pipeline.shapes import labelled_rows

        rows, labels = labelled_rows(s, "grad-flow")
    else:
        rows, labels = _labelled_rows(s)
    enc = subset(s.encoded, rows)
    if s.label_token_ids is not None:
        _require_label_tokens(enc, s.label_token_ids, ",".join(opts.label_tokens))
    return enc, labels


def _model_for_the_pass(s, opts: Options, d, examples: int):
    """The model the pass runs on, said in the header: a LoRA copy (--lora), an FSDP2-sharded copy, or the
    caller's model placed on the device (a dispatched one stays where accelerate put it)."""
    from labeldiag.load.dispatch import announce as announce_dispatch, place
    from labeldiag.measure.lora import announce, lora_copy, plan_for
    from labeldiag.measure.sharded import sharded_copy

    model, report = s.loaded.model, s.report
    lora = plan_for(model, opts.lora) if opts.lora else None  # grad-flow adapts only when asked
    if lora is not None:  # on a copy: peft replaces the modules it adapts
        model, summary = lora_copy(model, lora)
        announce(report, summary)
    if d.shard == "fsdp":  # a sharded copy: fully_shard changes the modules it wraps
        model = sharded_copy(model, s.runtime.device)
        report.notes.append(f"FSDP2 shards the parameters, not the data: every rank passes the same {examples} "
                            "examples, so the averaged gradient is the one-process gradient; the table reads "
                            "whole (gathered) parameters and gradients")
    else:
        place(model, s.runtime.device)
    announce_dispatch(report, model)
    return model


def _measure(model, enc, labels: np.ndarray, s, opts: Options, lr: float) -> GradFlowPass:
    """The weights' precision, then one forward/backward (of the hidden states, for a dispatched model)."""
    from labeldiag.load.dispatch import is_dispatched
    from labeldiag.measure.activation_grads import ActivationGradients
    from labeldiag.measure.gradients import measure_grad_flow
    from labeldiag.measure.learning_rate import update_ratios
    from labeldiag.measure.lora import zero_by_design
    from labeldiag.measure.parameters import head_parameter_names
    from labeldiag.measure.precision import measure_half_precision

    report, dispatched = s.report, is_dispatched(model)
    half = measure_half_precision(model, lr)
    words = list(opts.label_tokens) if opts.label_tokens else None
    mode = ActivationGradients(model, head_parameter_names(model)) if dispatched else contextlib.nullcontext()
    with opts.progress.phase(f"forward and backward on {len(enc.ids)} examples"), mode:
        flow = measure_grad_flow(model, enc, labels, s.runtime, opts.batch_size, lr,
                                 num_labels=2 if s.task.kind == "multi-label" else s.num_classes,
                                 base_prefix=s.loaded.base_prefix, label_token_ids=s.label_token_ids,
                                 label_words=words,
                                 label_positions=list(s.label_positions) if s.label_positions else None)
    hidden = None
    if dispatched:
        hidden = tuple(HiddenStateGrad(h.name, plain(h.grad_norm), plain(h.pooled_grad_norm)) for h in mode.result())
        report.notes.append(_activation_mode_note(mode))
        if not mode.head_in_memory:  # no parameter got a gradient: there is no norm to show
            flow = dataclasses.replace(flow, total_grad_norm=None)
    lora = bool(opts.lora)
    if lora:
        flow, zero_a = zero_by_design(flow)
        report.notes.append(f"{zero_a} lora_A tensor(s) get an exactly zero gradient at initialisation by design "
                            "(lora_B starts at zero); they are not judged by zero-gradients")
    return GradFlowPass(flow, half, update_ratios(flow.layers, lr), fresh_head=bool(s.loaded.audit.missing_head),
                        lora=lora, activation_mode=dispatched, activation_gradients=hidden)


def _activation_mode_note(mode) -> str:
    """What the activation-gradient mode measures of a dispatched model, and what it leaves out."""
    return ("activation-gradient mode (the model is dispatched over devices): parameters frozen"
            + (" but the head's" if mode.head_in_memory else " (the head too: it is offloaded)")
            + "; the table holds the gradient w.r.t. each layer's hidden states (all positions, and "
            f"the {'last non-pad' if mode.last_token else 'first'} position the head pools), so "
            "parameter-gradient verdicts cover the head alone")


def _how_it_was_measured(flow, lr: float, batch_size: int) -> list[str]:
    notes = [(f"train mode with dropout disabled ({flow.dropout_modules} dropout module(s) set to p=0 "
              "for the pass, then restored), so the gradient is deterministic"),
             ("update/weight ratio: the first AdamW step moves each element with a nonzero gradient by "
              f"about lr={lr:g}, so the update norm is taken as lr * sqrt(elements with a gradient); "
              "~1e-3 is the usual healthy order")]
    if flow.micro_batches > 1:
        notes.append(f"{flow.examples} examples in {flow.micro_batches} micro-batches of at most "
                     f"{batch_size}; gradients accumulated, each loss weighted by its batch share")
    return notes


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


def _summary(measured: GradFlowPass, enc, s) -> GradFlowSummary:
    """The measurement as the report carries it: plain numbers (NaN/inf as None); each layer's update/weight
    ratio carries checks.learning_rate's verdict for the table's mark."""
    from labeldiag.checks.learning_rate import update_ratio_unusual

    flow, lr = measured.flow, measured.updates.lr
    ln_c = math.log(flow.num_labels) if flow.num_labels >= 2 else None
    layers = tuple(dataclasses.replace(LayerRow.from_metrics(plain(lg.as_metrics())),
                                       update_ratio_unusual=update_ratio_unusual(plain(lg.update_weight_ratio)))
                   for lg in flow.layers)
    label, heat = flow.label_tokens, None
    if label is not None:
        # where the label tokens sit, so the figure can mark those positions
        share = _label_position_share(enc, s.label_token_ids, s.label_positions, len(label.heat[0])) \
            if label.heat else None
        heat = GradientHeatmap(tuple(label.layers), tuple(tuple(plain(round(v, 6)) for v in row) for row in label.heat),
                               None if share is None else tuple(share))
    components = tuple(LossComponent(name, plain(c["value"]), plain(c["encoder_grad_norm"]))
                       for name, c in flow.loss_components.items())
    return GradFlowSummary(
        loss=plain(flow.loss), loss_source=flow.loss_source, ln_num_labels=ln_c,
        loss_over_ln_num_labels=plain(flow.loss / ln_c) if ln_c and flow.loss is not None else None,
        fresh_head=measured.fresh_head, total_grad_norm=plain(flow.total_grad_norm), lr=lr, examples=flow.examples,
        micro_batches=flow.micro_batches, trainable_params=flow.trainable, frozen_params=flow.frozen,
        layers=layers, activations=tuple(ActivationRow(a.module, a.kind, a.units, a.dead_units, a.saturated_units)
                                         for a in flow.activations),
        grad_flow_seconds=round(flow.seconds, 3), loss_components=components or None,
        label_tokens=LabelTokenSummary.from_metrics(plain(label.as_metrics())) if label is not None else None,
        heatmap=heat, activation_gradients=measured.activation_gradients)
