"""Batched greedy generation that gives exactly the text of one-prompt-at-a-time generation.

Prompts are sorted by token length and batched, so a batch holds prompts of (nearly) equal length and padding
is small; they are left-padded, with a KV cache, and greedy decoding. Results come back in the input order.

The tokens every prompt of a batch starts with (the chat template's system turn and user header;
``benchmarks/shared_prefix.py`` prints how many for the default model) are run once for the batch and their KV
cache is shared by every row: the rows' own tokens follow it, left-padded, with position ids that continue
after it. Same attention, same positions, so the same text; the prompt pass costs only what differs.

The decoding loop is our own rather than ``model.generate``: it does the same greedy steps (same position ids,
same mask), but drops a row from the batch and its KV cache as soon as that row has ended, so the steps after
it cost only the rows still running. A refusal ends after a few tokens; with ``generate`` it rode along to the
batch's longest answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from tamperlab.models.chat import format_prompt
from tamperlab.models.kv_cache import cache_arg, cache_of


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 128,
    system: str | None = None,
    prefill: str | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> list[str]:
    """Greedy answers to ``prompts`` (user turns), in input order.

    Args:
        model, tokenizer: a causal LM and its tokenizer (with a chat template).
        prompts: user requests, formatted with the tokenizer's chat template.
        max_new_tokens: generation length limit.
        batch_size: the most prompts per batch; the batches are evened out (100 prompts at 64 run as 50 + 50).
            On a CPU a decoding step reads every weight whatever the batch, so big batches pay.
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
        n_batches = max(1, math.ceil(len(order) / batch_size))
        size = max(1, math.ceil(len(order) / n_batches))  # even batches: 100 at most 64 → 50 + 50
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            shared = shared_prefix_length([encoded[i] for i in chunk])
            own = [encoded[i][shared:] for i in chunk]
            width = max(len(seq) for seq in own)
            ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, seq in enumerate(own):
                ids[row, width - len(seq) :] = torch.tensor(seq)
                mask[row, width - len(seq) :] = 1
            prefix = torch.tensor([encoded[chunk[0]][:shared]], dtype=torch.long)
            with torch.inference_mode():
                new_tokens = greedy_tokens(
                    model, ids.to(device), mask.to(device), max_new_tokens, eos, prefix=prefix.to(device)
                )
            for row, i in enumerate(chunk):
                outputs[i] = tokenizer.decode(new_tokens[row], skip_special_tokens=True)
            if on_batch is not None:
                on_batch(len(chunk))
    finally:
        model.train(was_training)
    return outputs


def shared_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """How many leading tokens all ``sequences`` share, leaving each at least one token of its own."""
    if len(sequences) < 2:
        return 0
    first, limit = sequences[0], min(len(seq) for seq in sequences) - 1
    length = 0
    while length < limit and all(seq[length] == first[length] for seq in sequences):
        length += 1
    return length


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    return sorted(i for i in ids if i is not None)


def greedy_tokens(
    model: Any,
    ids: Any,
    mask: Any,
    max_new_tokens: int,
    eos: list[int],
    prefix: Any = None,
    done: Callable[[list[int]], bool] | None = None,
) -> list[list[int]]:
    """Greedy continuations of ``prefix`` (``(1, P)`` tokens every row starts with, or None) followed by each
    row's left-padded ``ids`` (rows of ``mask``), each cut before its first ``eos``.

    The prefix runs once and its KV cache is repeated for every row. Position ids count real tokens only
    (``P + mask.cumsum - 1``), as ``generate`` does, so a padded row gets the same positions as the prompt
    alone. A row that emits an end-of-sequence token leaves the batch and the cache, and so does a row whose
    tokens so far satisfy ``done`` (e.g. its text holds a stop string); the loop stops when none is left or
    after ``max_new_tokens``.
    """
    import torch

    rows = ids.shape[0]
    tokens: list[list[int]] = [[] for _ in range(rows)]
    live = list(range(rows))  # the original row of each row still in the batch
    stop = torch.tensor(eos, device=ids.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = None
    if prefix is not None and prefix.shape[1] > 0:
        cache = cache_of(model(input_ids=prefix, use_cache=True, logits_to_keep=1))
        cache.batch_repeat_interleave(rows)
        positions = positions + prefix.shape[1]
        mask = torch.cat([mask.new_ones((rows, prefix.shape[1])), mask], dim=1)
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        **cache_arg(model, cache),
        use_cache=True,
        logits_to_keep=1,
    )
    cache, nxt_position = cache_of(out), positions[:, -1:] + 1
    for step in range(max_new_tokens):
        nxt = out.logits[:, -1].argmax(-1)
        ended = torch.isin(nxt, stop).tolist()
        for row, token in enumerate(nxt.tolist()):
            if not ended[row]:
                tokens[live[row]].append(token)
                ended[row] = done is not None and done(tokens[live[row]])
        if step == max_new_tokens - 1:
            break
        if any(ended):
            live_rows = [r for r, end in enumerate(ended) if not end]
            keep = torch.tensor(live_rows, dtype=torch.long, device=nxt.device)
            if keep.numel() == 0:
                break
            cache.batch_select_indices(keep)
            live = [live[k] for k in keep.tolist()]
            nxt, mask, nxt_position = nxt[keep], mask[keep], nxt_position[keep]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        out = model(
            input_ids=nxt[:, None],
            attention_mask=mask,
            position_ids=nxt_position,
            **cache_arg(model, cache),
            use_cache=True,
        )
        nxt_position = nxt_position + 1
    return tokens


def cached_generate(
    loaded: Any,
    prompts: Sequence[str],
    *,
    purpose: str,
    max_new_tokens: int = 64,
    batch_size: int = 128,
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
