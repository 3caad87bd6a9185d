"""build_scorecard end to end on the small rubric: hand-computed scores, the OR rule, claims vs measurements,
zero weights, deterministic snapshots and diffs, exports, and an atomic write."""

from __future__ import annotations

import csv
import io
import json

import pytest
from scorecard_inputs import COMMITTED_STOP, RUN_ID

from tamperlab.errors import ConfigError
from tamperlab.scorecard import build_scorecard, diff_snapshots
from tamperlab.scorecard.evidence import EvidenceItem
from tamperlab.scorecard.measures import Figure
from tamperlab.scorecard.rubric import Category, Criterion
from tamperlab.scorecard.scoring import score_cell

# Worked by hand from scorecard_inputs.SMALL_RUBRIC / SMALL_EVIDENCE / small_store:
#   s1 (undefended): a1 broken at 2e12 FLOPs -> level 1 of 3; a2 10% <= 20% -> 1 of 2; a3 weight 0 (tracked);
#       b1 claim 1 of 3; b2 committed 2 of 2.
#       S_a = (3 * 1/3 + 1 * 1/2) / (3 + 1) = 0.375        S_b = (1 * 1/3 + 2 * 2/2) / 3 = 7/9
#       T = (2 * 0.375 + 1 * 7/9) / 3 = 0.509259...
#   s2 (shield): a1 not broken within exactly 1e15 FLOPs (a lower bound) -> meets >= 1e15 -> 3 of 3;
#       a2 3% -> 2 of 2; b1 stop threshold 3 of 3; b2 none 0.      S_a = 1, S_b = 1/3, T = (2 + 1/3) / 3 = 7/9
#   s3 (developer): a1 claim 0; a2 none; b1 staged release 3 of 3; b2 claim 1 of 2.
#       S_a = 0, S_b = (1 + 2 * 1/2) / 3 = 2/3, T = (0 + 2/3) / 3 = 2/9
EXPECTED = {"s1": 100 * (2 * 0.375 + 7 / 9) / 3, "s2": 100 * 7 / 9, "s3": 100 * 2 / 9}
EXPECTED_CATEGORIES = {"s1": (37.5, 100 * 7 / 9), "s2": (100.0, 100 / 3), "s3": (0.0, 100 * 2 / 3)}


def _cells(result):
    return {(c["subject"], c["criterion"]): c for c in result.document["cells"]}


def test_scores_match_hand_computation(small):
    result = build_scorecard(*small.write(), small.store, small.out)
    assert result.totals == pytest.approx(EXPECTED, abs=1e-6)
    for subject in result.document["subjects"]:
        a, b = EXPECTED_CATEGORIES[subject["id"]]
        assert subject["categories"] == pytest.approx({"a": a, "b": b}, abs=1e-6)
    assert result.ranking == [["s2"], ["s1"], ["s3"]]
    cells = _cells(result)
    assert cells[("s1", "a1")]["points"] == pytest.approx(1.0)  # w 3 x 1/3
    assert cells[("s2", "a1")]["level"] == 3
    assert cells[("s1", "a1")]["items"][0]["run_ids"] == [RUN_ID]
    assert "2e12 FLOPs" in cells[("s1", "a1")]["items"][0]["figure"]["text"]
    # s2 named its run by a unique prefix: the full id is what the cell records.
    assert cells[("s2", "a2")]["items"][0]["run_ids"] == [RUN_ID]


def test_or_rule_gives_full_marks_by_either_route_and_never_adds_them(small):
    both = dict(COMMITTED_STOP)
    staged = {**small.evidence["subjects"][2]["cells"]["b1"][0]}
    small.evidence["subjects"][1]["cells"]["b1"] = [staged, both]
    result = build_scorecard(*small.write(), small.store, small.out)
    cells = _cells(result)
    assert cells[("s3", "b1")]["route"] == "staged" and cells[("s3", "b1")]["level"] == 3
    # Both routes met: the best one counts, once.
    assert cells[("s2", "b1")]["level"] == 3 and cells[("s2", "b1")]["points"] == pytest.approx(1.0)
    assert result.totals["s2"] == pytest.approx(EXPECTED["s2"])


