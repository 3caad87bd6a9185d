"""Chat formatting through the tokenizer's own template.

Some templates have no system role (Gemma's raise "System role not supported"): for them the system text is
merged into the first user turn, separated by a blank line, which is what those models' developers advise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def chat_messages(user: str, system: str | None = None) -> list[dict[str, str]]:
    """The message list for one user turn, with an optional system prompt."""
    messages = [] if system is None else [{"role": "system", "content": system}]
    messages.append({"role": "user", "content": user})
    return messages


def supports_system_role(tokenizer: Any) -> bool:
    """Whether the chat template renders a system turn (checked once per tokenizer, by rendering one)."""
    cached = getattr(tokenizer, "_tamperlab_system_role", None)
    if cached is not None:
        return cached
    probe = "tamperlab-system-probe"
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "system", "content": probe}, {"role": "user", "content": "hi"}],
            tokenize=False,
            add_generation_prompt=True,
        )
        supported = probe in text
    except Exception:  # jinja2 TemplateError from the template's raise_exception
        supported = False
    try:
        tokenizer._tamperlab_system_role = supported
    except AttributeError:  # pragma: no cover - a tokenizer that refuses new attributes
        pass
    return supported


def merge_system(messages: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """The messages with system turns merged into the next user turn (``system + "\\n\\n" + user``)."""
    out: list[dict[str, str]] = []
    pending: list[str] = []
    for message in messages:
        message = dict(message)
        if message["role"] == "system":
            pending.append(message["content"])
            continue
        if message["role"] == "user" and pending:
            message["content"] = "\n\n".join([*pending, message["content"]])
            pending = []
        out.append(message)
    if pending:  # a system turn with no user turn after it becomes one
        out.insert(0, {"role": "user", "content": "\n\n".join(pending)})
    return out


def render(tokenizer: Any, messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool) -> str:
    """The chat template applied to ``messages`` (system text merged into the first user turn when the
    template has no system role)."""
    messages = [dict(m) for m in messages]
    if any(m["role"] == "system" for m in messages) and not supports_system_role(tokenizer):
        messages = merge_system(messages)
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def format_prompt(tokenizer: Any, user: str, *, system: str | None = None, prefill: str | None = None) -> str:
    """The text the model sees before it answers: the chat template with the generation prompt.

    Args:
        prefill: text forced at the start of the assistant's answer (the prefill attack); the model
            continues it.
    """
    return render(tokenizer, chat_messages(user, system), add_generation_prompt=True) + (prefill or "")
