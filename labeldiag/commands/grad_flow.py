"""grad-flow: one forward/backward pass; where does the gradient go (and where not)?"""
from __future__ import annotations

import math

import numpy as np

from labeldiag.commands.common import CommonOptions, finish, prepare, tokens_fit_model
from labeldiag.errors import UsageError


def run(opts: CommonOptions, lr: float = 2e-5) -> int:
    from labeldiag.checks.gradients import check_grad_flow
    from labeldiag.measure.encode import subset
    from labeldiag.measure.gradients import measure_grad_flow
    from labeldiag.render import grad_flow as grad_flow_render  # registers the console section

    if not (lr > 0 and math.isfinite(lr)):
        raise UsageError(f"--lr must be a positive number, got {lr}")
    s = prepare(opts, "grad-flow", fresh_head_expected=True)
    report, enc, model = s.report, s.encoded, s.loaded.model
    if not tokens_fit_model(s):
        return finish(s, opts)
    rows, labels = _labelled_rows(s)
    enc = subset(enc, rows)
    if s.label_token_ids is not None:
        _require_label_tokens(enc, s.label_token_ids, opts.label_tokens)
    model.to(s.runtime.device)
    words = [w.strip() for w in opts.label_tokens.split(",") if w.strip()] if opts.label_tokens else None
    flow = measure_grad_flow(model, enc, labels, s.runtime, opts.batch_size, lr,
                             num_labels=s.num_classes, base_prefix=s.loaded.base_prefix,
                             label_token_ids=s.label_token_ids, label_words=words,
                             label_positions=s.label_positions)
    fresh_head = bool(s.loaded.audit.missing_head)
    report.add(check_grad_flow(flow, fresh_head))
    report.notes.append(f"train mode with dropout disabled ({flow.dropout_modules} dropout module(s) set to p=0 "
                        "for the pass, then restored), so the gradient is deterministic")
    report.notes.append("update/weight ratio: the first AdamW step moves each element with a nonzero gradient by "
                        f"about lr={lr:g}, so the update norm is taken as lr * sqrt(elements with a gradient); "
                        "~1e-3 is the usual healthy order")
    if flow.micro_batches > 1:
        report.notes.append(f"{flow.examples} examples in {flow.micro_batches} micro-batches of at most "
                            f"{opts.batch_size}; gradients accumulated, each loss weighted by its batch share")
    report.metrics.update(_metrics(flow, lr, fresh_head))
    return finish(s, opts, grad_flow_render.plot_grad_flow)


def _labelled_rows(s) -> tuple[np.ndarray, np.ndarray]:
    """Examples with a usable gold label inside the model's classes."""
    if s.gold is None:
        raise UsageError("grad-flow needs labelled examples; DATA has no label column (pass --label-field)")
    usable = s.gold.usable & (s.gold.indices < s.num_classes)
    if not usable.any():
        raise UsageError("grad-flow needs labelled examples; none of DATA's labels map to the model's classes "
                         "(see check-logits for the label findings)")
    rows = np.nonzero(usable)[0]
    return rows, s.gold.indices[rows].astype(np.int64)


def _require_label_tokens(enc, token_ids: list[int], text: str | None) -> None:
    present = set(np.concatenate(enc.ids).tolist()) if enc.ids else set()
    if not any(t in present for t in token_ids):
        raise UsageError(f"--label-tokens '{text}': none of these tokens occurs in the labelled examples; "
                         "put them into the inputs or give --label-token-positions")


def _metrics(flow, lr: float, fresh_head: bool) -> dict:
    ln_c = math.log(flow.num_labels) if flow.num_labels >= 2 else None
    out = {
        "loss": flow.loss, "loss_source": flow.loss_source, "ln_num_labels": ln_c,
        "loss_over_ln_num_labels": flow.loss / ln_c if ln_c and flow.loss is not None else None,
        "fresh_head": fresh_head, "total_grad_norm": flow.total_grad_norm, "lr": lr,
        "examples": flow.examples, "micro_batches": flow.micro_batches,
        "trainable_params": flow.trainable, "frozen_params": flow.frozen,
        "layers": [lg.as_metrics() for lg in flow.layers],
        "activations": [{"module": a.module, "kind": a.kind, "units": a.units, "dead_units": a.dead_units,
                         "saturated_units": a.saturated_units} for a in flow.activations],
        "dropout_disabled": True, "grad_flow_seconds": round(flow.seconds, 3),
    }
    if flow.loss_components:
        out["loss_components"] = flow.loss_components
    if flow.label_tokens is not None:
        out["label_token_gradients"] = flow.label_tokens.as_metrics()
        out["label_token_heatmap"] = {"layers": flow.label_tokens.layers,
                                      "grad_norm": [[round(v, 6) for v in row] for row in flow.label_tokens.heat]}
    return out
