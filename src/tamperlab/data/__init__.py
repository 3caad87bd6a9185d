"""Built-in prompt sets written by the project, and loaders for the standard files a user already has.

``load_prompt_set(DataRef(source="builtin:harmful", split="test", limit=50))`` is the usual entry point; the
source may also name a standard file (``advbench:PATH``, ``xstest-safe:PATH``, ``jsonl:PATH?column=text``).
"""

from tamperlab.data.loaders import (
    load_advbench,
    load_chat_jsonl,
    load_generic,
    load_harmbench,
    load_jailbreakbench,
    load_xstest,
)
from tamperlab.data.sets import (
    KINDS,
    SPLITS,
    Prompt,
    PromptSet,
    builtin_names,
    describe_builtin_sets,
    load_builtin,
    load_prompt_set,
)

__all__ = [
    "KINDS",
    "SPLITS",
    "Prompt",
    "PromptSet",
    "builtin_names",
    "describe_builtin_sets",
    "load_advbench",
    "load_builtin",
    "load_chat_jsonl",
    "load_generic",
    "load_harmbench",
    "load_jailbreakbench",
    "load_prompt_set",
    "load_xstest",
]
