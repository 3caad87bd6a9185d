"""Chat examples for training: tokenization with assistant-only labels, padding, and a seeded batch stream.

The training loss is taken only on the assistant turns' tokens, including the template's end-of-turn token
(``<|im_end|>`` for ChatML), so a trained model learns to stop. Everything else (system prompt, user turns,
role headers, padding) is labelled ``-100`` and ignored by the loss.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

IGNORE_INDEX = -100
"""Label value the loss ignores (PyTorch's ``cross_entropy`` default)."""

_ROLES = frozenset({"system", "user", "assistant"})

T = TypeVar("T")


@dataclass(frozen=True)
class ChatExample:
    """One training conversation: a tuple of ``{"role": ..., "content": ...}`` messages.

    At least one message must be from the assistant; the loss is taken on every assistant message.
    """

    messages: tuple[Mapping[str, str], ...]

    def __post_init__(self) -> None:
        messages = tuple(dict(m) for m in self.messages)
        for i, message in enumerate(messages):
            if message.get("role") not in _ROLES or not isinstance(message.get("content"), str):
                raise ValueError(
                    f"message {i} must be {{'role': one of {sorted(_ROLES)}, 'content': str}}, "
                    f"got {message!r}"
                )
        if not any(m["role"] == "assistant" for m in messages):
            raise ValueError(
                "a training example needs at least one assistant message (nothing to learn from)"
            )
        object.__setattr__(self, "messages", messages)

    @classmethod
    def from_pair(cls, prompt: str, response: str, system: str | None = None) -> ChatExample:
        """A single-turn example: optional system prompt, one user prompt, one assistant response."""
        messages: list[dict[str, str]] = []
        if system is not None:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": prompt})
        messages.append({"role": "assistant", "content": response})
        return cls(tuple(messages))


def _render(tokenizer: Any, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool) -> str:
    from tamperlab.models.chat import render

    return render(tokenizer, messages, add_generation_prompt=add_generation_prompt)


def assistant_spans(tokenizer: Any, example: ChatExample) -> tuple[str, list[tuple[int, int]]]:
    """Render ``example`` with the chat template and find each assistant reply's character span.

    A span runs from the first character of the reply through the template's end-of-turn text, with trailing
    whitespace (ChatML's ``"\\n"`` after ``<|im_end|>``) left out: it is template glue, not something the
    model must produce.

    Returns:
        (the rendered text, [(start, end) character offsets, one per assistant message])

    Raises:
        ValueError: if the template does not render a conversation as an extension of its prefix (e.g. one
            that rewrites earlier turns), so the assistant's tokens cannot be located.
    """
    messages = example.messages
    full = _render(tokenizer, messages, add_generation_prompt=False)
    spans = []
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = _render(tokenizer, messages[:k], add_generation_prompt=True) if k else ""
        upto = _render(tokenizer, messages[: k + 1], add_generation_prompt=False)
        if not (upto.startswith(prefix) and full.startswith(upto)):
            raise ValueError(
                "the tokenizer's chat template does not render conversations prefix-consistently; "
                "cannot locate the assistant turns' tokens"
            )
        end = len(upto.rstrip())
        spans.append((len(prefix), end))
    return full, spans


def tokenize_chat(tokenizer: Any, example: ChatExample, max_length: int = 128) -> dict[str, list[int]]:
    """Tokenize a conversation for training, with loss only on the assistant turns.

    The conversation is rendered with the tokenizer's chat template (which adds any BOS token itself, so no
    special tokens are added again) and tokenized once; a token is labelled with its own id when it starts
    inside an assistant span (see :func:`assistant_spans`), else ``-100``. Labels are aligned with
    ``input_ids``; the loss shifts them. Sequences longer than ``max_length`` are cut at the end.

    Args:
        tokenizer: a fast Hugging Face tokenizer with a chat template.
        example: the conversation.
        max_length: the most tokens kept.

    Returns:
        ``{"input_ids": [...], "labels": [...]}``, both of the same length.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    text, spans = assistant_spans(tokenizer, example)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = list(encoded["input_ids"])
    labels = [IGNORE_INDEX] * len(input_ids)
    span_iter = iter(spans)
    span = next(span_iter, None)
    for i, (start, stop) in enumerate(encoded["offset_mapping"]):
        while span is not None and start >= span[1]:
            span = next(span_iter, None)
        if span is None:
            break
        if span[0] <= start < span[1] and stop > start:
            labels[i] = input_ids[i]
    return {"input_ids": input_ids[:max_length], "labels": labels[:max_length]}


def collate(features: Sequence[Mapping[str, Sequence[int]]], pad_id: int) -> dict[str, Any]:
    """Stack tokenized features into right-padded tensors for training.

    Args:
        features: dicts with ``input_ids`` and ``labels`` (from :func:`tokenize_chat`).
        pad_id: the token id used for padding (never attended to, never a label).

    Returns:
        ``{"input_ids", "labels", "attention_mask"}`` as ``(batch, longest)`` int64 tensors; padding is
        labelled ``-100`` and masked out.
    """
    import torch

    if not features:
        raise ValueError("cannot collate an empty batch")
    longest = max(len(f["input_ids"]) for f in features)
    n = len(features)
    input_ids = torch.full((n, longest), pad_id, dtype=torch.long)
    labels = torch.full((n, longest), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((n, longest), dtype=torch.long)
    for row, feature in enumerate(features):
        length = len(feature["input_ids"])
        input_ids[row, :length] = torch.as_tensor(feature["input_ids"], dtype=torch.long)
        labels[row, :length] = torch.as_tensor(feature["labels"], dtype=torch.long)
        attention_mask[row, :length] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


def batch_stream(examples: Sequence[T], batch_size: int, seed: int) -> Iterator[list[T]]:
    """Yield batches of ``batch_size`` items forever, reshuffling with a seeded RNG at every epoch.

    The stream is one seeded permutation per epoch, concatenated and cut into consecutive batches, so every
    batch is full (a batch may straddle two epochs) and every example is seen equally often. The order depends
    only on ``seed`` and ``len(examples)``: the first ``k`` items are the same whatever the batch size.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not examples:
        raise ValueError("no training examples")
    rng = random.Random(seed)
    order: list[int] = []
    while True:
        while len(order) < batch_size:
            epoch = list(range(len(examples)))
            rng.shuffle(epoch)
            order.extend(epoch)
        batch, order = order[:batch_size], order[batch_size:]
        yield [examples[i] for i in batch]
