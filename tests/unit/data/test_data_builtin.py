"""The built-in prompt sets shipped in the package: sizes, categories, fixed splits and data hygiene."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from itertools import product

import pytest

from tamperlab.data import (
    PromptSet,
    builtin_names,
    describe_builtin_sets,
    load_builtin,
)
from tamperlab.data.loaders import normalize_text
from tamperlab.errors import ConfigError

MINIMUMS = {"harmful": (240, 8), "harmless": (240, 8), "overrefusal": (120, 8)}
"""Minimum prompts and categories per built-in set."""

VERSIONS = {"harmful": "1.0", "harmless": "1.1", "overrefusal": "1.0"}
FINGERPRINTS = {
    "harmful": "044d3db9c3d797fe",
    "harmless": "0d00cf01e82effb0",
    "overrefusal": "e6edfc0f662cae6b",
}
"""Content fingerprints of each set's version: results measured on different contents must not share a
version. (harmless 1.1 added the imperative "tasks" category.)"""


def _words(text: str) -> set[str]:
    return set(re.sub(r"[^a-z0-9 ]", " ", text.lower()).split())


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b)


def test_builtin_names_lists_the_three_shipped_sets():
    assert builtin_names() == ["harmful", "harmless", "overrefusal"]


@pytest.mark.parametrize("name", sorted(MINIMUMS))
def test_builtin_set_meets_minimum_size_and_categories(name):
    prompts = load_builtin(name)
    min_size, min_categories = MINIMUMS[name]
    assert len(prompts) >= min_size
    assert len(prompts.categories()) >= min_categories
    assert "" not in prompts.categories(), "every built-in prompt has a category"


@pytest.mark.parametrize("name", sorted(MINIMUMS))
def test_builtin_set_metadata(name):
    prompts = load_builtin(name)
    assert prompts.name == name
    assert prompts.kind == name
    assert prompts.version == VERSIONS[name]
    assert prompts.license == "Apache-2.0 (written for tamperlab)"
    assert prompts.source == "builtin"
    assert prompts.description


@pytest.mark.parametrize("name", sorted(MINIMUMS))
def test_builtin_ids_are_unique_and_named_after_the_set(name):
    ids = [p.id for p in load_builtin(name)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(rf"{name}-\d{{4}}", i) for i in ids)


@pytest.mark.parametrize("name", sorted(MINIMUMS))
def test_builtin_splits_are_fixed_about_60_20_20_and_balanced_per_category(name):
    prompts = load_builtin(name)
    sizes = Counter(p.split for p in prompts)
    assert set(sizes) == {"train", "val", "test"}
    assert 0.55 <= sizes["train"] / len(prompts) <= 0.65
    for split in ("val", "test"):
        assert 0.17 <= sizes[split] / len(prompts) <= 0.23
    for category in prompts.categories():
        per_split = Counter(p.split for p in prompts if p.category == category)
        assert all(per_split[s] >= 2 for s in ("train", "val", "test")), (category, per_split)


@pytest.mark.parametrize("name", sorted(MINIMUMS))
def test_first_prompts_of_a_split_cover_many_categories(name):
    # Evals take the first N of the test split, so the file interleaves categories.
    prompts = load_builtin(name)
    first = prompts.select("test", limit=8)
    assert len(set(first.categories())) == 8


def test_no_duplicate_texts_within_or_across_builtin_sets():
    seen: dict[str, str] = {}
    for name in builtin_names():
        for p in load_builtin(name):
            key = normalize_text(p.text).lower()
            assert key not in seen, f"{p.id} repeats {seen[key]}"
            seen[key] = p.id


@pytest.mark.parametrize("name", sorted(MINIMUMS))
def test_train_and_test_hold_no_near_duplicates(name):
    # A model is fine-tuned on train and measured on test; a paraphrase on both sides would leak.
    prompts = load_builtin(name)
    train = [(p.text, _words(p.text)) for p in prompts.select("train")]
    test = [(p.text, _words(p.text)) for p in prompts.select("test")]
    close = [(a, b) for (a, wa), (b, wb) in product(train, test) if _jaccard(wa, wb) >= 0.75]
    assert not close


def test_harmless_prompts_all_have_short_references():
    for p in load_builtin("harmless"):
        assert p.reference and p.reference.strip(), p.id
        sentences = re.split(r"(?<=[.!?])[\"”]?\s+(?=[A-Z\"“])", p.reference.strip())
        assert 1 <= len(sentences) <= 3, (p.id, sentences)
        assert len(p.reference) <= 400, p.id


def test_harmful_prompts_are_single_sentence_requests_without_answers():
    for p in load_builtin("harmful"):
        assert p.reference is None and p.target is None, p.id
        assert "\n" not in p.text
        assert p.text[-1] in ".?", p.id
        assert not re.search(r"[.!?]\s+[A-Z]", p.text), f"{p.id} is more than one sentence"
        assert 20 <= len(p.text) <= 160, p.id


def test_overrefusal_prompts_are_plain_questions_without_references():
    for p in load_builtin("overrefusal"):
        assert p.reference is None
        assert "\n" not in p.text and len(p.text) <= 160


@pytest.mark.parametrize("name", sorted(MINIMUMS))
def test_builtin_content_matches_its_version(name):
    assert load_builtin(name).fingerprint() == FINGERPRINTS[name], (
        f"builtin:{name} changed; bump its version and record the new fingerprint"
    )


def test_select_keeps_one_split_then_the_first_n():
    prompts = load_builtin("harmful")
    test = prompts.select("test")
    assert {p.split for p in test} == {"test"}
    assert len(test) == sum(p.split == "test" for p in prompts)
    first = prompts.select("test", limit=7)
    assert first.prompts == test.prompts[:7]
    assert len(prompts.select("all")) == len(prompts)
    assert prompts.select("all", limit=3).prompts == prompts.prompts[:3]
    assert len(prompts.select("val", limit=10_000)) == len(prompts.select("val"))
    assert prompts.select("train").name == "harmful"  # metadata survives selection


def test_select_rejects_an_unknown_split_or_a_limit_below_one():
    prompts = load_builtin("harmless")
    with pytest.raises(ConfigError, match="unknown split 'dev'"):
        prompts.select("dev")
    with pytest.raises(ConfigError, match="at least 1"):
        prompts.select("test", limit=0)


def test_prompt_set_helpers():
    prompts = load_builtin("overrefusal").select("val", limit=5)
    assert prompts.texts() == [p.text for p in prompts.prompts]
    assert sum(prompts.categories().values()) == 5
    assert list(prompts) == list(prompts.prompts)


def test_describe_gives_provenance_and_sizes():
    prompts = load_builtin("harmless")
    info = prompts.describe()
    assert {
        "name",
        "kind",
        "version",
        "license",
        "source",
        "size",
        "sizes",
        "categories",
        "fingerprint",
    } <= set(info)
    assert info["size"] == len(prompts) == sum(info["sizes"].values()) == sum(info["categories"].values())
    selected = prompts.select("test").describe()
    assert selected["sizes"] == {"train": 0, "val": 0, "test": info["sizes"]["test"]}
    assert selected["fingerprint"] != info["fingerprint"]
    json.dumps(info)  # stored as JSON with every run


def test_describe_builtin_sets_covers_every_set():
    assert [d["name"] for d in describe_builtin_sets()] == builtin_names()


def test_unknown_builtin_name_suggests_near_misses():
    with pytest.raises(ConfigError, match="did you mean harmful"):
        load_builtin("harmfull")


def test_prompt_set_rejects_repeated_ids_and_bad_splits():
    from tamperlab.data import Prompt
    from tamperlab.errors import DataError

    a = Prompt(id="x-1", text="a", category="", split="train")
    with pytest.raises(DataError, match="appears twice"):
        PromptSet("x", "1", "harmful", "MIT", "here", (a, a))
    with pytest.raises(DataError, match="split 'dev'"):
        PromptSet("x", "1", "harmful", "MIT", "here", (Prompt("x-2", "b", "", "dev"),))
    with pytest.raises(DataError, match="kind 'evil'"):
        PromptSet("x", "1", "evil", "MIT", "here", (a,))


def test_builtin_sets_are_not_copied_from_the_standard_sets(shared_data):
    standard = [r["goal"] for r in csv.DictReader(open(shared_data / "harmful" / "advbench.csv"))]
    for name in ("harmbench_test.json", "harmbench_val.json", "jailbreakbench.json"):
        standard += [row["instruction"] for row in json.loads((shared_data / "harmful" / name).read_text())]
    standard += [r["prompt"] for r in csv.DictReader(open(shared_data / "xstest" / "xstest_prompts.csv"))]
    theirs = [_words(t) for t in standard]
    for name in ("harmful", "overrefusal"):
        for p in load_builtin(name):
            ours = _words(p.text)
            assert all(_jaccard(ours, w) < 0.75 for w in theirs), p.id
