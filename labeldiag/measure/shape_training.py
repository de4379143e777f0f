"""smoke-train's loop for multi-label (BCE) and regression (MSE) heads: the loss is computed on the
logits here, so the model's own problem_type cannot change what is measured."""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from labeldiag import thresholds as T
from labeldiag.measure.encode import Encoded
from labeldiag.measure.forward import collate
from labeldiag.measure.parameters import census
from labeldiag.measure.runtime import Runtime, call_model, filter_inputs, forward_params, logits_tensor
from labeldiag.measure.training import FitRule, stop_at
from labeldiag.options import TrainSettings
from labeldiag.records import TrainingTrace


def shape_loss(kind: str, logits: Any, targets: Any, target_var: float) -> tuple[Any, Any, int]:
    """(loss, the fit measure, examples right): mean BCE per label with every label right at 0.5, MSE with
    the examples whose squared error is small against the targets' variance, or the Bradley-Terry loss
    with the pairs whose chosen text scores higher."""
    import torch
    import torch.nn.functional as F

    lg = logits.float()
    if kind == "token":  # issue 22: cross-entropy over the labelled tokens; right = every labelled token right
        loss = F.cross_entropy(lg.reshape(-1, lg.shape[-1]), targets.reshape(-1), ignore_index=-100)
        with torch.no_grad():
            right = ((lg.argmax(-1) == targets) | (targets < 0)).all(1)
        return loss, loss.detach(), right
    if kind == "pairwise":  # rows are the chosen texts, then the rejected ones: Bradley-Terry as in TRL
        half = lg.shape[0] // 2
        margin = lg[:half, 0] - lg[half:, 0]
        loss = F.softplus(-margin).mean()
        with torch.no_grad():
            right = margin.detach() > 0
        return loss, loss.detach(), right
    if kind == "multi-label":
        loss = F.binary_cross_entropy_with_logits(lg, targets)
        with torch.no_grad():
            right = ((lg >= 0) == (targets > 0.5)).all(1)
        return loss, loss.detach(), right
    pred = lg[:, 0]
    loss = F.mse_loss(pred, targets)
    with torch.no_grad():
        scaled = loss.detach() / target_var
        right = (pred.detach() - targets) ** 2 < T.SMOKE_REGRESSION_EXAMPLE_TOLERANCE * target_var
    return loss, scaled, right


def train_shape(model: Any, enc: Encoded, rows: np.ndarray, targets: np.ndarray, kind: str, runtime: Runtime,
                settings: TrainSettings, trace: TrainingTrace, fitted: FitRule) -> None:
    """Pre-flight backward (census, loss at init), then AdamW on the fixed batch until fitted, diverged or
    out of steps; fills `trace` (classification_losses hold the fit measure)."""
    import torch

    device = runtime.device
    inputs = filter_inputs(collate(enc, rows, device), forward_params(model))
    y = torch.as_tensor(targets, dtype=torch.long if kind == "token" else torch.float32, device=device)
    target_var = float(max(np.var(targets), 1e-12)) if kind == "regression" else 1.0
    model.train()
    named = list(model.named_parameters())

    def step_forward():
        with runtime.autocast():
            out = call_model(model, inputs)
        if kind == "token":
            from labeldiag.measure.token_data import per_position_logits

            logits = per_position_logits(out, len(rows))
        else:
            logits = logits_tensor(out, len(rows))
        if logits is None:
            from labeldiag.errors import ModelCodeError

            raise ModelCodeError("the model's logits are not a torch tensor; smoke-train needs them to backpropagate")
        return logits, *shape_loss(kind, logits, y, target_var)

    logits, loss, measure, right = step_forward()
    trace.initial_loss = float(loss.detach())
    if loss.requires_grad:
        loss.backward()
    trace.census = census(named, loss_connected=bool(loss.requires_grad))
    model.zero_grad(set_to_none=True)
    if not trace.trainable:
        trace.skipped = "no parameter is trainable"
    elif not trace.loss_has_grad:
        trace.skipped = "the loss does not depend on any trainable parameter"
    if trace.skipped:
        return
    params = [p for p in model.parameters() if p.requires_grad]
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    snapshot = [p.detach().to("cpu", copy=True) for p in params]
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    limit = T.SMOKE_DIVERGED_FACTOR * max(trace.initial_loss if math.isfinite(trace.initial_loss) else 1.0,
                                          trace.ln_c if kind != "regression" else 1.0)
    start = time.perf_counter()
    for step in range(1, settings.steps + 1):
        logits, loss, measure, right = step_forward()
        loss.backward()
        norms = [p.grad.norm() for p in params if p.grad is not None]
        grad_norm = float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss_v = float(loss.detach())
        trace.losses.append(loss_v)
        trace.accuracies.append(float(right.float().mean()))
        trace.classification_losses.append(float(measure))
        trace.grad_norms.append(grad_norm)
        trace.max_abs_logits.append(float(logits.detach().abs().max()))
        if kind == "multi-label":
            predicted = (logits.detach() >= 0).cpu().numpy()
            trace.distinct_predictions.append(len({r.tobytes() for r in np.packbits(predicted, axis=1)}))
        if stop_at(step, loss_v, limit, trace, fitted, start):
            break
    # the Bradley-Terry loss sees only score differences, so the bias of a one-score head gets no gradient
    # by construction: not a parameter left behind
    with torch.no_grad():
        trace.unchanged = [n for n, p, old in zip(names, params, snapshot) if torch.equal(p.detach().cpu(), old)
                           and not (kind == "pairwise" and p.numel() == 1)]
