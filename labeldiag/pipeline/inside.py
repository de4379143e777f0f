"""check-logits' look inside the model (issue 20): static weight statistics, the activations its forward
pass recorded, and the distance of each tensor from the base model when one is at hand (never downloaded)."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from labeldiag.findings import Report
from labeldiag.load.base_model import read_base_state


def inside_findings(report: Report, model: Any, activations: Any, base: str | None) -> None:
    """The weight, activation and (with a base folder from load.base_model.resolve_base) base-distance verdicts."""
    from labeldiag.checks.weights import (attention_degenerate, layer_weights_anomalous, residual_stream_anomalous,
                                          weights_far_from_base)
    from labeldiag.measure.weights import base_distances, weight_stats

    report.add(layer_weights_anomalous(weight_stats(model)))
    report.add(residual_stream_anomalous(activations))
    report.add(attention_degenerate(activations))
    if activations is not None:
        report.metrics["residual_stream"] = [asdict(b) for b in activations.blocks]
        report.metrics["attention"] = [asdict(a) for a in activations.attention]
        if not activations.attention:
            report.notes.append(f"attention statistics skipped: {activations.attention_source}")
    if base is None:
        return
    distances = base_distances(model, read_base_state(base))
    report.add(weights_far_from_base(distances, base))
    report.metrics["base_model"] = base
    report.metrics["base_relative_change"] = {d.name: d.relative_change for d in distances}
