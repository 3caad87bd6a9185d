"""Batched greedy generation that gives exactly the text of one-prompt-at-a-time generation.

Prompts are sorted by token length and batched, so a batch holds prompts of (nearly) equal length and padding is
small; they are left-padded, with a KV cache, and greedy decoding. Results come back in the input order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tamperlab.models.chat import format_prompt


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    system: str | None = None,
    prefill: str | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> list[str]:
    """Greedy answers to ``prompts`` (user turns), in input order.

    Args:
        model, tokenizer: a causal LM and its tokenizer (with a chat template).
        prompts: user requests, formatted with the tokenizer's chat template.
        max_new_tokens: generation length limit.
        batch_size: prompts per forward batch.
        system: optional system prompt.
        prefill: optional forced start of every answer (not included in the returned text).
        on_batch: called with the number of prompts finished after each batch (for progress bars).
    """
    import torch

    texts = [format_prompt(tokenizer, p, system=system, prefill=prefill) for p in prompts]
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i]), i))
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id
    eos = _eos_ids(model, tokenizer)
    outputs: list[str] = [""] * len(prompts)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            width = max(len(encoded[i]) for i in chunk)
            ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                seq = encoded[i]
                ids[row, width - len(seq) :] = torch.tensor(seq)
                mask[row, width - len(seq) :] = 1
            with torch.inference_mode():
                out = model.generate(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    num_beams=1,
                    temperature=None,
                    top_p=None,
                    top_k=None,
                    pad_token_id=pad_id,
                    eos_token_id=eos,
                    use_cache=True,
                )
            for row, i in enumerate(chunk):
                new = out[row, width:].tolist()
                outputs[i] = tokenizer.decode(_until_eos(new, eos), skip_special_tokens=True)
            if on_batch is not None:
                on_batch(len(chunk))
    finally:
        model.train(was_training)
    return outputs


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    return sorted(i for i in ids if i is not None)


def _until_eos(tokens: list[int], eos: list[int]) -> list[int]:
    """Cut at the first end-of-sequence token (rows that finished early are padded after it)."""
    for pos, tok in enumerate(tokens):
        if tok in eos:
            return tokens[:pos]
    return tokens


def cached_generate(
    loaded: Any,
    prompts: Sequence[str],
    *,
    purpose: str,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    system: str | None = None,
    description: str = "generating",
) -> list[str]:
    """:func:`generate` with a disk cache under ``$TAMPERLAB_HOME/completions``, keyed by everything that
    determines the text (model source, prompts, limits). Used for training data made by a model itself
    (self-distilled answers, the unaligned model's own completions), which is generated once.

    Args:
        loaded: a :class:`tamperlab.models.LoadedModel`.
        purpose: a short label kept in the cache file (e.g. "self-completions of harmful train prompts").
    """
    import hashlib
    import json
    import os

    from tamperlab import paths
    from tamperlab.progress import progress_bar

    key_src = json.dumps([loaded.name, loaded.source, list(prompts), max_new_tokens, system], sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:20]
    path = paths.home() / "completions" / f"{key}.json"
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("prompts") == list(prompts):
            return cached["completions"]
    with progress_bar(description, len(prompts)) as advance:
        completions = generate(
            loaded.model,
            loaded.tokenizer,
            prompts,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            system=system,
            on_batch=advance,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    record = {
        "purpose": purpose,
        "model": loaded.name,
        "source": loaded.source,
        "max_new_tokens": max_new_tokens,
    }
    tmp.write_text(json.dumps({**record, "prompts": list(prompts), "completions": completions}))
    tmp.replace(path)
    return completions