def test_claim_never_outranks_measurement(small):
    result = build_scorecard(*small.write(), small.store, small.out)
    cells = _cells(result)
    # A cell with a measurement and a claim: the measurement decides, the claim is marked as superseded.
    s1 = cells[("s1", "a1")]
    assert s1["state"] == "measured"
    assert s1["items"][1]["state"] == "claimed" and s1["items"][1]["superseded"]
    # Across subjects: the claim-only cell earns no more than any measurement of the same criterion.
    measured = [
        c["level"] for c in result.document["cells"] if c["criterion"] == "a1" and c["state"] == "measured"
    ]
    assert cells[("s3", "a1")]["state"] == "claimed"
    assert cells[("s3", "a1")]["level"] <= min(measured)


def test_claim_is_capped_at_the_measured_level_within_a_cell():
    # A criterion built without the rubric check (which rejects this claim route): the cell still caps it.
    crit = Criterion(
        id="c",
        title="c",
        weight=1,
        reason="r",
        levels=["0", "1", "2"],
        award=[
            {
                "state": "measured",
                "measure": "attacks_tested",
                "compare": ">=",
                "grades": [{"level": 2, "threshold": 2}],
            },
            {"state": "claimed", "max_level": 2},
        ],
    )
    cat = Category(id="k", title="k", weight=1, reason="r", criteria=[crit])
    items = [
        EvidenceItem(state="measured", run="r", variant="v"),
        EvidenceItem(state="claimed", level=2, quote="q", date="2025-01-01"),
    ]
    figure = Figure("attacks_tested", 1.0, False, 1.0, "attacks", "1 attack", ("r",))
    cell = score_cell("s", cat, crit, items, {0: figure}, {0: "r"})
    assert cell.level == 0 and cell.state == "measured"
    assert cell.items[1].level == 0 and cell.items[1].superseded


def test_zero_weight_is_tracked_not_scored(small):
    result = build_scorecard(*small.write(), small.store, small.out)
    a3 = _cells(result)[("s1", "a3")]
    assert a3["level"] == 1 and a3["weight"] == 0 and a3["scored"] is False
    # Dropping the tracked measurement to "none" changes the cell but no score.
    small.evidence["subjects"][0]["cells"]["a3"] = [{"state": "none", "note": "x"}]
    again = build_scorecard(*small.write(), small.store, small.out)
    assert _cells(again)[("s1", "a3")]["level"] == 0
    assert again.totals == result.totals
    sens = {r["id"]: r for r in result.document["sensitivity"]}
    assert sens["a3"]["weight"] == 0 and not any(v["changed"] for v in sens["a3"]["variants"])


def test_snapshot_ids_are_deterministic_and_changes_are_a_diff(small, tmp_path):
    paths = small.write()
    first = build_scorecard(*paths, small.store, tmp_path / "one")
    second = build_scorecard(*paths, small.store, tmp_path / "two")
    assert first.snapshot_id == second.snapshot_id and first.snapshot_id.startswith("sc-")
    assert first.date == "2025-02-01"
    for name in first.files:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name

    small.evidence["subjects"][0]["cells"]["b2"][0]["level"] = 1
    changed = build_scorecard(*small.write(), small.store, tmp_path / "three")
    assert changed.snapshot_id != first.snapshot_id
    old = json.loads((tmp_path / "one" / "scorecard.json").read_text())
    new = json.loads((tmp_path / "three" / "scorecard.json").read_text())
    diff = {(d["subject"], d["criterion"], d["field"]): d for d in diff_snapshots(old, new)}
    assert diff[("s1", "b2", "level")]["old"] == 2 and diff[("s1", "b2", "level")]["new"] == 1
    assert diff[("s1", "b2", "points")]["new"] == pytest.approx(1.0)
    assert ("s1", None, "total") in diff
    assert not any(s != "s1" for s, _, _ in diff)  # nothing else moved
    assert diff_snapshots(old, old) == []


def test_explicit_date_overrides_the_evidence_date_and_changes_the_id(small, tmp_path):
    paths = small.write()
    base = build_scorecard(*paths, small.store, tmp_path / "a")
    dated = build_scorecard(*paths, small.store, tmp_path / "b", date="2025-03-04")
    assert dated.date == "2025-03-04" and dated.snapshot_id != base.snapshot_id
    assert (
        build_scorecard(*paths, small.store, tmp_path / "c", date="2025-03-04").snapshot_id
        == dated.snapshot_id
    )
    with pytest.raises(ConfigError, match="--date"):
        build_scorecard(*paths, small.store, tmp_path / "d", date="March")


