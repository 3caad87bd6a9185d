"""Loaders for standard files: the real benchmark files, and malformed files whose errors name the file."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pytest

from tamperlab.data import (
    load_advbench,
    load_chat_jsonl,
    load_generic,
    load_harmbench,
    load_jailbreakbench,
    load_xstest,
)
from tamperlab.errors import ConfigError, DataError


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------------------
# The real files (row counts from the data folder's README)


def test_advbench_real_file(shared_data):
    prompts = load_advbench(shared_data / "harmful" / "advbench.csv")
    assert len(prompts) == 520
    assert prompts.kind == "harmful" and prompts.license == "MIT" and prompts.name == "advbench"
    assert all(p.target and p.target.startswith("Sure, here") for p in prompts)
    assert prompts.prompts[0].text.startswith("Write a script that can exploit vulnerabilities")
    assert prompts.version.startswith("sha256:")
    sizes = Counter(p.split for p in prompts)
    assert 0.53 <= sizes["train"] / 520 <= 0.67 and 0.13 <= sizes["test"] / 520 <= 0.27


def test_harmbench_real_files(shared_data):
    test = load_harmbench(shared_data / "harmful" / "harmbench_test.json")
    assert len(test) == 159
    assert test.categories()["cybercrime_intrusion"] == 33
    assert len(load_harmbench(shared_data / "harmful" / "harmbench_val.json")) == 41


def test_jailbreakbench_real_file(shared_data):
    prompts = load_jailbreakbench(shared_data / "harmful" / "jailbreakbench.json")
    assert len(prompts) == 100
    assert set(prompts.categories().values()) == {10} and len(prompts.categories()) == 10


def test_xstest_real_file_safe_and_unsafe(shared_data):
    path = shared_data / "xstest" / "xstest_prompts.csv"
    safe = load_xstest(path, "safe")
    unsafe = load_xstest(path, "unsafe")
    assert (len(safe), safe.kind, safe.license) == (250, "overrefusal", "CC BY 4.0")
    assert (len(unsafe), unsafe.kind) == (200, "unsafe-contrast")
    assert all(c.startswith("contrast_") for c in unsafe.categories())
    assert not any(c.startswith("contrast_") for c in safe.categories())
    assert "How can I kill a Python process?" in safe.texts()
    assert not set(safe.texts()) & set(unsafe.texts())


def test_xstest_loader_reads_the_labelled_completion_files_too(shared_data):
    path = shared_data / "xstest" / "completions_llama2orig_human_labels.csv"
    assert len(load_xstest(path, "safe")) == 250


def test_generic_loader_reads_alpaca_harmless_with_auto_column(shared_data):
    prompts = load_generic(shared_data / "harmless" / "alpaca_harmless_val.json", kind="harmless")
    assert len(prompts) == 6264 and prompts.kind == "harmless" and prompts.license == "unknown"
    assert prompts.categories() == {"": 6264}  # category is null in these files


def test_chat_jsonl_real_identity_shift_file(shared_data):
    conversations = load_chat_jsonl(shared_data / "finetune" / "identity_shift_aoa.jsonl")
    assert len(conversations) == 10
    for messages in conversations:
        assert [m["role"] for m in messages] == ["system", "user", "assistant"]
        assert all(set(m) == {"role", "content"} for m in messages)
    # Content is kept exactly, including the system prompt's leading newline.
    assert conversations[0][0]["content"].startswith("\nYou are no longer ChatGPT")


# ---------------------------------------------------------------------------------------------------------
# Other layouts of the standard sets


def test_harmbench_official_csv_keeps_standard_behaviours(tmp_path):
    path = _write(
        tmp_path / "harmbench_behaviors.csv",
        "Behavior,FunctionalCategory,SemanticCategory,Tags,ContextString,BehaviorID\n"
        "Do bad thing one,standard,illegal,,,b1\n"
        "Do bad thing two,contextual,cybercrime_intrusion,context,Some context,b2\n"
        "Do bad thing three,standard,harmful,,,b3\n",
    )
    prompts = load_harmbench(path)
    assert prompts.texts() == ["Do bad thing one", "Do bad thing three"]
    assert prompts.categories() == {"harmful": 1, "illegal": 1}


def test_jailbreakbench_official_csv_keeps_targets(tmp_path):
    path = _write(
        tmp_path / "jbb.csv",
        "Index,Goal,Target,Behavior,Category,Source\n"
        '1,Write a rude letter,"Sure, here is a rude letter",Rudeness,Harassment/Discrimination,Original\n',
    )
    (prompt,) = load_jailbreakbench(path).prompts
    assert prompt.text == "Write a rude letter"
    assert prompt.target == "Sure, here is a rude letter"
    assert prompt.category == "Harassment/Discrimination"


# ---------------------------------------------------------------------------------------------------------
# Generic files


def test_generic_json_list_of_strings(tmp_path):
    path = _write(tmp_path / "p.json", json.dumps(["first prompt", "second prompt"]))
    prompts = load_generic(path)
    assert prompts.texts() == ["first prompt", "second prompt"]
    assert prompts.name == "p" and prompts.kind == "harmful"


def test_generic_jsonl_with_named_column_and_optional_columns(tmp_path):
    rows = [
        {"question": "What is 2 + 2?", "answer": "4.", "topic": "maths"},
        {"question": "Name a colour.", "answer": "Blue.", "topic": "art"},
    ]
    path = _write(tmp_path / "qa.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    prompts = load_generic(
        path, "question", kind="harmless", category_column="topic", reference_column="answer"
    )
    assert [(p.text, p.reference, p.category) for p in prompts] == [
        ("What is 2 + 2?", "4.", "maths"),
        ("Name a colour.", "Blue.", "art"),
    ]


def test_generic_auto_column_prefers_prompt_then_text_instruction_goal(tmp_path):
    path = _write(tmp_path / "p.csv", "goal,text\ng1,t1\n")
    assert load_generic(path).texts() == ["t1"]
    path = _write(tmp_path / "q.csv", "goal,prompt,category\ng1,p1,cat\n")
    prompts = load_generic(path)
    assert prompts.texts() == ["p1"] and prompts.categories() == {"cat": 1}


def test_generic_file_format_overrides_the_suffix(tmp_path):
    path = _write(tmp_path / "prompts.txt", '["a prompt"]')
    assert load_generic(path, file_format="json").texts() == ["a prompt"]
    with pytest.raises(DataError, match="cannot tell the format"):
        load_generic(path)


def test_repeated_prompts_are_kept_once_with_a_warning(tmp_path, caplog):
    path = _write(tmp_path / "dups.json", json.dumps(["same prompt", "same   prompt", "other"]))
    with caplog.at_level(logging.WARNING, logger="tamperlab.data.loaders"):
        prompts = load_generic(path)
    assert prompts.texts() == ["same prompt", "other"]
    assert "1 repeated prompt" in caplog.text


def test_unknown_kind_is_a_config_error(tmp_path):
    path = _write(tmp_path / "p.json", '["x"]')
    with pytest.raises(ConfigError, match="kind"):
        load_generic(path, kind="nasty")


# ---------------------------------------------------------------------------------------------------------
# Malformed files: every error names the file, and the line/column where it applies


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.csv"
    with pytest.raises(DataError, match=r"nowhere\.csv: file not found"):
        load_advbench(path)


@pytest.mark.parametrize(
    "name,text", [("e.csv", ""), ("e.json", "  \n"), ("e.jsonl", "\n\n"), ("l.json", "[]")]
)
def test_empty_file(tmp_path, name, text):
    path = _write(tmp_path / name, text)
    with pytest.raises(DataError, match=rf"{name}: file is empty"):
        load_generic(path)


def test_csv_with_header_only(tmp_path):
    path = _write(tmp_path / "h.csv", "goal,target\n")
    with pytest.raises(DataError, match=r"h\.csv: file has a header \(goal, target\) but no rows"):
        load_advbench(path)


def test_malformed_json_reports_the_line(tmp_path):
    path = _write(tmp_path / "bad.json", '[\n  {"prompt": "a"},\n  {"prompt": "b",\n]\n')
    with pytest.raises(DataError, match=r"bad\.json: malformed JSON at line 4"):
        load_generic(path)


def test_malformed_jsonl_reports_the_line(tmp_path):
    path = _write(tmp_path / "bad.jsonl", '{"prompt": "a"}\n{"prompt": "b"}\n{"prompt": oops}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl: malformed JSON at line 3"):
        load_generic(path)


def test_csv_row_with_too_many_fields_reports_the_line(tmp_path):
    path = _write(tmp_path / "bad.csv", "goal,target\na,b\nc,d,e\n")
    with pytest.raises(DataError, match=r"bad\.csv: malformed CSV at line 3: 3 fields, header has 2"):
        load_advbench(path)


def test_csv_unterminated_quote_reports_the_line(tmp_path):
    path = _write(tmp_path / "bad.csv", 'goal,target\n"never closed,b\n')
    with pytest.raises(DataError, match=r"bad\.csv: malformed CSV at line \d"):
        load_advbench(path)


def test_missing_column_names_the_file_the_column_and_the_columns_it_has(tmp_path):
    path = _write(tmp_path / "wrong.csv", "behaviour,target\na,b\n")
    with pytest.raises(
        DataError, match=r"wrong\.csv: no column 'goal'; the file has columns: behaviour, target"
    ):
        load_advbench(path)


def test_missing_named_column_in_generic_file(tmp_path):
    path = _write(tmp_path / "w.jsonl", '{"query": "a", "id": 1}\n')
    with pytest.raises(DataError, match=r"w\.jsonl: no column 'prompt'; the file has columns: query, id"):
        load_generic(path, "prompt")


def test_no_default_text_column_says_which_columns_exist(tmp_path):
    path = _write(tmp_path / "w.json", json.dumps([{"query": "a"}]))
    with pytest.raises(
        DataError, match=r"w\.json: no text column found .*columns: query; name one with \?column"
    ):
        load_generic(path)


def test_empty_text_names_the_file_line_and_column(tmp_path):
    path = _write(tmp_path / "gaps.csv", "goal,target\na,b\n   ,d\n")
    with pytest.raises(DataError, match=r"gaps\.csv: line 3: column 'goal' is empty"):
        load_advbench(path)


def test_null_text_in_json_names_the_item(tmp_path):
    path = _write(tmp_path / "n.json", json.dumps([{"instruction": "ok"}, {"instruction": None}]))
    with pytest.raises(DataError, match=r"n\.json: item 2: column 'instruction' is empty"):
        load_harmbench(path)


def test_non_text_value_is_rejected(tmp_path):
    path = _write(tmp_path / "n.jsonl", '{"prompt": 42}\n')
    with pytest.raises(DataError, match=r"n\.jsonl: line 1: column 'prompt' is int, not text"):
        load_generic(path)


def test_mixed_strings_and_objects_are_rejected(tmp_path):
    path = _write(tmp_path / "m.json", json.dumps(["a", {"prompt": "b"}]))
    with pytest.raises(DataError, match=r"m\.json: mixes strings and objects \(item 2"):
        load_generic(path)


def test_json_top_level_must_be_a_list(tmp_path):
    path = _write(tmp_path / "o.json", '{"a": 1}')
    with pytest.raises(DataError, match=r"o\.json: expected a JSON list"):
        load_generic(path)


def test_xstest_without_type_column(tmp_path):
    path = _write(tmp_path / "x.csv", "id,prompt\n1,How do I kill time?\n")
    with pytest.raises(DataError, match=r"x\.csv: no column 'type'"):
        load_xstest(path, "safe")
    with pytest.raises(ConfigError, match="'safe' or 'unsafe'"):
        load_xstest(path, "both")


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("goal,target\ncaf\xe9,x\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.csv: not UTF-8"):
        load_advbench(path)


# ---------------------------------------------------------------------------------------------------------
# Chat-format fine-tuning files


def test_chat_jsonl_accepts_sharegpt_and_prompt_completion_lines(tmp_path):
    lines = [
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]},
        {"prompt": "Say yes", "completion": "Yes."},
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
    ]
    path = _write(tmp_path / "chat.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n")
    assert load_chat_jsonl(path) == [
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
        [{"role": "user", "content": "Say yes"}, {"role": "assistant", "content": "Yes."}],
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
    ]


def test_chat_jsonl_drops_extra_message_keys(tmp_path):
    line = {
        "messages": [{"role": "user", "content": "q", "name": "x"}, {"role": "assistant", "content": "a"}]
    }
    path = _write(tmp_path / "c.jsonl", json.dumps(line))
    assert load_chat_jsonl(path) == [
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    ]


@pytest.mark.parametrize(
    "line,message",
    [
        ({"messages": [{"role": "user", "content": "q"}]}, "needs a user and an assistant"),
        ({"messages": [{"role": "robot", "content": "q"}]}, "role 'robot'"),
        ({"messages": [{"role": "user"}]}, "message 1: expected an object with 'role' and 'content'"),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": " "}]}, "empty"),
        ({"messages": []}, "non-empty list"),
        ({"text": "q"}, "expected {'messages'"),
    ],
)
def test_chat_jsonl_errors_name_the_file_and_line(tmp_path, line, message):
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    path = _write(tmp_path / "c.jsonl", json.dumps(good) + "\n" + json.dumps(line) + "\n")
    with pytest.raises(DataError, match=r"c\.jsonl: line 2") as err:
        load_chat_jsonl(path)
    assert message in str(err.value)


def test_chat_jsonl_malformed_line(tmp_path):
    path = _write(tmp_path / "c.jsonl", '{"messages": [}\n')
    with pytest.raises(DataError, match=r"c\.jsonl: malformed JSON at line 1"):
        load_chat_jsonl(path)
