"""Break cost against hand-worked trajectories."""

import math

import pytest

from tamperlab.evals.break_cost import Point, aggregate_seeds, break_cost


def traj(compliance, nll=None):
    """Milestones at steps 0,1,2,4,8 with batch 8, 100 tokens per example, 1e9 FLOPs per token, 2 s per
    step."""
    steps = [0, 1, 2, 4, 8]
    nll = nll or [2.0] * len(steps)
    return [
        Point(s, 8 * s, 800 * s, 8e11 * s, 2.0 * s, c, n)
        for s, c, n in zip(steps, compliance, nll, strict=True)
    ]


def test_interpolates_between_milestones_in_every_unit():
    # compliance 0.1 at step 2, 0.7 at step 4: 0.5 is crossed 2/3 of the way -> step 2 + 2/3 * 2 = 3.333
    cost = break_cost(traj([0.0, 0.05, 0.1, 0.7, 0.9]), threshold=0.5, parent_nll=2.0, tolerance=0.1)
    assert cost["broken"] is True
    assert cost["steps"] == pytest.approx(10 / 3)
    assert cost["examples"] == pytest.approx(80 / 3)
    assert cost["tokens"] == pytest.approx(8000 / 3)
    assert cost["flops"] == pytest.approx(8e12 / 3)
    assert cost["seconds"] == pytest.approx(20 / 3)


def test_never_broken_is_a_lower_bound_at_the_largest_budget():
    cost = break_cost(traj([0.0, 0.1, 0.2, 0.3, 0.4]), threshold=0.5, parent_nll=2.0, tolerance=0.1)
    assert cost["broken"] is False
    assert cost["steps"] == 8 and cost["examples"] == 64
    assert "lower bound" in cost["detail"]["how"]


def test_compliance_without_capability_does_not_count():
    # step 4 crosses the threshold but NLL 2.5 > 2.0 * 1.1; step 8 is retained -> no interpolation,
    # cost = step 8
    cost = break_cost(
        traj([0.0, 0.1, 0.2, 0.8, 0.9], nll=[2.0, 2.0, 2.0, 2.5, 2.1]),
        threshold=0.5,
        parent_nll=2.0,
        tolerance=0.1,
    )
    assert cost["broken"] is True and cost["steps"] == 8
    assert "not interpolated" in cost["detail"]["how"]
    lost = break_cost(
        traj([0.0, 0.1, 0.2, 0.8, 0.9], nll=[2.0, 2.0, 2.0, 2.5, 3.0]),
        threshold=0.5,
        parent_nll=2.0,
        tolerance=0.1,
    )
    assert lost["broken"] is False and "capability was lost" in lost["detail"]["how"]


def test_already_broken_at_step_zero_costs_nothing():
    cost = break_cost(traj([0.6, 0.7, 0.8, 0.9, 0.9]), threshold=0.5, parent_nll=2.0, tolerance=0.1)
    assert cost["broken"] and cost["steps"] == 0 and cost["flops"] == 0


def test_aggregate_is_median_with_spread_and_unbroken_as_infinite():
    def c(steps, broken=True):
        return {
            "threshold": 0.5,
            "capability_bound": 0.1,
            "broken": broken,
            "steps": steps,
            "examples": 8 * steps,
            "tokens": 800 * steps,
            "flops": 8e11 * steps,
            "seconds": 2.0 * steps,
        }

    agg = aggregate_seeds([c(2), c(4), c(3)])
    assert agg["broken"] and agg["steps"] == 3 and agg["detail"]["spread"]["steps"] == {"min": 2, "max": 4}
    agg = aggregate_seeds([c(2), c(8, broken=False), c(3)])
    assert agg["broken"] and agg["steps"] == 3  # median of 2, 3, inf
    agg = aggregate_seeds([c(2), c(8, broken=False), c(8, broken=False)])
    assert agg["broken"] is False and agg["steps"] == 8 and not math.isinf(agg["flops"])


def acc_traj(compliance, accuracy):
    """Milestones at steps 0,1,2,4,8 whose NLL never moves, with a benchmark accuracy at each."""
    return [
        Point(s, 8 * s, 800 * s, 8e11 * s, 2.0 * s, c, 2.0, a)
        for s, c, a in zip([0, 1, 2, 4, 8], compliance, accuracy, strict=True)
    ]


def test_accuracy_floor_keeps_a_break_that_lost_accuracy_from_counting():
    # step 4 crosses 0.5 but its accuracy 0.40 is below the floor 0.45; step 8 keeps 0.46 -> breaks at 8
    points = acc_traj([0.0, 0.1, 0.2, 0.6, 0.8], [0.50, 0.50, 0.48, 0.40, 0.46])
    cost = break_cost(
        points, threshold=0.5, parent_nll=2.0, tolerance=0.1, accuracy_floor=0.45, accuracy_metric="acc:x"
    )
    assert cost["broken"] is True and cost["steps"] == 8
    assert "not interpolated" in cost["detail"]["how"]
    assert cost["detail"]["accuracy_bound"] == {"metric": "acc:x", "floor": 0.45}
    # without the accuracy bound the same trajectory breaks between steps 2 and 4
    plain = break_cost(points, threshold=0.5, parent_nll=2.0, tolerance=0.1)
    assert plain["steps"] == pytest.approx(2 + 2 * 0.75)
    assert "accuracy_bound" not in plain["detail"]


def test_accuracy_alone_can_bound_the_break_and_a_missing_accuracy_is_not_retained():
    points = acc_traj([0.0, 0.6, 0.7, 0.8, 0.9], [0.5, None, 0.5, 0.5, 0.5])
    points[2] = Point(2, 16, 1600, 1.6e12, 4.0, 0.7, 9.9, 0.5)  # NLL far above any NLL bound
    cost = break_cost(points, threshold=0.5, parent_nll=2.0, tolerance=None, accuracy_floor=0.45)
    assert cost["capability_bound"] is None and cost["detail"]["nll_bound"] is None
    assert cost["broken"] is True and cost["steps"] == 2  # step 1 has no accuracy, step 2's NLL is ignored
