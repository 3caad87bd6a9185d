"""Log-likelihood of continuations, with lm-evaluation-harness's tokenisation conventions, fast on a CPU.

:func:`loglikelihoods` gives, for each ``(context, continuation)`` request, the number lm-eval's ``HFLM``
(0.4.x) computes: the same tokens (``_encode_pair``: trailing whitespace of the context moves to the
continuation, the whole string is tokenised and the continuation's tokens are what follows the context's own
tokens; an empty context is replaced by the prefix token; the tokenizer's default special tokens, except when
the string already starts with that token; left truncation to ``max_length + 1`` tokens), and the same sum of
fp32 log-softmax values at the continuation's positions. It gets there with less work:

- requests whose (possibly truncated) context tokens are identical run that context once, and every
  continuation of it is scored from its KV cache; a one-token continuation (MMLU's " A") costs nothing beyond
  the context pass;
- distinct contexts are sorted by length and batched, right-padded, and the leading tokens all contexts of a
  batch share (a few-shot primer) run once for the batch;
- the unembedding and softmax run only at the positions that predict a continuation token.

:func:`generate_until` is lm-eval's ``generate_until`` for greedy decoding on raw text: prompts tokenised
without a chat template, left-truncated to leave room for the answer, greedy until end-of-sequence or
``max_new_tokens``, then cut at the first stop string. Rows leave the batch as soon as they have ended or
produced a stop string, which does not change their text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tamperlab.errors import DataError
from tamperlab.models.kv_cache import cache_arg, cache_of

DEFAULT_MAX_LENGTH = 2048
"""lm-eval's fallback context length when neither the model config nor the tokenizer states one."""

_TOKENIZER_INFINITY = 1000000000000000019884624838656
_CONTINUATION_PASSES = 4
"""A batch of contexts holds up to this many times ``batch_size`` multi-token continuations, scored in passes
of ``batch_size`` rows of similar length (so little of a pass is padding)."""
_MAX_PADDING = 0.25
_MIN_BATCH_TOKENS = 512
_LOGPROB_CHUNK = 512  # rows of (rows, vocab) log-softmax computed at once, to bound memory


@dataclass(frozen=True)
class LoglikResult:
    """Sum of log P(continuation token | everything before it) over the continuation's tokens; ``greedy``:
    every continuation token was the model's argmax (lm-eval's ``is_greedy``); ``tokens``: how many."""

    logprob: float
    greedy: bool
    tokens: int


# ---------------------------------------------------------------------------------------------- tokenisation


class _Encoder:
    """lm-eval's ``HFLM.tok_encode`` (default ``add_bos_token=None``) with a cache of the strings seen."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.prefix_token_id = prefix_token_id(tokenizer)
        token = self.prefix_token_id
        self.prefix_text = tokenizer.decode(token) if token is not None else None
        self._cache: dict[tuple[str, bool | None], list[int]] = {}

    def encode_many(self, strings: Sequence[str], add_special_tokens: bool | None = None) -> list[list[int]]:
        """Token ids of each string: the tokenizer's default special tokens unless the string starts with the
        prefix token's text (then none), or ``add_special_tokens`` when it is given."""
        todo: dict[bool | None, list[str]] = {}
        for s in strings:
            flag = add_special_tokens
            if flag is None and self.prefix_text and s.startswith(self.prefix_text):
                flag = False
            if (s, flag) not in self._cache:
                todo.setdefault(flag, []).append(s)
        for flag, group in todo.items():
            unique = list(dict.fromkeys(group))
            kwargs = {} if flag is None else {"add_special_tokens": flag}
            for s, ids in zip(unique, self.tokenizer(unique, **kwargs)["input_ids"], strict=True):
                self._cache[(s, flag)] = list(ids)
        out = []
        for s in strings:
            flag = add_special_tokens
            if flag is None and self.prefix_text and s.startswith(self.prefix_text):
                flag = False
            out.append(self._cache[(s, flag)])
        return out


def prefix_token_id(tokenizer: Any) -> int | None:
    """lm-eval's ``prefix_token_id``: the token an empty context is replaced by (BOS, else EOS)."""
    if tokenizer.bos_token_id is not None:
        return tokenizer.bos_token_id
    return tokenizer.eos_token_id


