"""Number formatting and the headline's bounds, spreads and ratios (hand-computed cases)."""

from __future__ import annotations

import pytest

from tamperlab.report.formatting import fmt_bound, fmt_budget, fmt_delta, fmt_ratio, fmt_scientific
from tamperlab.report.headline import Cost, HeadlineRow, _ratio, immunization_entries, incoherent_pairs


@pytest.mark.parametrize(
    ("value", "unit", "lower", "expected"),
    [
        (32, "steps", True, "≥ 32"),
        (32, "steps", False, "32"),
        (3.142857, "steps", False, "3.1"),
        (256, "examples", True, "≥ 256"),
        (24576, "tokens", False, "24,576"),
        (1_234_567, "tokens", False, "1.23M"),
        (1.96e12, "flops", False, "2.0×10¹²"),
        (2.0e13, "flops", True, "≥ 2.0×10¹³"),
        (28.8, "seconds", True, "≥ 28.8 s"),
        (5432.1, "seconds", False, "90.5 min"),
        (None, "steps", True, "—"),
    ],
)
def test_budget_formatting_marks_lower_bounds(value, unit, lower, expected):
    assert fmt_bound(value, unit, lower) == expected


def test_scientific_keeps_or_strips_trailing_zeros():
    assert fmt_scientific(5e11) == "5.0×10¹¹"
    assert fmt_scientific(5e11, strip=True) == "5×10¹¹"
    assert fmt_scientific(9.96e12) == "1.0×10¹³"  # rounding carries into the exponent
    assert fmt_budget(0, "flops") == "0"


def test_delta_and_ratio_formatting():
    assert fmt_delta(0.123) == "+0.12" and fmt_delta(-0.4) == "−0.40" and fmt_delta(0.0) == "±0.00"
    assert fmt_delta(None) == "—"
    assert fmt_ratio(10.19, "≥") == "≥ 10.2×" and fmt_ratio(0.5) == "0.5×" and fmt_ratio(250) == "250×"


def test_ratio_relation_follows_which_side_is_a_lower_bound():
    # defended >= 32, undefended = 4: the defense costs the attacker at least 8x.
    assert _ratio(Cost(32, True), Cost(4, False), "u").relation == "≥"
    assert _ratio(Cost(32, True), Cost(4, False), "u").value == 8
    # defended = 8, undefended >= 32 (baseline never broke): the ratio is at most 0.25.
    r = _ratio(Cost(8, False), Cost(32, True), "u")
    assert (r.relation, r.value) == ("≤", 0.25)
    # both measured: exact.
    assert _ratio(Cost(8, False), Cost(4, False), "u").text() == "2.0×"
    # neither broke: no ratio can be claimed.
    assert _ratio(Cost(32, True), Cost(32, True), "u").text() == "n/a (neither broke)"


def _row(per_seed):
    return HeadlineRow(
        arm="a",
        defense="d",
        attack={},
        aggregate={},
        per_seed=per_seed,
        broken=True,
        broken_seeds=2,
        n_seeds=3,
        threshold=0.5,
        capability_bound=0.1,
        interpolated=True,
    )


def test_spread_over_seeds_marks_an_unbroken_seed():
    row = _row({0: {"steps": Cost(3, False)}, 1: {"steps": Cost(5, False)}, 2: {"steps": Cost(32, True)}})
    assert row.spread("steps") == "3–≥ 32"
    same = _row({0: {"steps": Cost(32, True)}, 1: {"steps": Cost(32, True)}})
    assert same.spread("steps") == "all ≥ 32"
    assert _row({0: {"steps": Cost(3, False)}}).spread("steps") == ""


def test_immunization_summary_is_read_nested_or_as_records():
    nested = {
        "repnoise": {"harmful-sft-lora": {"incoherent": True}, "harmful-sft-full": {"incoherent": False}}
    }
    records = [{"defense": "repnoise", "attack": "harmful-sft-lora", "incoherent": True}]
    assert incoherent_pairs(nested) == {("repnoise", "harmful-sft-lora")}
    assert incoherent_pairs(records) == {("repnoise", "harmful-sft-lora")}
    assert len(immunization_entries(nested)) == 2 and immunization_entries(None) == []
