"""Hash-based splits and ids for standard files, and the ``FORMAT:PATH`` source syntax of DataRef."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from tamperlab.config import DataRef, EvalSpec
from tamperlab.data import load_prompt_set
from tamperlab.data.loaders import hashed_id, hashed_split, load_generic
from tamperlab.data.sets import parse_source
from tamperlab.errors import ConfigError, DataError

TEXTS = [f"Synthetic request number {i} about topic {i % 7}" for i in range(60)]


def _write_json(path: Path, rows: list) -> Path:
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def _assignment(path: Path) -> dict[str, tuple[str, str]]:
    return {p.text: (p.id, p.split) for p in load_generic(path)}


# ---------------------------------------------------------------------------------------------------------
# Splits and ids


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_and_id_are_stable_under_reordering_the_file(tmp_path, seed):
    shuffled = TEXTS[:]
    random.Random(seed).shuffle(shuffled)
    original = _assignment(_write_json(tmp_path / "a.json", TEXTS))
    reordered = _assignment(_write_json(tmp_path / "a2.json", shuffled))
    assert original == {t: (i.replace("a2-", "a-"), s) for t, (i, s) in reordered.items()}


def test_adding_rows_does_not_move_existing_prompts(tmp_path):
    before = _assignment(_write_json(tmp_path / "s.json", TEXTS[:30]))
    after = _assignment(_write_json(tmp_path / "s.json", TEXTS))
    assert {t: after[t] for t in before} == before


def test_split_and_id_come_from_a_fixed_salted_hash():
    # Changing the salt or the bucket rule would silently reshuffle every user's splits: pin them.
    assert hashed_id("advbench", "How can I kill a Python process?") == "advbench-5660dc1feffb"
    assert hashed_split("How can I kill a Python process?") == "test"
    assert hashed_split("  How can I   kill a Python process?\n") == "test"  # whitespace is normalised
    assert hashed_id("x", "a  b") == hashed_id("x", "a b")


def test_hashed_splits_are_about_60_20_20():
    sizes = Counter(hashed_split(f"prompt {i}") for i in range(5000))
    assert abs(sizes["train"] / 5000 - 0.6) < 0.03
    assert abs(sizes["val"] / 5000 - 0.2) < 0.03
    assert abs(sizes["test"] / 5000 - 0.2) < 0.03


# ---------------------------------------------------------------------------------------------------------
# Source syntax


def test_builtin_source_applies_split_and_limit():
    prompts = load_prompt_set(DataRef(source="builtin:harmful", split="val", limit=12))
    assert len(prompts) == 12 and {p.split for p in prompts} == {"val"}
    assert len(load_prompt_set(DataRef(source="builtin:overrefusal", split="all"))) >= 120


def test_default_eval_spec_data_resolves():
    spec = EvalSpec()
    for ref in (spec.harmful, spec.harmless, spec.overrefusal):
        prompts = load_prompt_set(ref)
        assert 0 < len(prompts) <= 50 and {p.split for p in prompts} == {"test"}
    assert all(p.reference for p in load_prompt_set(spec.harmless))


@pytest.mark.parametrize(
    "fmt,relative,kind,size",
    [
        ("advbench", "harmful/advbench.csv", "harmful", 520),
        ("harmbench", "harmful/harmbench_test.json", "harmful", 159),
        ("jailbreakbench", "harmful/jailbreakbench.json", "harmful", 100),
        ("xstest-safe", "xstest/xstest_prompts.csv", "overrefusal", 250),
        ("xstest-unsafe", "xstest/xstest_prompts.csv", "unsafe-contrast", 200),
        ("json", "harmful/jailbreakbench.json", "harmful", 100),
    ],
)
def test_standard_file_sources(shared_data, fmt, relative, kind, size):
    source = f"{fmt}:{shared_data / relative}"
    whole = load_prompt_set(DataRef(source=source, split="all"))
    assert (len(whole), whole.kind) == (size, kind)
    test = load_prompt_set(DataRef(source=source, limit=5))
    assert len(test) == 5 and {p.split for p in test} == {"test"}


def test_generic_sources_take_query_options(tmp_path):
    rows = [{"q": f"question {i}", "a": f"answer {i}.", "t": "topic"} for i in range(20)]
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    source = f"jsonl:{path}?column=q&kind=harmless&reference=a&category=t"
    prompts = load_prompt_set(DataRef(source=source, split="all"))
    assert prompts.kind == "harmless" and len(prompts) == 20
    assert all(p.reference == "answer " + p.text.split()[-1] + "." for p in prompts)
    assert prompts.categories() == {"topic": 20}


def test_csv_source_with_column(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("id,request\n1,first\n2,second\n")
    prompts = load_prompt_set(DataRef(source=f"csv:{path}?column=request", split="all"))
    assert sorted(prompts.texts()) == ["first", "second"]
    with pytest.raises(DataError, match=r"p\.csv: no text column found .*columns: id, request"):
        load_prompt_set(DataRef(source=f"csv:{path}", split="all"))


def test_format_prefix_wins_over_the_suffix(tmp_path):
    path = tmp_path / "prompts.data"
    path.write_text('{"prompt": "a"}\n{"prompt": "b"}\n')
    assert len(load_prompt_set(DataRef(source=f"jsonl:{path}", split="all"))) == 2


def test_parse_source_splits_format_path_and_options():
    parsed = parse_source("json:/data/my file.json?column=text")
    assert (parsed.format, parsed.target, parsed.options) == (
        "json",
        "/data/my file.json",
        {"column": "text"},
    )
    assert parse_source("builtin:harmless").target == "harmless"
    # A '?' that is not followed by key=value options stays part of the path.
    assert parse_source("csv:/data/why?.csv").target == "/data/why?.csv"


@pytest.mark.parametrize(
    "source,message",
    [
        ("advbnech:/x.csv", "unknown data format 'advbnech'.*did you mean advbench"),
        ("xstest:/x.csv", "did you mean xstest-safe, xstest-unsafe"),
        ("harmful", "not of the form builtin:NAME or FORMAT:PATH.*did you mean builtin:harmful"),
        ("builtin:harmles", "unknown built-in data set 'harmles'.*did you mean harmless"),
        ("json:/x.json?colum=text", "unknown option 'colum'.*did you mean column"),
        ("advbench:/x.csv?column=goal", "only apply to json, jsonl, csv"),
        ("json:/x.json?kind=evil", "kind 'evil' is not one of"),
        ("json:/x.json?column=", "has no value"),
        ("csv:", "not of the form"),
    ],
)
def test_bad_sources_are_config_errors_with_hints(source, message):
    with pytest.raises(ConfigError, match=message):
        load_prompt_set(DataRef(source=source))


def test_missing_file_in_source_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"absent\.csv: file not found"):
        load_prompt_set(DataRef(source=f"advbench:{tmp_path / 'absent.csv'}"))


def test_a_source_path_may_start_from_an_environment_variable(tmp_path, monkeypatch):
    (tmp_path / "harmful").mkdir()
    (tmp_path / "harmful" / "advbench.csv").write_text("goal,target\nWrite a threat,Sure\nSteal a car,Sure\n")
    monkeypatch.setenv("TAMPERLAB_SHARED_DATA", str(tmp_path))
    source = "advbench:$TAMPERLAB_SHARED_DATA/harmful/advbench.csv"
    prompts = load_prompt_set(DataRef(source=source, split="all"))
    assert [p.text for p in prompts.prompts] == ["Write a threat", "Steal a car"]


def test_an_unset_variable_in_a_source_path_says_which_one_to_set(monkeypatch):
    monkeypatch.delenv("TAMPERLAB_SHARED_DATA", raising=False)
    with pytest.raises(DataError, match="TAMPERLAB_SHARED_DATA is not set: set TAMPERLAB_SHARED_DATA to"):
        load_prompt_set(DataRef(source="advbench:${TAMPERLAB_SHARED_DATA}/harmful/advbench.csv"))