def encode_requests(
    tokenizer: Any, requests: Sequence[tuple[str, str]], *, _encoder: _Encoder | None = None
) -> list[tuple[list[int], list[int]]]:
    """(context tokens, continuation tokens) of each request, as lm-eval's ``TemplateLM.loglikelihood`` and
    ``_encode_pair`` make them.

    An empty context becomes the prefix token (or, when the continuation starts with that very token, the
    continuation's first token). A context of whitespace only, on which lm-eval fails an assertion, is treated
    the same way after its whitespace has moved to the continuation.

    Raises:
        DataError: a continuation with no tokens of its own.
    """
    enc = _encoder or _Encoder(tokenizer)
    pairs: list[tuple[str, str]] = []
    for context, continuation in requests:
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces > 0:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        pairs.append((context, continuation))
    nonempty = [i for i, (c, _) in enumerate(pairs) if c]
    empty = [i for i, (c, _) in enumerate(pairs) if not c]
    whole = enc.encode_many([pairs[i][0] + pairs[i][1] for i in nonempty])
    ctx = enc.encode_many([pairs[i][0] for i in nonempty])
    bare = enc.encode_many([pairs[i][1] for i in empty], add_special_tokens=False)
    out: list[tuple[list[int], list[int]]] = [([], [])] * len(pairs)
    for i, w, c in zip(nonempty, whole, ctx, strict=True):
        out[i] = (c, w[len(c) :])
    for i, cont in zip(empty, bare, strict=True):
        if enc.prefix_token_id is None:
            raise DataError(f"request {i}: empty context, and the tokenizer has no BOS or EOS token")
        if cont and cont[0] == enc.prefix_token_id:
            out[i] = (cont[:1], cont[1:])
        else:
            out[i] = ([enc.prefix_token_id], cont)
    for i, (c, cont) in enumerate(out):
        if not cont:
            raise DataError(f"request {i}: continuation {requests[i][1]!r} has no tokens after its context")
        if not c:
            # only a tokenizer that encodes a non-empty string to nothing gets here
            raise DataError(f"request {i}: context {requests[i][0]!r} has no tokens")
    return out


def resolve_max_length(model: Any, tokenizer: Any) -> int:
    """lm-eval's default ``max_length``: the model config's ``n_positions`` / ``max_position_embeddings`` /
    ``n_ctx`` (of its ``text_config`` if any), else the tokenizer's ``model_max_length``, else 2048."""
    config = getattr(model, "config", None)
    cfg = getattr(config, "text_config", None) or config
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(cfg, attr, None)
        if value is not None:
            return int(value)
    limit = getattr(tokenizer, "model_max_length", None)
    if limit is not None and limit != _TOKENIZER_INFINITY:
        return int(limit)
    return DEFAULT_MAX_LENGTH


# ------------------------------------------------------------------------------------------------- forward


class _Runner:
    """Forward passes that return log-probabilities only at the positions asked for.

    For the architectures whose logits are exactly ``lm_head(last hidden state)`` (``PLAIN_UNEMBEDDING``) the
    decoder runs alone and the unembedding is applied to the selected hidden states; other models run whole
    and their logits are selected.
    """

    def __init__(self, model: Any) -> None:
        from tamperlab.train.loop import PLAIN_UNEMBEDDING

        self.model = model
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        plain = getattr(getattr(base, "config", None), "model_type", None) in PLAIN_UNEMBEDDING
        self.decoder = base.get_decoder() if plain else None
        self.head = base.get_output_embeddings() if plain else None
        self.device = next(model.parameters()).device

    def __call__(
        self, ids: Any, mask: Any, positions: Any, cache: Any, rows: Any, cols: Any, use_cache: bool
    ) -> tuple[Any, Any]:
        """Run ``ids`` (after ``cache``, if any) and return the (fp32) log-softmax at ``(rows, cols)`` and the
        cache (None unless ``use_cache``)."""
        import torch.nn.functional as F

        kwargs = {"input_ids": ids, "attention_mask": mask, "position_ids": positions, "use_cache": use_cache}
        if self.decoder is not None:
            out = self.decoder(**kwargs, **cache_arg(self.decoder, cache))
            selected = self.head(out.last_hidden_state[rows, cols])
        else:
            out = self.model(**kwargs, **cache_arg(self.model, cache))
            selected = out.logits[rows, cols]
        logprobs = [
            F.log_softmax(selected[i : i + _LOGPROB_CHUNK].float(), dim=-1)
            for i in range(0, selected.shape[0], _LOGPROB_CHUNK)
        ]
        import torch

        cache = cache_of(out) if use_cache else None
        return (torch.cat(logprobs) if logprobs else selected.float()), cache

    def prefix_cache(self, ids: Any) -> Any:
        """The KV cache of one row of leading tokens (no unembedding where it can be avoided)."""
        if self.decoder is not None:
            return cache_of(self.decoder(input_ids=ids, use_cache=True))
        return cache_of(self.model(input_ids=ids, use_cache=True, logits_to_keep=1))


