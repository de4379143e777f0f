"""doctor's smoke stage is shortened (issue 18): short inputs, a run stopped once it cannot fit, a bounded
rerun; the header says what was shortened, and a healthy model still fits."""
from __future__ import annotations

import math

import pytest

from helpers import clone, edit_weights
from labeldiag import thresholds as T
from labeldiag.measure.training import cannot_reach_target


def test_a_flat_curve_is_given_up_after_the_minimum_steps():
    flat, chance = [1.1] * T.SMOKE_GIVE_UP_MIN_STEPS, [0.375, 0.3125] * (T.SMOKE_GIVE_UP_MIN_STEPS // 2)
    assert cannot_reach_target(flat[:-1], chance[:-1], 0.05, 81) is None  # too early to say
    assert "neither the loss (1.1) can reach 0.05" in cannot_reach_target(flat, chance, 0.05, 80)


def test_a_run_at_full_accuracy_is_never_given_up():  # the plateau criterion may still call it fitted
    assert cannot_reach_target([1.1] * 30, [0.5] * 25 + [1.0] * 5, 0.05, 70) is None


@pytest.mark.parametrize("halving_every", [3, 10, 20], ids=lambda k: f"halves-every-{k}-steps")
def test_a_curve_that_would_fit_in_the_budget_is_never_cut(halving_every):
    rate = math.log(2) / halving_every
    curve = [1.1 * math.exp(-rate * (i + 1)) for i in range(100)]
    fit = next(i + 1 for i, loss in enumerate(curve) if loss < 0.05)
    stuck = [0.5] * 100  # the loss alone must keep it going
    assert fit <= 100
    assert all(cannot_reach_target(curve[:n], stuck[:n], 0.05, 100 - n) is None for n in range(1, fit))


def test_doctor_stops_a_run_that_cannot_fit_and_says_why(trained, tmp_path):
    from labeldiag import doctor

    headless = clone(trained["checkpoint"], tmp_path / "headless")  # a fresh head starts far from a fit
    edit_weights(headless, lambda t: {k: v for k, v in t.items() if not k.startswith("classifier")})
    report = doctor(headless, trained["data"], max_examples=200, lr=1e-9)
    smoke = report.metrics["stages"]["smoke-train"]
    assert smoke["ran"] and report.metrics["smoke_train"]["steps_run"] == T.SMOKE_GIVE_UP_MIN_STEPS
    [finding] = [f for f in report.findings if f.code == "cannot-overfit"]
    assert "stopped at step" in finding.message and finding.evidence["give_up_rule"].startswith("after at least")
    assert any(n.startswith("smoke-train stage: 16 examples") and "cannot reach --target-loss" in n
               for n in report.notes)


def test_doctor_still_fits_a_healthy_model_on_inputs_cut_short(trained):
    from labeldiag import doctor

    report = doctor(trained["checkpoint"], trained["data"], max_examples=200, max_length=128)
    assert report.metrics["smoke_train"]["fitted"] and report.diagnosis == []
    assert "stopped_early" not in report.metrics["smoke_train"]
    shortened = report.metrics["stages"]["smoke-train"]["shortened"]
    assert shortened[0] == f"16 examples cut to {T.DOCTOR_SMOKE_MAX_LENGTH} tokens (check-logits: 128)"
    assert any("a lower-rate rerun gets at most 50 of 100 steps" in n for n in report.notes)


def test_doctor_does_not_cut_a_fresh_head_that_fits(trained, tmp_path):
    from labeldiag import doctor

    headless = clone(trained["checkpoint"], tmp_path / "headless")
    edit_weights(headless, lambda t: {k: v for k, v in t.items() if not k.startswith("classifier")})
    smoke = doctor(headless, trained["data"], max_examples=200, lr=5e-4).metrics["smoke_train"]
    assert smoke["fitted"] and "stopped_early" not in smoke, smoke
    assert smoke["fit_step"] > T.SMOKE_GIVE_UP_MIN_STEPS  # past the give-up rule's first look


def test_a_fit_is_settled_at_full_accuracy_with_the_loss_still_falling():
    from labeldiag.measure.training import fit_settled

    k = T.SMOKE_SETTLED_FIT_STEPS
    falling = [1.0 - 0.01 * i for i in range(k + 1)]
    assert "settled" in fit_settled(falling, [0.9] + [1.0] * k)
    assert fit_settled(falling, [1.0] * k + [0.94]) is None  # not held to the last step
    assert fit_settled(falling[::-1], [1.0] * (k + 1)) is None  # rising: not settled
