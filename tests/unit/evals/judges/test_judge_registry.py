"""Judges are built by name through the registry; unknown names and bad args fail with a clear ConfigError."""

from __future__ import annotations

import pytest

from tamperlab.errors import ConfigError
from tamperlab.evals.judges import JUDGES, build_judge


def test_all_builtin_judges_register():
    build_judge("keyword")  # imports the built-in judges
    assert {"keyword", "embedding", "hf-classifier", "openai-compatible"} <= set(JUDGES.names())


def test_registering_builtins_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, tamperlab.evals.judges.builtin; "
        "sys.exit(int('torch' in sys.modules or 'transformers' in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("keywrd", "keyword"), ("embeding", "embedding"), ("hf-clasifier", "hf-classifier")],
)
def test_unknown_judge_suggests_near_miss(name, suggestion):
    with pytest.raises(ConfigError, match=f"unknown judge '{name}'; did you mean {suggestion}"):
        build_judge(name)


def test_unknown_judge_without_near_miss_lists_known():
    with pytest.raises(ConfigError, match="known: .*keyword"):
        build_judge("zzzzzz")


@pytest.mark.parametrize(
    ("name", "args", "field"),
    [
        ("keyword", {"max_chars": -1}, "max_chars"),
        ("keyword", {"unknown_field": 1}, "unknown_field"),
        ("embedding", {"threshold": 1.5}, "threshold"),
        ("embedding", {"batch_size": 0}, "batch_size"),
        ("hf-classifier", {}, "path"),
        ("hf-classifier", {"path": "/x", "kind": "regression"}, "kind"),
        ("openai-compatible", {"base_url": "localhost:8000", "model": "m"}, "base_url"),
        ("openai-compatible", {"base_url": "http://h/v1"}, "model"),
    ],
)
def test_bad_args_name_the_field(name, args, field):
    with pytest.raises(ConfigError, match=rf"judge '{name}': args\.{field}"):
        build_judge(name, args)


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("hf-classifier", {"path": "/x"}, "refusal_labels or compliance_labels"),
        ("hf-classifier", {"path": "/x", "refusal_labels": ["R"], "prompt_format": "{prompt}"}, "{response}"),
        (
            "hf-classifier",
            {"path": "/x", "kind": "generative-guard", "safe_word": "x", "unsafe_word": "x"},
            "differ",
        ),
        (
            "openai-compatible",
            {"base_url": "http://h", "model": "m", "refusal_words": ["no way"]},
            "single word",
        ),
        (
            "openai-compatible",
            {"base_url": "http://h", "model": "m", "compliance_words": ["REFUSAL"]},
            "both",
        ),
    ],
)
def test_cross_field_checks_are_config_errors(name, args, message):
    with pytest.raises(ConfigError, match=message):
        build_judge(name, args)
