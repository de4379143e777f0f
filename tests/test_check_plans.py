"""The judging pass of grad-flow and smoke-train, on records alone (no torch, no model): which checks apply,
in which order, and that the one-judge-per-code split of the training verdicts says what the run shows."""
from __future__ import annotations

from labeldiag.checks import judge
from labeldiag.checks.gradients import grad_flow_checks
from labeldiag.checks.training import check_training, training_checks
from labeldiag.catalogue import (
    CANNOT_OVERFIT, COLLAPSE_DURING_TRAINING, FROZEN_PARAMETERS, LOSS_DIVERGED, NOTHING_TRAINABLE, SLOW_CONVERGENCE,
)
from labeldiag.options import TrainSettings
from labeldiag.records import GradFlow, GradFlowPass, ParameterCensus, TrainingTrace, UpdateRatios

FROZEN = ParameterCensus(trainable=(), frozen=("bert.encoder.layer.0.weight",), trainable_elements=0,
                         frozen_elements=64, frozen_layers=("bert.encoder.layer.0",))


def a_pass(**traits) -> GradFlowPass:
    flow = GradFlow(loss=1.1, loss_source="model", num_labels=3, examples=8, micro_batches=1, total_grad_norm=None,
                    layers=[], activations=[], label_tokens=None, census=FROZEN)
    return GradFlowPass(flow, None, UpdateRatios(lr=1e-4, ratios={}), fresh_head=False, **traits)


def codes(findings) -> list[str]:
    return [f.code for f in findings]


def test_judge_calls_each_check_on_its_records_in_order():
    seen = []
    found = judge([(lambda x: seen.append(x) or [], 1), (lambda x, y: seen.append((x, y)) or [], 2, 3)])
    assert found == [] and seen == [1, (2, 3)]


def test_a_frozen_base_is_judged_unless_it_is_the_design():
    assert codes(judge(grad_flow_checks(a_pass()))) == [NOTHING_TRAINABLE, FROZEN_PARAMETERS]
    assert codes(judge(grad_flow_checks(a_pass(lora=True)))) == [NOTHING_TRAINABLE]
    assert codes(judge(grad_flow_checks(a_pass(activation_mode=True)))) == []


def trace(losses, accuracies, **kw) -> TrainingTrace:
    t = TrainingTrace(num_classes=3, batch_classes=3, initial_loss=1.1, **kw)
    t.losses, t.accuracies, t.classification_losses = list(losses), list(accuracies), list(losses)
    t.distinct_predictions = [3] * len(losses)
    return t


def test_training_verdicts_one_judge_per_code():
    settings = TrainSettings(steps=10)
    diverged = trace([1.0, float("nan")], [0.3, 0.3], diverged_step=2)
    assert codes(check_training(diverged, settings)) == [LOSS_DIVERGED, CANNOT_OVERFIT]
    assert "lower --lr" in check_training(diverged, settings)[1].hint  # cannot-overfit reads the divergence
    collapsed = trace([1.1] * 6, [0.3] * 6)
    collapsed.distinct_predictions = [1] * 6
    assert codes(check_training(collapsed, settings)) == [COLLAPSE_DURING_TRAINING, CANNOT_OVERFIT]
    late = trace([1.0] * 9 + [0.01], [0.5] * 9 + [1.0], fit_step=10)
    assert codes(check_training(late, settings)) == [SLOW_CONVERGENCE]
    skipped = TrainingTrace(num_classes=3, batch_classes=3, initial_loss=1.1, skipped="no parameter is trainable")
    assert codes(check_training(skipped, settings)) == [CANNOT_OVERFIT]
    assert len(list(training_checks(late, settings))) == 5  # every judge is asked; each says nothing or its code
