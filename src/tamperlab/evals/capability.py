"""Capability signals: NLL on held-out benign reference responses, and KL from a reference model.

Both are teacher-forced on the same tokenized conversations (benign prompt + the project's reference answer),
taking only the assistant answer's tokens into account:

- ``benign_nll``: mean negative log-likelihood per answer token (token-weighted), and its perplexity exp(NLL).
  A modification that keeps the model useful keeps this close to its parent's.
- ``kl_from_reference``: mean over answer tokens of KL(P_reference || P_model) of the next-token
  distributions, the measure abliteration tools report to show that an edit kept the model's behaviour on
  harmless input.

:func:`capability` computes both in one pass: the model's forward pass on a pair serves its NLL and its KL. A
:class:`Reference` keeps the reference model's log-probabilities, so evaluating many milestones against one
parent runs the parent once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tamperlab.train.examples import ChatExample, collate, tokenize_chat
from tamperlab.train.loop import label_logits


@dataclass(frozen=True)
class NllResult:
    nll: float
    perplexity: float
    tokens: int
    responses: int


@dataclass(frozen=True)
class CapabilityResult:
    """NLL of the model on every pair; KL from the reference on the first ``kl_responses`` pairs (None when
    no reference was given)."""

    nll: NllResult
    kl: float | None
    kl_responses: int


class Reference:
    """A frozen reference model for KL that computes its answer-position log-probabilities once per batch.

    A run compares every milestone of an arm with the same parent on the same pairs; the parent's part of the
    KL is the same each time, so it is kept (on the reference's device: answer tokens × vocabulary × 4 bytes)
    rather than recomputed.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self._kept: dict[str, Any] = {}

    def logprobs(self, batch: dict[str, Any]) -> Any:
        """log P_reference at the positions that predict a label (see :func:`label_logits`), in fp32."""
        import hashlib

        key = hashlib.sha256(batch["input_ids"].cpu().numpy().tobytes()).hexdigest()
        key += hashlib.sha256(batch["labels"].cpu().numpy().tobytes()).hexdigest()
        if key not in self._kept:
            self._kept[key] = label_logits(self.model, _on(batch, self.model))[0].float().log_softmax(-1)
        return self._kept[key]


def _batches(tokenizer: Any, pairs: Sequence[tuple[str, str]], batch_size: int, max_length: int) -> Iterator:
    features = [tokenize_chat(tokenizer, ChatExample.from_pair(p, r), max_length) for p, r in pairs]
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    pad = tokenizer.pad_token_id
    for start in range(0, len(order), batch_size):
        yield collate([features[i] for i in order[start : start + batch_size]], pad)


def capability(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    *,
    reference: Any = None,
    kl_limit: int | None = None,
    batch_size: int = 16,
    max_length: int = 256,
) -> CapabilityResult:
    """Token-weighted mean NLL of the reference answers in ``pairs`` ((prompt, reference) tuples) and, when
    ``reference`` is given (a model sharing the tokenizer, or a :class:`Reference` that keeps its results),
    mean per-answer-token KL(P_reference || P_model) on the first ``kl_limit`` pairs (all when None or 0)."""
    import torch
    import torch.nn.functional as F

    n_kl = 0 if reference is None else (min(kl_limit, len(pairs)) if kl_limit else len(pairs))
    if reference is not None and not isinstance(reference, Reference):
        reference = Reference(reference)
    models = [model] if reference is None else [model, reference.model]
    states = [m.training for m in models]
    nll_total, kl_total = 0.0, 0.0
    nll_count, kl_count = 0, 0
    for m in models:
        m.eval()
    try:
        with torch.inference_mode():
            # The KL pairs first, in batches of their own: one forward pass of the model gives both metrics.
            for group, with_kl in ((pairs[:n_kl], True), (pairs[n_kl:], False)):
                for batch in _batches(tokenizer, group, batch_size, max_length) if group else ():
                    logits, labels = label_logits(model, _on(batch, model))
                    logits = logits.float()
                    nll_total += F.cross_entropy(logits, labels, reduction="sum").item()
                    nll_count += labels.numel()
                    if with_kl:
                        logq = reference.logprobs(batch).to(logits.device)
                        kl_total += (logq.exp() * (logq - logits.log_softmax(-1))).sum().item()
                        kl_count += labels.numel()
    finally:
        for m, state in zip(models, states, strict=True):
            m.train(state)
    nll = nll_total / nll_count if nll_count else float("nan")
    result = NllResult(nll, _perplexity(nll) if nll_count else float("nan"), nll_count, len(pairs))
    kl = None if reference is None else (kl_total / kl_count if kl_count else float("nan"))
    return CapabilityResult(result, kl, n_kl)


def _perplexity(nll: float) -> float:
    """exp(NLL), infinite past float range (a model wrecked by training has an NLL in the thousands)."""
    try:
        return math.exp(nll)
    except OverflowError:
        return math.inf


def _on(batch: dict[str, Any], model: Any) -> dict[str, Any]:
    device = next(model.parameters()).device
    return {k: v.to(device) for k, v in batch.items()}
