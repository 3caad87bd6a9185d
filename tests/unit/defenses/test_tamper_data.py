"""The adversary's data for tamper-resistance defenses: finding the unaligned model, building the streams."""

from __future__ import annotations

import json

from tamperlab import pipeline
from tamperlab.config import DataRef
from tamperlab.defenses.tamper_data import (
    DEFENSE_RECORD,
    collated_stream,
    reference_examples,
    refusal_examples,
    tokenized,
    unaligned_model_name,
    zipped,
)
from tamperlab.models.loading import cached_model_dir


def fake_cached(name: str, parent: str | None) -> None:
    target = cached_model_dir(name)
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    if parent is not None:
        (target / DEFENSE_RECORD).write_text(json.dumps({"parent": parent}))


def test_the_record_file_is_the_pipelines():
    assert DEFENSE_RECORD == pipeline.DEFENSE_RECORD


def test_unaligned_model_is_the_root_of_the_defense_records():
    fake_cached("base-model", None)
    fake_cached("base-model+safety-sft-abc", "base-model")
    fake_cached("base-model+safety-sft-abc+repnoise-def", "base-model+safety-sft-abc")
    assert unaligned_model_name("base-model+safety-sft-abc+repnoise-def") == "base-model"
    assert unaligned_model_name("base-model+safety-sft-abc") == "base-model"
    assert unaligned_model_name("base-model") == "base-model"
    assert unaligned_model_name("/some/local/dir") == "/some/local/dir"


def test_a_cycle_in_the_records_does_not_loop_forever():
    fake_cached("a", "b")
    fake_cached("b", "a")
    assert unaligned_model_name("a") in {"a", "b"}


def test_reference_and_refusal_examples(tiny_model):
    harmless = reference_examples(DataRef(source="builtin:harmless", split="train"), 3)
    refusals = refusal_examples(DataRef(source="builtin:harmful", split="train"), 2)
    assert len(harmless) == 3 and len(refusals) == 2
    assert all(e.messages[-1]["content"] for e in harmless)
    features = tokenized(tiny_model.tokenizer, harmless + refusals, 256)
    stream = zipped(
        {"a": collated_stream(features[:3], 2, 0, 0), "b": collated_stream(features[3:], 2, 1, 0)}
    )
    first = next(stream)
    assert set(first) == {"a", "b"} and first["a"]["input_ids"].shape[0] == 2
