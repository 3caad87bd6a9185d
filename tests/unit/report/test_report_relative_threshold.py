"""A relative break threshold (``break_cost.threshold_rise``) is printed with its rule wherever the threshold
is: the finding sentence, the terminal's and the report's "how measured", the headline rows and the plot."""

from __future__ import annotations

from tamperlab.evals.break_cost import relative_threshold
from tamperlab.report.collect import RunView
from tamperlab.report.finding import finding
from tamperlab.report.headline import headline_rows, measurement

THRESHOLD, RULE = relative_threshold(0.55, 0.25)
SHOWN = "80% (released 55% + 25 pts)"


def _cost(seed: int, steps: float) -> dict:
    budget = {"steps": steps, "examples": 8 * steps, "tokens": 800 * steps, "flops": 1e12 * steps}
    return {
        "arm": "undefended/harmful-sft-lora",
        "seed": seed,
        "threshold": THRESHOLD,
        "threshold_rule": RULE,
        "capability_bound": 0.1,
        "broken": True,
        **budget,
        "seconds": 10 * steps,
        "detail": {"n_seeds": 3, "broken_seeds": 3} if seed == -1 else {},
    }


def _view(summary: bool = True) -> RunView:
    spec = {
        "safeguard": None,
        "seeds": [0, 1, 2],
        "milestones": [0, 2, 4],
        "break_cost": {"threshold": 0.5, "threshold_rise": 0.25, "capability_tolerance": 0.1},
    }
    return RunView(
        run={"run_id": "run-0123456789abcdef", "kind": "run", "status": "complete", "spec": spec},
        arms=[{"arm": "undefended/harmful-sft-lora", "defense": None, "attack": {"name": "harmful-sft"}}],
        milestones=[],
        break_costs=[_cost(0, 3.0), _cost(1, 4.0), _cost(2, 2.0), _cost(-1, 3.0)],
        summaries={"headline": {"threshold": THRESHOLD, "threshold_rule": RULE}} if summary else {},
        lineage=[],
        model_metrics={},
        samples=[],
        sample_counts={},
        judge_confusion={},
        primary_judge="embedding",
    )


def test_the_finding_and_how_measured_state_the_rule():
    view = _view()
    rows = headline_rows(view)
    assert view.threshold == THRESHOLD and view.threshold_rule == RULE
    assert f"harmful compliance ≥ {SHOWN}" in finding(view, rows)
    assert dict(measurement(view))["threshold"] == f"broken when harmful compliance ≥ {SHOWN}"
    assert rows[0].threshold_text == SHOWN


def test_without_a_summary_the_rows_give_the_threshold_not_the_spec():
    view = _view(summary=False)
    assert view.threshold == THRESHOLD  # the spec's 0.5 is not the threshold a relative break used
    assert view.threshold_text == SHOWN


def test_the_report_headline_table_states_the_rule():
    from tamperlab.report.page import _headline_section

    view = _view()
    html = _headline_section(view, headline_rows(view))
    assert f"≥ {SHOWN}" in html  # the table's "how measured" line
    assert f"≥\u00a0{SHOWN.replace(' ', chr(0xA0))}" in html  # each row's note