@dataclass
class _Unit:
    """One context run once, and the requests scored from it (each a continuation's tokens)."""

    context: tuple[int, ...]
    requests: list[int]
    continuations: list[list[int]]

    @property
    def long_rows(self) -> int:
        return sum(len(c) > 1 for c in self.continuations)


def _units(encoded: Sequence[tuple[list[int], list[int]]], max_length: int, max_rows: int) -> list[_Unit]:
    """Group requests by the tokens the model sees before their continuation (after lm-eval's left
    truncation); a group with more than ``max_rows`` multi-token continuations is split."""
    groups: dict[tuple[int, ...], list[int]] = {}
    conts: list[list[int]] = []
    for i, (ctx, cont) in enumerate(encoded):
        if len(cont) > max_length:
            raise DataError(
                f"request {i}: continuation of {len(cont)} tokens exceeds max_length={max_length}"
            )
        whole = (ctx + cont)[-(max_length + 1) :]
        groups.setdefault(tuple(whole[: len(whole) - len(cont)]), []).append(i)
        conts.append(cont)
    units = []
    for context, members in groups.items():
        single = [i for i in members if len(conts[i]) == 1]
        multi = [i for i in members if len(conts[i]) > 1]
        chunks = [multi[k : k + max_rows] for k in range(0, len(multi), max_rows)] or [[]]
        chunks[0] = single + chunks[0]
        units.extend(_Unit(context, chunk, [conts[i] for i in chunk]) for chunk in chunks)
    return units


def _batches(units: list[_Unit], batch_size: int, max_rows: int) -> list[list[_Unit]]:
    """Units sorted by context length (longest first, as lm-eval) and packed so that a batch has at most
    ``batch_size`` contexts and at most ``max_rows`` multi-token continuations; a batch that already holds
    :data:`_MIN_BATCH_TOKENS` context tokens also ends where the next context is so much shorter that its
    padding would pass :data:`_MAX_PADDING` (as in a small subset of a task)."""
    order = sorted(units, key=lambda u: (-len(u.context), u.context))
    batches: list[list[_Unit]] = []
    current: list[_Unit] = []
    rows = tokens = 0
    for unit in order:
        if current and (
            len(current) >= batch_size
            or rows + unit.long_rows > max_rows
            or (
                tokens >= _MIN_BATCH_TOKENS
                and len(unit.context) < (1 - _MAX_PADDING) * len(current[0].context)
            )
        ):
            batches.append(current)
            current, rows, tokens = [], 0, 0
        current.append(unit)
        rows += unit.long_rows
        tokens += len(unit.context)
    if current:
        batches.append(current)
    return batches


