"""check-logits' look inside the model (issue 20): static weight statistics, the activations its forward
pass recorded, and the distance of each tensor from the base model when one is at hand (never downloaded)."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from labeldiag.findings import Report
from labeldiag.load.base_model import read_base_state
from labeldiag.records import Activations, BaseDistance, TensorStats


def measure_inside(model: Any, base: str | None) -> tuple[tuple[TensorStats, ...], tuple[BaseDistance, ...] | None]:
    """Every weight tensor's statistics, and (with a base folder from load.base_model.resolve_base) its distance
    from the base's."""
    from labeldiag.measure.weights import base_distances, weight_stats

    distances = None if base is None else tuple(base_distances(model, read_base_state(base)))
    return tuple(weight_stats(model)), distances


def inside_checks(weights: tuple[TensorStats, ...], activations: Activations | None,
                  distances: tuple[BaseDistance, ...] | None, base: str | None):
    """The (check, inputs) pairs of the weight, activation and base-distance verdicts."""
    from labeldiag.checks.weights import (attention_degenerate, layer_weights_anomalous, residual_stream_anomalous,
                                          weights_far_from_base)

    yield layer_weights_anomalous, list(weights)
    yield residual_stream_anomalous, activations
    yield attention_degenerate, activations
    if base is not None:
        yield weights_far_from_base, list(distances), base


def record_inside(report: Report, activations: Activations | None, distances: tuple[BaseDistance, ...] | None,
                  base: str | None) -> None:
    """The activation statistics and base distances into the metrics (a note when attention was not read)."""
    if activations is not None:
        report.metrics["residual_stream"] = [asdict(b) for b in activations.blocks]
        report.metrics["attention"] = [asdict(a) for a in activations.attention]
        if not activations.attention:
            report.notes.append(f"attention statistics skipped: {activations.attention_source}")
    if base is None:
        return
    report.metrics["base_model"] = base
    report.metrics["base_relative_change"] = {d.name: d.relative_change for d in distances}
