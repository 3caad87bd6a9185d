"""Chat tokenization with assistant-only labels, collation, and the seeded batch stream."""

from __future__ import annotations

import pytest
import torch

from tamperlab.train.examples import IGNORE_INDEX, ChatExample, batch_stream, collate, tokenize_chat


@pytest.fixture(scope="module")
def tokenizer():
    from tamperlab.models.tiny import build_tiny_tokenizer

    return build_tiny_tokenizer()


def labelled_text(tokenizer, feature) -> str:
    return tokenizer.decode(
        [t for t, label in zip(feature["input_ids"], feature["labels"], strict=True) if label != IGNORE_INDEX]
    )


def test_only_the_assistant_reply_and_its_end_token_are_labelled(tokenizer):
    example = ChatExample.from_pair(
        "How do I boil water?", "Sure, heat it to 100 degrees.", system="Be brief."
    )
    feature = tokenize_chat(tokenizer, example, max_length=128)

    assert len(feature["input_ids"]) == len(feature["labels"])
    assert labelled_text(tokenizer, feature) == "Sure, heat it to 100 degrees.<|im_end|>"
    labelled = [i for i, label in enumerate(feature["labels"]) if label != IGNORE_INDEX]
    assert all(feature["labels"][i] == feature["input_ids"][i] for i in labelled)
    # the last labelled token is the end-of-turn token, so a trained model learns to stop
    assert feature["input_ids"][labelled[-1]] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    # the labelled tokens are one contiguous run at the end (only the template's trailing newline follows)
    assert labelled == list(range(labelled[0], labelled[-1] + 1))
    assert tokenizer.decode(feature["input_ids"][labelled[-1] + 1 :]) == "\n"
    # system prompt, user prompt and role headers carry no loss
    assert tokenizer.decode(feature["input_ids"][: labelled[0]]).endswith("<|im_start|>assistant\n")


def test_every_assistant_turn_is_labelled_and_user_turns_are_not(tokenizer):
    example = ChatExample(
        (
            {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Write a poem"},
            {"role": "assistant", "content": "The sea."},
        )
    )
    feature = tokenize_chat(tokenizer, example, max_length=256)
    assert labelled_text(tokenizer, feature) == "Hello.<|im_end|>The sea.<|im_end|>"


def test_long_examples_are_cut_to_max_length(tokenizer):
    example = ChatExample.from_pair("Explain photosynthesis " * 20, "Plants turn light into sugar.")
    feature = tokenize_chat(tokenizer, example, max_length=16)
    assert len(feature["input_ids"]) == len(feature["labels"]) == 16
    assert all(label == IGNORE_INDEX for label in feature["labels"])  # the reply lies beyond the cut


def test_an_example_without_an_assistant_message_is_rejected():
    with pytest.raises(ValueError, match="assistant"):
        ChatExample(({"role": "user", "content": "hi"},))
    with pytest.raises(ValueError, match="role"):
        ChatExample(({"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}))


def test_collate_pads_on_the_right_with_masked_ignored_padding():
    batch = collate(
        [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}], pad_id=0
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["input_ids"].dtype == torch.long


def test_batch_stream_is_seeded_reshuffles_each_epoch_and_sees_each_example_once_per_epoch():
    items = list(range(6))

    def take(stream, n):
        return [next(stream) for _ in range(n)]

    first = take(batch_stream(items, 3, seed=1), 8)
    assert first == take(batch_stream(items, 3, seed=1), 8)
    assert first != take(batch_stream(items, 3, seed=2), 8)
    flat = [x for batch in first for x in batch]
    epochs = [flat[i : i + 6] for i in range(0, len(flat), 6)]
    assert all(sorted(epoch) == items for epoch in epochs)
    assert len({tuple(epoch) for epoch in epochs}) > 1  # reshuffled, not the same order every epoch


def test_batch_stream_batches_are_always_full_and_order_does_not_depend_on_batch_size():
    items = list(range(5))
    by_four = [x for batch in _take(batch_stream(items, 4, seed=0), 5) for x in batch]
    by_two = [x for batch in _take(batch_stream(items, 2, seed=0), 10) for x in batch]
    assert all(len(batch) == 4 for batch in _take(batch_stream(items, 4, seed=0), 5))
    assert by_four == by_two


def _take(stream, n):
    return [next(stream) for _ in range(n)]
