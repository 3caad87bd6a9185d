"""Number formatting and the headline's bounds, spreads and ratios (hand-computed cases)."""

from __future__ import annotations

import pytest

from tamperlab.report.formatting import fmt_bound, fmt_budget, fmt_delta, fmt_lr, fmt_ratio, fmt_scientific
from tamperlab.report.headline import (
    Cost,
    HeadlineRow,
    _milestones_text,
    _ratio,
    family_label,
    immunization_defenses,
    immunization_recognised,
    incoherent_arms,
    ratio_text,
)


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


def test_learning_rates_are_written_as_in_configs():
    assert [fmt_lr(x) for x in (3e-5, 1e-4, 2e-4, 1.5e-5, 0.01, None)] == [
        "3e-5",
        "1e-4",
        "2e-4",
        "1.5e-5",
        "0.01",
        "default",
    ]


def test_summary_ratios_keep_their_bound():
    assert ratio_text({"ratio": 10.18, "bound": "≥"}) == "≥ 10.2×"
    assert ratio_text({"ratio": 0.25, "bound": "≤"}) == "≤ 0.25×"
    assert ratio_text({"ratio": 1.5, "bound": "="}) == "1.5×"
    assert ratio_text({"ratio": None, "bound": None}) == "—" and ratio_text(None) == "—"
    # a worst case between one learning rate's lower bound and another's measured ratio says both
    assert ratio_text({"ratio": 1.29, "bound": "≥", "at_most": 2.61}) == "≥ 1.3×, ≤ 2.6×"


def _arm_row(arm, lr, status, flops, bound="=", relation="in-distribution"):
    unit = {"ratio": flops, "bound": bound, "defended": None, "undefended": None, "text": ""}
    return {
        "arm": arm,
        "attack": arm.split("/", 1)[1],
        "attack_name": "harmful-sft",
        "mode": "full",
        "learning_rate": lr,
        "kind": "harmful",
        "data_relation": relation,
        "attack_data": {"data": "self-completions", "prompts": "builtin:harmful"},
        "resistance": {"status": status, "counted": status != "incoherent", "flops": unit, "examples": unit},
    }


def _summary():
    worst = {"ratio": 1.5, "bound": "=", "arm": "rep/a#2", "text": "1.5×"}
    return {
        "version": 1,
        "criteria": {
            "incoherent_rate_above": 0.3,
            "benign_nll_ratio_above": 1.5,
            "units": ["flops", "examples"],
        },
        "undefended": {"model_id": "m-safe", "stability": {}, "incoherent": False, "incoherent_reasons": []},
        "defenses": [
            {
                "defense": "repnoise",
                "model_id": "m-rep",
                "incoherent": False,
                "incoherent_reasons": [],
                "attacks": [
                    _arm_row("rep/a#1", 3e-5, "lower_bound", 10.2, "≥"),
                    _arm_row("rep/a#2", 1e-4, "measured", 1.5),
                ],
                "worst_case": [
                    {
                        "family": "f",
                        "arms": ["rep/a#1", "rep/a#2"],
                        "flops": worst,
                        "examples": worst,
                        "text": "1.5×",
                    }
                ],
            },
            {
                "defense": "tar",
                "model_id": "m-tar",
                "incoherent": True,
                "incoherent_reasons": ["incoherent_rate 0.80 > 0.3"],
                "attacks": [_arm_row("tar/a#1", 3e-5, "incoherent", 12.0, "≥")],
                "worst_case": [
                    {
                        "family": "f",
                        "arms": ["tar/a#1"],
                        "flops": None,
                        "examples": None,
                        "text": "incoherent",
                    }
                ],
            },
        ],
    }


def test_immunization_summary_is_read_in_the_shape_the_pipeline_stores():
    summary = _summary()
    assert immunization_recognised(summary)
    rep, tar = immunization_defenses(summary)
    assert (rep.label, rep.incoherent, tar.label, tar.incoherent) == ("rep", False, "tar", True)
    worst = rep.worst[0]
    # The worst case over the attacker's learning rates is the 1e-4 arm's 1.5x, not the 3e-5 arm's >= 10.2x.
    assert worst.ratio("flops") == "1.5×" and worst.arm == "rep/a#2" and worst.learning_rates == [3e-5, 1e-4]
    assert worst.label == "harmful-sft · full · data self-completions · prompts builtin:harmful"
    assert worst.relation == "in-distribution"
    assert tar.worst[0].ratio("flops") == "incoherent" and tar.reasons == ["incoherent_rate 0.80 > 0.3"]
    assert rep.row("a#2")["learning_rate"] == 1e-4 and rep.row("nope") is None
    assert (
        family_label({"attack_name": "benign-sft", "mode": "lora", "attack_data": {}}) == "benign-sft · lora"
    )


def test_incoherent_defense_marks_every_arm_and_unknown_shapes_mark_none():
    assert incoherent_arms(_summary()) == {"tar/a#1"}
    # The shape the report once guessed ({defense: {attack: ...}}) is not what the pipeline stores.
    legacy = {"repnoise": {"harmful-sft-lora": {"incoherent": True}}}
    assert not immunization_recognised(legacy) and incoherent_arms(legacy) == set()
    assert immunization_defenses(None) == [] and incoherent_arms({"defenses": "x"}) == set()


def test_two_variants_of_one_defense_are_told_apart():
    summary = _summary()
    twin = dict(summary["defenses"][0], model_id="m-rep2")
    summary["defenses"].append(twin)
    labels = [d.label for d in immunization_defenses(summary)]
    assert labels == ["rep (m-rep)", "tar", "rep (m-rep2)"]


def test_an_over_refusing_defense_is_flagged_in_both_renderings():
    from tamperlab.report import page, terminal

    summary = _summary()
    summary["criteria"]["overrefusal_rise_above"] = 0.25
    summary["defenses"][0] |= {
        "over_refusing": True,
        "over_refusing_reasons": ["over-refusal 90% vs undefended 15%"],
    }
    rep, tar = immunization_defenses(summary)
    assert rep.over_refusing and not tar.over_refusing  # summaries from before the flag: not flagged
    html = page._overview_table([rep, tar], summary["criteria"])
    assert html.count("over-refuses</span>") == 2  # the column heading and the over-refusal row
    assert "over-refusal 90% vs undefended 15%" in html
    assert "flagged more than 25 points above undefended" in html
    assert "over-refuses" not in page._defense_heads([tar])
    text = terminal._coherence(rep).plain
    assert text.startswith("coherent") and "OVER-REFUSES" in text and "90% vs undefended 15%" in text
    assert "OVER-REFUSES" not in terminal._coherence(tar).plain


def test_the_milestones_say_whether_trajectories_end_at_their_break():
    ends = _milestones_text({"milestones": [0, 1, 2], "break_cost": {"stop_when_broken": True}})
    assert ends.startswith("steps 0, 1, 2;") and "ends at the milestone that breaks it" in ends
    older = _milestones_text(
        {"milestones": [0, 4], "break_cost": {"threshold": 0.5}}
    )  # stored before the option
    assert older == "steps 0, 4; trajectories are not ended at their break"