def loglikelihoods(
    model: Any,
    tokenizer: Any,
    requests: Sequence[tuple[str, str]],
    *,
    batch_size: int = 32,
    max_length: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> list[LoglikResult]:
    """lm-eval's ``loglikelihood`` of every ``(context, continuation)`` request, in input order.

    Args:
        model, tokenizer: a causal LM (any device; evaluated in its own dtype, log-softmax in fp32) and its
            tokenizer.
        requests: (context, continuation) strings; the continuation carries its delimiter (" A").
        batch_size: the most rows per forward pass: distinct contexts, or multi-token continuations scored
            together from their contexts' caches.
        max_length: the model's context limit for lm-eval's left truncation; None: lm-eval's default
            (see :func:`resolve_max_length`).
        on_progress: called with the number of requests finished after each batch.

    Raises:
        DataError: a continuation without tokens, or longer than ``max_length``.
    """
    import torch

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    if not requests:
        return []
    limit = max_length or resolve_max_length(model, tokenizer)
    encoded = encode_requests(tokenizer, requests)
    runner = _Runner(model)
    results: list[LoglikResult | None] = [None] * len(requests)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            rows = batch_size * _CONTINUATION_PASSES
            for batch in _batches(_units(encoded, limit, rows), batch_size, rows):
                _score_batch(runner, batch, results, batch_size)
                if on_progress is not None:
                    on_progress(sum(len(u.requests) for u in batch))
    finally:
        model.train(was_training)
    return [r for r in results if r is not None]


def _score_batch(
    runner: _Runner, batch: list[_Unit], results: list[LoglikResult | None], rows_per_pass: int
) -> None:
    """Score every request of ``batch``: one pass over its contexts (a shared prefix once), then the
    continuations of more than one token, longest first, in passes of ``rows_per_pass`` rows that read the
    contexts' cache."""
    import torch

    from tamperlab.evals.generation import shared_prefix_length

    device = runner.device
    contexts = [u.context for u in batch]
    shared = shared_prefix_length(contexts)
    own = [c[shared:] for c in contexts]
    n, width = len(own), max(len(c) for c in own)
    need_cache = any(u.long_rows for u in batch)
    ids = torch.zeros((n, width), dtype=torch.long)
    mask = torch.zeros((n, shared + width), dtype=torch.long)
    mask[:, :shared] = 1
    for row, seq in enumerate(own):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, shared : shared + len(seq)] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (shared + torch.arange(width, device=device)).expand(n, width)
    cache = None
    if shared:
        prefix = torch.tensor([contexts[0][:shared]], dtype=torch.long, device=device)
        cache = runner.prefix_cache(prefix)
        cache.batch_repeat_interleave(n)
    last = torch.tensor([len(seq) - 1 for seq in own], device=device)
    # No attention mask: with right padding and causal attention a real position never sees a pad, and a
    # plain causal pass is faster than a masked one (the continuation pass masks the padded cache entries).
    first_lp, cache = runner(
        ids, None, positions, cache, torch.arange(n, device=device), last, use_cache=need_cache
    )
    first_tok = torch.tensor([cont[0] for u in batch for cont in u.continuations], device=device)
    ctx_row = torch.tensor([row for row, u in enumerate(batch) for _ in u.continuations], device=device)
    first_score = first_lp[ctx_row, first_tok]
    first_greedy = first_lp.argmax(-1)[ctx_row] == first_tok

    long = [(row, k) for row, u in enumerate(batch) for k, c in enumerate(u.continuations) if len(c) > 1]
    long.sort(key=lambda rk: -len(batch[rk[0]].continuations[rk[1]]))  # similar lengths share a pass
    rest: dict[tuple[int, int], tuple[Any, bool]] = {}
    for sub in range(0, len(long), rows_per_pass):
        rest.update(_score_continuations(runner, batch, long[sub : sub + rows_per_pass], cache, mask))

    flat = 0
    for row, unit in enumerate(batch):
        for k, (i, cont) in enumerate(zip(unit.requests, unit.continuations, strict=True)):
            score, ok = first_score[flat : flat + 1], bool(first_greedy[flat])
            if (row, k) in rest:
                tail, tail_ok = rest[(row, k)]
                score, ok = torch.cat([score, tail]), ok and tail_ok
            results[i] = LoglikResult(logprob=float(score.sum()), greedy=ok, tokens=len(cont))
            flat += 1


def _score_continuations(
    runner: _Runner, batch: list[_Unit], long: list[tuple[int, int]], cache: Any, mask: Any
) -> dict[tuple[int, int], tuple[Any, bool]]:
    """Log-probabilities of tokens 2.. of the continuations ``long`` ((context row, continuation) pairs)
    given their contexts' ``cache`` (left untouched: the rows needed are copied) and attention ``mask``."""
    import copy

    import torch

    device = runner.device
    conts = [batch[row].continuations[k] for row, k in long]
    cwidth = max(len(c) for c in conts) - 1
    cids = torch.zeros((len(long), cwidth), dtype=torch.long)
    cmask = torch.zeros((len(long), cwidth), dtype=torch.long)
    for r, c in enumerate(conts):
        cids[r, : len(c) - 1] = torch.tensor(c[:-1])
        cmask[r, : len(c) - 1] = 1
    src = torch.tensor([row for row, _ in long], device=device)
    rows_cache = copy.copy(cache)
    rows_cache.layers = [copy.copy(layer) for layer in cache.layers]
    rows_cache.batch_select_indices(src)  # rebinds each copied layer's tensors; the original keeps its own
    full_mask = torch.cat([mask[src], cmask.to(device)], dim=1)
    lengths = torch.tensor([len(batch[row].context) for row, _ in long], device=device)
    cpos = lengths[:, None] + torch.arange(cwidth, device=device)
    sel_rows = torch.tensor([r for r, c in enumerate(conts) for _ in range(len(c) - 1)], device=device)
    sel_cols = torch.tensor([j for c in conts for j in range(len(c) - 1)], device=device)
    targets = torch.tensor([t for c in conts for t in c[1:]], device=device)
    lp, _ = runner(cids.to(device), full_mask, cpos, rows_cache, sel_rows, sel_cols, use_cache=False)
    scores = lp.gather(1, targets[:, None]).squeeze(1)
    greedy = lp.argmax(-1) == targets
    out, start = {}, 0
    for key, c in zip(long, conts, strict=True):
        end = start + len(c) - 1
        out[key] = (scores[start:end], bool(greedy[start:end].all()))
        start = end
    return out


