"""Parsing fails loudly: each bad input gives one ConfigError naming the file and the place, and no site."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tamperlab.errors import ConfigError
from tamperlab.scorecard import build_scorecard
from tamperlab.store import Store

Mutation = Callable[[dict[str, Any], dict[str, Any]], None]


def _crit(rubric: dict[str, Any], cat: int, crit: int) -> dict[str, Any]:
    return rubric["categories"][cat]["criteria"][crit]


def _set(path: list[Any], value: Any, which: str = "evidence") -> Mutation:
    def mutate(rubric: dict[str, Any], evidence: dict[str, Any]) -> None:
        node = rubric if which == "rubric" else evidence
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def _delete(path: list[Any], which: str = "evidence") -> Mutation:
    def mutate(rubric: dict[str, Any], evidence: dict[str, Any]) -> None:
        node = rubric if which == "rubric" else evidence
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return mutate


S0 = ["subjects", 0]
S1 = ["subjects", 1]
A1 = ["categories", 0, "criteria", 0]

CASES: dict[str, tuple[Mutation, str]] = {
    "missing cell": (
        _delete([*S0, "cells", "b2"]),
        "evidence.yaml: subjects[0].cells: missing cell for criterion 'b2' (subject 's1')",
    ),
    "unknown criterion": (
        _set([*S1, "cells", "b3"], [{"state": "none", "note": "x"}]),
        "evidence.yaml: subjects[1].cells.b3: unknown criterion 'b3'; known: a1, a2, a3, b1, b2",
    ),
    "misspelt criterion": (
        _set([*S1, "cells", "b1x"], [{"state": "none", "note": "x"}]),
        "evidence.yaml: subjects[1].cells.b1x: unknown criterion 'b1x'; did you mean 'b1'?",
    ),
    "negative criterion weight": (
        _set(["categories", 1, "criteria", 0, "weight"], -1, "rubric"),
        "rubric.yaml: categories[1].criteria[0].weight: Input should be greater than or equal to 0",
    ),
    "negative category weight": (
        _set(["categories", 0, "weight"], -0.5, "rubric"),
        "rubric.yaml: categories[0].weight: Input should be greater than or equal to 0",
    ),
    "evidence level out of range": (
        _set([*S0, "cells", "b2", 0, "level"], 5),
        "evidence.yaml: subjects[0].cells.b2[0].level: level 5 is out of range 0..2",
    ),
    "negative evidence level": (
        _set([*S0, "cells", "b2", 0, "level"], -1),
        "evidence.yaml: subjects[0].cells.b2[0].level: level -1 is out of range 0..2",
    ),
    "evidence level above what its state earns": (
        _set([*S0, "cells", "b1", 0, "level"], 2),
        "evidence.yaml: subjects[0].cells.b1[0].level: level 2 is above what claimed evidence can earn",
    ),
    "grade level out of range": (
        _set([*A1, "award", 0, "grades", 0, "level"], 4, "rubric"),
        "rubric.yaml: categories[0].criteria[0].award[0].grades[0].level: level 4 is out of range 0..3",
    ),
    "route max level out of range": (
        _set(["categories", 1, "criteria", 1, "award", 0, "max_level"], 3, "rubric"),
        "rubric.yaml: categories[1].criteria[1].award[0].max_level: level 3 is out of range 0..2",
    ),
    "run not in store (subject)": (
        _set([*S0, "run"], "run-doesnotexist"),
        "evidence.yaml: subjects[0].run: no run 'run-doesnotexist' in",
    ),
    "run not in store (item)": (
        _set([*S1, "cells", "a1", 0, "run"], "run-zzz"),
        "evidence.yaml: subjects[1].cells.a1[0].run: no run 'run-zzz' in",
    ),
    "variant not in run": (
        _set([*S1, "variant"], "sheild"),
        "evidence.yaml: subjects[1].cells.a1[0]: measure 'min_break_cost' cannot be computed: run "
        "run-aaaa1111bbbb2222 has no arms for variant 'sheild' (variants attacked: shield, undefended)",
    ),
    "claim outranks a measurement": (
        _set([*A1, "award", 1, "max_level"], 1, "rubric"),
        "rubric.yaml: categories[0].criteria[0].award[1].max_level: a claim (up to level 1) would outrank a "
        "failed measurement (level 0)",
    ),
    "commitment without what happens past the threshold": (
        _delete([*S1, "cells", "b1", 0, "consequence"]),
        "evidence.yaml: subjects[1].cells.b1[0].consequence: required for route 'stop-threshold'",
    ),
    "unknown measure": (
        _set([*A1, "award", 0, "measure"], "min_brek_cost", "rubric"),
        "rubric.yaml: categories[0].criteria[0].award[0].measure: unknown measure 'min_brek_cost'; "
        "did you mean min_break_cost?",
    ),
    "bad measure argument": (
        _set([*A1, "award", 0, "args"], {"unit": "joules"}, "rubric"),
        "rubric.yaml: categories[0].criteria[0].award[0].measure: measure 'min_break_cost': args.unit:",
    ),
    "misspelt field": (
        _set([*A1, "wieght"], 2, "rubric"),
        "rubric.yaml: categories[0].criteria[0].wieght: Extra inputs are not permitted",
    ),
    "weight without a reason": (
        _delete([*A1, "reason"], "rubric"),
        "rubric.yaml: categories[0].criteria[0].reason: Field required",
    ),
    "one written level": (
        _set(["categories", 0, "criteria", 2, "levels"], ["only"], "rubric"),
        "rubric.yaml: categories[0].criteria[2].levels: List should have at least 2 items",
    ),
    "unknown evidence state": (
        _set([*S0, "cells", "b1", 0, "state"], "rumoured"),
        "evidence.yaml: subjects[0].cells.b1[0].state: "
        "Input should be 'measured', 'committed', 'claimed', 'none' or 'not-assessed'",
    ),
    "state the criterion does not accept": (
        _set([*S0, "cells", "a2"], [{"state": "claimed", "level": 0, "quote": "q", "date": "2025-01-01"}]),
        "evidence.yaml: subjects[0].cells.a2[0].state: criterion 'a2' awards nothing for claimed evidence",
    ),
    "ambiguous route": (
        _delete([*S1, "cells", "b1", 0, "route"]),
        "evidence.yaml: subjects[1].cells.b1[0].route: criterion 'b1' has several committed routes",
    ),
    "measured item given a level": (
        _set([*S0, "cells", "a2", 0, "level"], 2),
        "evidence.yaml: subjects[0].cells.a2[0].level: a measured item's level comes from its figure",
    ),
    "measured item without a run": (
        _delete([*S0, "run"]),
        "evidence.yaml: subjects[0].cells.a1[0].run: a measured item needs a run",
    ),
    "evidence for another rubric": (
        _set(["rubric"], "other"),
        "evidence.yaml: rubric: this evidence is for rubric 'other', not 'small'",
    ),
    "duplicate criterion id": (
        _set(["categories", 1, "criteria", 1, "id"], "a1", "rubric"),
        "rubric.yaml: categories[1].criteria[1].id: duplicate criterion id 'a1'",
    ),
    "grades in the wrong order": (
        _set([*A1, "award", 0, "grades", 0, "threshold"], 1e9, "rubric"),
        "rubric.yaml: categories[0].criteria[0].award[0].grades: grades must have distinct levels",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_clear_error_and_no_site(small, case):
    mutate, expected = CASES[case]
    mutate(small.rubric, small.evidence)
    paths = small.write()
    with pytest.raises(ConfigError) as info:
        build_scorecard(*paths, small.store, small.out)
    message = str(info.value)
    assert message.startswith(expected), message
    assert "\n" not in message
    assert not small.out.exists()


@pytest.mark.parametrize(
    ("which", "text", "expected"),
    [
        ("rubric", "id: small\ncategories: [unclosed\n", "rubric.yaml: line 3, column 1: malformed YAML"),
        (
            "evidence",
            "rubric: small\n  date: 2025-01-01\n",
            "evidence.yaml: line 2, column 7: malformed YAML",
        ),
        ("evidence", "- a list\n", "evidence.yaml: (top level): must be a mapping, the file is a list"),
        ("rubric", "", "rubric.yaml: (top level): must be a mapping, the file is empty"),
    ],
)
def test_malformed_yaml_names_the_line(small, which, text, expected):
    rubric, evidence = small.write()
    (rubric if which == "rubric" else evidence).write_text(text)
    with pytest.raises(ConfigError) as info:
        build_scorecard(rubric, evidence, small.store, small.out)
    assert str(info.value).startswith(expected), str(info.value)
    assert not small.out.exists()


def test_failed_build_leaves_the_previous_site_untouched(small):
    paths = small.write()
    build_scorecard(*paths, small.store, small.out)
    before = {p.name: p.read_bytes() for p in small.out.iterdir()}
    del small.evidence["subjects"][0]["cells"]["b2"]
    with pytest.raises(ConfigError, match="missing cell"):
        build_scorecard(*small.write(), small.store, small.out)
    assert {p.name: p.read_bytes() for p in small.out.iterdir()} == before


def test_run_that_is_not_complete_is_an_error(small):
    store = Store(small.store)
    store.start_run("run-unfinished", "run", {"x": 1})
    store.close()
    small.evidence["subjects"][0]["run"] = "run-unfinished"
    with pytest.raises(ConfigError, match=r"subjects\[0\]\.run: run run-unfinished is running, not complete"):
        build_scorecard(*small.write(), small.store, small.out)
    assert not small.out.exists()


def test_measured_evidence_without_a_store_is_an_error(small, tmp_path):
    with pytest.raises(ConfigError, match=r"subjects\[0\]\.cells\.a1\[0\]: measured evidence needs a store"):
        build_scorecard(*small.write(), tmp_path / "missing.sqlite", small.out)
    assert not small.out.exists()
