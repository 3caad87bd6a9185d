"""Capability signals: NLL on held-out benign reference responses, and KL from a reference model.

Both are teacher-forced on the same tokenized conversations (benign prompt + the project's reference answer),
taking only the assistant answer's tokens into account:

- ``benign_nll``: mean negative log-likelihood per answer token (token-weighted), and its perplexity exp(NLL).
  A modification that keeps the model useful keeps this close to its parent's.
- ``kl_from_reference``: mean over answer tokens of KL(P_reference || P_model) of the next-token distributions,
  the measure abliteration tools report to show that an edit kept the model's behaviour on harmless input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tamperlab.train.examples import IGNORE_INDEX, ChatExample, collate, tokenize_chat


@dataclass(frozen=True)
class NllResult:
    nll: float
    perplexity: float
    tokens: int
    responses: int


def _batches(tokenizer: Any, pairs: Sequence[tuple[str, str]], batch_size: int, max_length: int):
    features = [tokenize_chat(tokenizer, ChatExample.from_pair(p, r), max_length) for p, r in pairs]
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    pad = tokenizer.pad_token_id
    for start in range(0, len(order), batch_size):
        yield collate([features[i] for i in order[start : start + batch_size]], pad)


def benign_nll(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    *,
    batch_size: int = 16,
    max_length: int = 256,
) -> NllResult:
    """Token-weighted mean NLL of the reference answers in ``pairs`` ((prompt, reference) tuples)."""
    import torch

    device = next(model.parameters()).device
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in _batches(tokenizer, pairs, batch_size, max_length):
                batch = {k: v.to(device) for k, v in batch.items()}
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                logits = logits[:, :-1].float()
                labels = batch["labels"][:, 1:]
                loss = torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.size(-1)),
                    labels.reshape(-1),
                    ignore_index=IGNORE_INDEX,
                    reduction="sum",
                )
                total += loss.item()
                count += int((labels != IGNORE_INDEX).sum())
    finally:
        model.train(was_training)
    nll = total / count if count else float("nan")
    return NllResult(nll, math.exp(nll) if count else float("nan"), count, len(pairs))


def kl_from_reference(
    model: Any,
    reference: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    *,
    batch_size: int = 16,
    max_length: int = 256,
) -> float:
    """Mean per-answer-token KL(P_reference || P_model) on ``pairs``; both models must share the tokenizer."""
    import torch

    device = next(model.parameters()).device
    ref_device = next(reference.parameters()).device
    total, count = 0.0, 0
    states = (model.training, reference.training)
    model.eval()
    reference.eval()
    try:
        with torch.inference_mode():
            for batch in _batches(tokenizer, pairs, batch_size, max_length):
                mask = batch["labels"][:, 1:] != IGNORE_INDEX
                logp = (
                    model(
                        input_ids=batch["input_ids"].to(device),
                        attention_mask=batch["attention_mask"].to(device),
                    )
                    .logits[:, :-1]
                    .float()
                    .log_softmax(-1)
                )
                logq = (
                    reference(
                        input_ids=batch["input_ids"].to(ref_device),
                        attention_mask=batch["attention_mask"].to(ref_device),
                    )
                    .logits[:, :-1]
                    .float()
                    .log_softmax(-1)
                    .to(device)
                )
                kl = (logq.exp() * (logq - logp)).sum(-1)
                total += kl[mask.to(device)].sum().item()
                count += int(mask.sum())
    finally:
        model.train(states[0])
        reference.train(states[1])
    return total / count if count else float("nan")
