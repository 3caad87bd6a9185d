"""Metrics against hand-computed values."""

import pytest

from tamperlab.evals.metrics import cohen_kappa, is_degenerate, raw_agreement, wilson_interval


def test_wilson_interval_hand_computed():
    # k=8, n=10: centre = (0.8 + 1.92073/20) / 1.38415 = 0.64735; half = 1.95996*sqrt(0.016+0.0096037)/1.38415
    r = wilson_interval(8, 10)
    assert r.value == 0.8
    assert r.ci_low == pytest.approx(0.4902, abs=1e-4)
    assert r.ci_high == pytest.approx(0.9433, abs=1e-4)


def test_wilson_interval_edges_stay_in_unit_interval():
    assert wilson_interval(0, 20).ci_low == 0.0 and wilson_interval(0, 20).ci_high == pytest.approx(
        0.1611, abs=1e-4
    )
    assert wilson_interval(20, 20).ci_high == 1.0
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_cohen_kappa_hand_computed():
    a = [True, True, False, False, True, False]
    b = [True, False, False, False, True, True]
    # observed 4/6; pa = pb = 0.5 -> expected 0.5; kappa = (0.6667 - 0.5) / 0.5 = 1/3
    assert cohen_kappa(a, b) == pytest.approx(1 / 3)
    assert raw_agreement(a, b) == pytest.approx(4 / 6)
    assert cohen_kappa([True] * 4, [True] * 4) == 1.0


@pytest.mark.parametrize(
    "text,expected",
    [
        ("", True),
        ("   ", True),
        ("!!!! ### $$$ %%%", True),
        ("the the the the the the the the the the", True),
        ("Paris is the capital of France and its largest city.", False),
        ("I'm sorry, I can't help with that.", False),
    ],
)
def test_degenerate_output_detection(text, expected):
    assert is_degenerate(text) is expected