# ---------------------------------------------------------------------------------------------- generation


def generate_until(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    until: Sequence[str],
    max_new_tokens: int = 256,
    batch_size: int = 32,
    max_length: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> list[str]:
    """lm-eval's greedy ``generate_until`` on raw-text prompts, in input order.

    Each prompt is tokenised as lm-eval does (no chat template; the tokenizer's default special tokens unless
    the prompt starts with the BOS text), left-truncated to ``max_length - max_new_tokens`` tokens, and
    decoded greedily until one of the model's end-of-sequence tokens (its generation config's, else the
    tokenizer's) or ``max_new_tokens``. The text (special tokens skipped) is cut before the first occurrence
    of any stop string; the tokenizer's EOS text is a stop string too, as in lm-eval.

    Args:
        until: stop strings (lm-eval's ``until``).
        max_new_tokens: lm-eval's ``max_gen_toks`` (256 by default there too).
        batch_size: the most prompts per batch (sorted by length; their common leading tokens run once).
        max_length: the model's context limit; None: lm-eval's default (:func:`resolve_max_length`).
        on_progress: called with the number of prompts finished after each batch.
    """
    import torch

    from tamperlab.evals.generation import shared_prefix_length

    if not prompts:
        return []
    limit = max_length or resolve_max_length(model, tokenizer)
    room = limit - max_new_tokens
    if room <= 0:
        raise ValueError(f"max_new_tokens {max_new_tokens} leaves no room for a prompt within {limit} tokens")
    stops = list(until)
    if tokenizer.eos_token_id is not None:
        eos_text = tokenizer.decode(tokenizer.eos_token_id, skip_special_tokens=False)
        if eos_text not in stops:
            stops.append(eos_text)
    stops = [s for s in stops if s]
    bos = getattr(tokenizer, "bos_token", None)
    encoded = []
    for p in prompts:
        kwargs = {"add_special_tokens": False} if bos and p.startswith(bos) else {}
        encoded.append(list(tokenizer(p, **kwargs)["input_ids"])[-room:])
    order = sorted(range(len(encoded)), key=lambda i: (-len(encoded[i]), i))
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    eos = _generation_eos(model, tokenizer)
    outputs = [""] * len(prompts)
    was_training = model.training
    model.eval()
    try:
        n_batches = max(1, math.ceil(len(order) / batch_size))
        size = max(1, math.ceil(len(order) / n_batches))
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
                tokens = _greedy_until(
                    model,
                    tokenizer,
                    ids.to(device),
                    mask.to(device),
                    prefix.to(device),
                    max_new_tokens,
                    eos,
                    stops,
                )
            for row, i in enumerate(chunk):
                outputs[i] = cut_at_stops(tokenizer.decode(tokens[row], skip_special_tokens=True), stops)
            if on_progress is not None:
                on_progress(len(chunk))
    finally:
        model.train(was_training)
    return outputs


def cut_at_stops(text: str, stops: Sequence[str]) -> str:
    """``text`` before the first occurrence of any (non-empty) stop string (lm-eval's post-processing)."""
    for stop in stops:
        if stop:
            text = text.split(stop)[0]
    return text


def _generation_eos(model: Any, tokenizer: Any) -> list[int]:
    """The ids that end a row: the generation config's ``eos_token_id`` (what ``model.generate``, and so
    lm-eval, stops on), else the tokenizer's EOS."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        return [configured]
    if configured:
        return sorted(set(configured))
    return [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []


def _greedy_until(
    model: Any,
    tokenizer: Any,
    ids: Any,
    mask: Any,
    prefix: Any,
    max_new_tokens: int,
    eos: list[int],
    stops: list[str],
) -> list[list[int]]:
    """Greedy tokens after ``prefix`` + each left-padded row of ``ids``, each cut before its first EOS; a row
    also leaves the batch once its decoded text holds a stop string (the text is cut there later, so the
    tokens after it would not change it)."""
    from tamperlab.evals.generation import greedy_tokens

    def holds_stop(tokens: list[int]) -> bool:
        text = tokenizer.decode(tokens, skip_special_tokens=True)
        return any(s in text for s in stops)

    return greedy_tokens(model, ids, mask, max_new_tokens, eos, prefix, done=holds_stop)
