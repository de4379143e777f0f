"""Which typed measurements a JSON report's metrics hold: what Report.from_dict and the HTML page read back."""
from __future__ import annotations

from typing import Any


def measurements_in(command: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """The typed records in `metrics`, by the Report field that carries each (None where it holds none)."""
    from labeldiag.records.bigmodel import BIG_MODEL_RECORDS
    from labeldiag.records.diagnosis import DoctorRun, FixOutcome
    from labeldiag.records.logits import RUN_RECORDS, LogitsSummary
    from labeldiag.records.training import BatchMakeup, GradFlowSummary, TrainingSummary

    flow = command == "grad-flow" and "layers" in metrics
    predicted = "prediction_histogram" in metrics or "confusion_matrix" in metrics
    trained = command == "smoke-train" and any(k in metrics for k in ("curve", "steps_run", "skipped", "triage"))
    return {"grad_flow": GradFlowSummary.from_metrics(metrics) if flow else None,
            "training": TrainingSummary.from_metrics(metrics) if trained else None,
            "batch": BatchMakeup.from_metrics(metrics) if command == "smoke-train" and "batch" in metrics else None,
            "logits": LogitsSummary.from_metrics(metrics) if predicted else None,
            "doctor": DoctorRun.from_metrics(metrics) if command == "doctor" and "stages" in metrics else None,
            "fix": FixOutcome.from_metrics(metrics) if command == "fix" and "fixes" in metrics else None,
            **{kind.report_field: kind.from_metrics(metrics) if kind.report_field in metrics else None
               for kind in BIG_MODEL_RECORDS},
            # check-logits' run records, also in doctor's report, which carries its check-logits stage's
            **{kind.report_field: kind.from_metrics(metrics) if command in ("check-logits", "doctor") and key in metrics
               else None for kind, key in RUN_RECORDS}}
