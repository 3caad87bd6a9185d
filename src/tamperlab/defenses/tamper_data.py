"""Training data for tamper-resistance defenses (RepNoise, TAR): the adversary's data and the batch streams.

A tamper-resistance defense trains against what an attacker would fine-tune on. tamperlab never ships harmful
text, so that data is made the way the ``harmful-sft`` attack makes it (:func:`tamperlab.attacks.harmful_sft.
build_attack_examples`): by default the *unaligned* model's own completions to the harmful training prompts,
generated locally and cached. The unaligned model is the root of the defended model's lineage: the pipeline
writes a record beside every defended model it caches naming its parent, and :func:`unaligned_model_name`
follows those records back to the model no defense was applied to.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from tamperlab.config import DataRef, ModelSpec
from tamperlab.train.examples import ChatExample, batch_stream, collate, tokenize_chat

log = logging.getLogger(__name__)

DEFENSE_RECORD = "tamperlab_defense.json"
"""The file the pipeline writes beside a cached defended model (``tamperlab.pipeline.DEFENSE_RECORD``); it
names the model the defense was applied to. Repeated here because defenses may not import the pipeline."""


def unaligned_model_name(name: str) -> str:
    """Follow cached defended models' records back to the model no defense was applied to.

    ``smollm2-135m-instruct+safety-sft-1a2b…`` (a cached safeguarded model) resolves to
    ``smollm2-135m-instruct``; a name without a record (a plain model) resolves to itself.
    """
    from tamperlab.models.loading import cached_model_dir, is_cached

    seen = {name}
    while "/" not in name and is_cached(name):
        record = cached_model_dir(name) / DEFENSE_RECORD
        if not record.is_file():
            break
        parent = json.loads(record.read_text()).get("parent")
        if not parent or parent in seen:
            break
        seen.add(parent)
        name = parent
    return name


def unaligned_spec(loaded: Any, explicit: str | None) -> ModelSpec:
    """The model that makes the adversary's data: ``explicit`` or the root of ``loaded``'s lineage."""
    name = explicit or unaligned_model_name(loaded.name)
    device = loaded.device if loaded.device in ("cpu", "cuda") else "auto"
    return ModelSpec(name=name, device=device)


def adversary_examples(
    loaded: Any,
    *,
    data: str,
    prompts: DataRef,
    n_examples: int | None,
    completion_tokens: int,
    unaligned_model: str | None,
) -> tuple[list[ChatExample], str]:
    """The harmful fine-tuning data an attacker would use, built exactly as ``harmful-sft`` builds it.

    Args:
        loaded: the model being defended (its lineage gives the unaligned model).
        data: ``self-completions``, ``affirmative`` or ``chat-jsonl:PATH`` (see ``harmful-sft``).
        prompts: the harmful requests (a training split, never the evaluation's test split).
        n_examples: keep at most this many.
        completion_tokens: length of self-completions (64 = the attack's default, so the cache is shared).
        unaligned_model: the model whose completions are used; None = the root of ``loaded``'s lineage.

    Returns:
        (examples, a description of their source)
    """
    from tamperlab.attacks.base import AttackContext
    from tamperlab.attacks.harmful_sft import HarmfulSftArgs, build_attack_examples
    from tamperlab.errors import ConfigError

    args = HarmfulSftArgs(
        data=data, prompts=prompts, n_examples=n_examples, completion_tokens=completion_tokens
    )
    ctx = AttackContext(unaligned=unaligned_spec(loaded, unaligned_model))
    examples, source = build_attack_examples(args, ctx)
    if not examples:
        raise ConfigError(f"the adversary's data ({source}) is empty")
    return examples, source


def reference_examples(ref: DataRef, n_examples: int | None) -> list[ChatExample]:
    """Prompts of ``ref`` paired with their reference answers (prompts without one are skipped)."""
    from tamperlab.data.sets import load_prompt_set
    from tamperlab.errors import ConfigError

    pairs = [(p.text, p.reference) for p in load_prompt_set(ref).prompts if p.reference]
    if not pairs:
        raise ConfigError(f"{ref.source} ({ref.split}) has no prompts with reference answers")
    return [ChatExample.from_pair(p, r) for p, r in pairs][:n_examples]


def refusal_examples(ref: DataRef, n_examples: int | None) -> list[ChatExample]:
    """Prompts of ``ref`` paired with a refusal (the same phrasings ``safety-sft`` trains on)."""
    from tamperlab.data.sets import load_prompt_set
    from tamperlab.defenses.safety_sft import refusal_for

    return [ChatExample.from_pair(p.text, refusal_for(p.text)) for p in load_prompt_set(ref).prompts][
        :n_examples
    ]


def tokenized(tokenizer: Any, examples: Sequence[ChatExample], max_length: int) -> list[dict[str, list[int]]]:
    """Tokenize conversations once (loss on assistant tokens only), warning about answers cut off entirely."""
    from tamperlab.train.examples import IGNORE_INDEX

    features = [tokenize_chat(tokenizer, e, max_length) for e in examples]
    empty = sum(all(label == IGNORE_INDEX for label in f["labels"][1:]) for f in features)
    if empty:
        log.warning(
            "%d of %d examples have no assistant tokens within max_length=%d",
            empty,
            len(features),
            max_length,
        )
    return features


def pad_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pad) if pad is not None else 0


def collated_stream(
    features: Sequence[Mapping[str, Sequence[int]]], batch_size: int, seed: int, pad: int
) -> Iterator[dict[str, Any]]:
    """Padded batches forever from a seeded stream that reshuffles each epoch (:func:`batch_stream`)."""
    return (collate(group, pad) for group in batch_stream(features, batch_size, seed))


def zipped(streams: Mapping[str, Iterator[Any]]) -> Iterator[dict[str, Any]]:
    """One micro-batch of every named stream per item: ``{"harmful": batch, "harmless": batch}``."""
    while True:
        yield {name: next(stream) for name, stream in streams.items()}