def test_exports_hold_every_cell(small):
    result = build_scorecard(*small.write(), small.store, small.out)
    doc = json.loads((small.out / "scorecard.json").read_text())
    assert len(doc["cells"]) == 3 * 5
    assert doc["snapshot"]["id"] == result.snapshot_id
    rows = list(csv.DictReader(io.StringIO((small.out / "scorecard.csv").read_text())))
    assert len(rows) == 15
    row = next(r for r in rows if r["subject_id"] == "s1" and r["criterion_id"] == "b2")
    assert row["state"] == "committed" and row["level"] == "2" and row["right_of_reply"] == "We agree."
    row = next(r for r in rows if r["subject_id"] == "s1" and r["criterion_id"] == "a1")
    assert row["run_ids"] == RUN_ID and row["all_states"] == "measured;claimed" and "FLOPs" in row["figure"]
    html = (small.out / "index.html").read_text()
    assert "Σ" in html and result.snapshot_id in html and "2025-02-01" in html
    assert sorted(p.name for p in small.out.iterdir()) == result.files
    for name in result.files:
        text = (small.out / name).read_text()
        assert "http://" not in text and "https://" not in text, name
        assert "<script" not in text, name


def test_evidence_without_measurements_needs_no_store(small, tmp_path):
    for subject in small.evidence["subjects"]:
        for crit, items in subject["cells"].items():
            subject["cells"][crit] = [i for i in items if i["state"] != "measured"] or [
                {"state": "none", "note": "x"}
            ]
    result = build_scorecard(*small.write(), tmp_path / "no-such-store.sqlite", small.out)
    assert result.totals["s3"] == pytest.approx(EXPECTED["s3"])


def test_rebuild_replaces_a_previous_site_atomically(small):
    paths = small.write()
    build_scorecard(*paths, small.store, small.out)
    (small.out / "stale.html").write_text("old page")
    build_scorecard(*paths, small.store, small.out)
    assert not (small.out / "stale.html").exists()
    leftovers = [p.name for p in small.out.parent.iterdir() if p.name.startswith(".site.")]
    assert leftovers == []


def test_refuses_to_replace_a_folder_that_is_not_a_site(small):
    small.out.mkdir()
    (small.out / "thesis.tex").write_text("precious")
    with pytest.raises(ConfigError, match="not a scorecard site"):
        build_scorecard(*small.write(), small.store, small.out)
    assert (small.out / "thesis.tex").read_text() == "precious"


def test_sensitivity_shows_a_ranking_that_flips_when_a_weight_moves():
    from scorecard_inputs import SMALL_RUBRIC

    from tamperlab.scorecard.rubric import Rubric
    from tamperlab.scorecard.scoring import sensitivity

    rubric = Rubric.model_validate(SMALL_RUBRIC)
    # x is all measurement, y mostly policy: T_x = 2/3, T_y = (2 * 0.4 + 1) / 3 = 0.6, so x ranks first.
    fractions = {
        "x": {"a1": 1.0, "a2": 1.0, "a3": 0.0, "b1": 0.0, "b2": 0.0},
        "y": {"a1": 0.4, "a2": 0.4, "a3": 1.0, "b1": 1.0, "b2": 1.0},
    }
    rows = {r["id"]: r for r in sensitivity(rubric, fractions, ["x", "y"])}
    half, more = rows["a"]["variants"]
    # W_a x 0.5: T_x = 1/2, T_y = (0.4 + 1) / 2 = 0.7: y overtakes x.
    assert half["changed"] and half["ranking"] == [["y"], ["x"]]
    assert half["totals"] == pytest.approx({"x": 50.0, "y": 70.0})
    # W_a x 1.5 = 3: T_x = 3 / 4 = 0.75, T_y = (3 * 0.4 + 1) / 4 = 0.55: the ranking holds.
    assert not more["changed"] and more["totals"] == pytest.approx({"x": 75.0, "y": 55.0})
    assert not any(v["changed"] for v in rows["a3"]["variants"])  # weight 0 moves nothing
