"""Chat formatting through the tokenizer's own template."""

from __future__ import annotations

from typing import Any


def chat_messages(user: str, system: str | None = None) -> list[dict[str, str]]:
    """The message list for one user turn, with an optional system prompt."""
    messages = [] if system is None else [{"role": "system", "content": system}]
    messages.append({"role": "user", "content": user})
    return messages


def format_prompt(tokenizer: Any, user: str, *, system: str | None = None, prefill: str | None = None) -> str:
    """The text the model sees before it answers: the chat template with the generation prompt.

    Args:
        prefill: text forced at the start of the assistant's answer (the prefill attack); the model
            continues it.
    """
    text = tokenizer.apply_chat_template(
        chat_messages(user, system), add_generation_prompt=True, tokenize=False
    )
    return text + (prefill or "")
