"""Running the chat template's shared start once per batch, against running it for every row, on the default
model: in generation and in one training step (forward and backward of the loss).

    python benchmarks/shared_prefix.py     # 64 prompts x 64 new tokens; a batch of 8 examples; 2 rounds

Every prompt starts with the template's system turn and user header (it prints how many tokens that is).
Generation runs that once per batch and repeats its KV cache for every row (``evals/generation.py``); the
training loss does the same for a batch's unlabelled shared start (``label_logits`` in ``train/loop.py``).
"plain" is the same code with the shared length forced to 0, which is what both did before. The two alternate,
in one process, so machine noise hits both.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="alternations of shared and plain")
    parser.add_argument("--train-repeats", type=int, default=3, help="training steps timed per round and way")
    args = parser.parse_args()

    import torch

    from tamperlab.data.sets import load_builtin
    from tamperlab.defenses.safety_sft import refusal_for
    from tamperlab.evals import generation
    from tamperlab.models import load_model
    from tamperlab.train import loop
    from tamperlab.train.examples import ChatExample, collate, tokenize_chat

    loaded = load_model()
    model, tok = loaded.model, loaded.tokenizer
    print(f"model: {loaded.name} ({loaded.device}, {loaded.dtype}), torch threads: {torch.get_num_threads()}")

    half = args.prompts // 2
    prompts = (
        load_builtin("harmful").select("test").texts()[:half]
        + load_builtin("harmless").select("test").texts()[: args.prompts - half]
    )
    # a safety-sft-like batch: harmless answers and refusals
    helpful = load_builtin("harmless").select("train").prompts[:4]
    harmful = load_builtin("harmful").select("train").texts()[:4]
    examples = [ChatExample.from_pair(p.text, p.reference) for p in helpful]
    examples += [ChatExample.from_pair(p, refusal_for(p)) for p in harmful]
    batch = collate([tokenize_chat(tok, e) for e in examples], tok.pad_token_id)

    def gen() -> list[str]:
        return generation.generate(model, tok, prompts, max_new_tokens=args.new_tokens)

    def step() -> float:
        model.train()
        loss = loop.causal_lm_loss(model, batch)
        loss.backward()
        model.zero_grad(set_to_none=True)
        return loss.item()

    ways = {
        "shared": (generation.shared_prefix_length, loop._unlabelled_shared_prefix),
        "plain": (lambda sequences: 0, lambda batch: 0),
    }
    gen_times: dict[str, list[float]] = {w: [] for w in ways}
    step_times: dict[str, list[float]] = {w: [] for w in ways}
    texts: dict[str, list[str]] = {}
    losses: dict[str, float] = {}
    real = generation.shared_prefix_length, loop._unlabelled_shared_prefix
    try:
        for _ in range(args.rounds):
            for way, (gen_prefix, train_prefix) in ways.items():
                generation.shared_prefix_length, loop._unlabelled_shared_prefix = gen_prefix, train_prefix
                texts[way] = _timed(gen, gen_times[way])
                for _ in range(args.train_repeats):
                    losses[way] = _timed(step, step_times[way])
    finally:
        generation.shared_prefix_length, loop._unlabelled_shared_prefix = real

    from tamperlab.models.chat import format_prompt

    encoded = [tok(format_prompt(tok, p), add_special_tokens=False)["input_ids"] for p in prompts]
    shared = loop._unlabelled_shared_prefix(batch)
    print(
        f"generation: {len(prompts)} prompts, {args.new_tokens} new tokens, greedy, one batch; prompts "
        f"{statistics.mean(len(e) for e in encoded):.1f} tokens on average, "
        f"{generation.shared_prefix_length(encoded)} shared"
    )
    print(
        f"training: {tuple(batch['input_ids'].shape)} batch, {int(batch['attention_mask'].sum())} real "
        f"tokens, {shared} shared unlabelled tokens per row"
    )
    for way in ways:
        print(
            f"{way:<7} generation {_fmt(gen_times[way])}   training step {_fmt(step_times[way])}"
            f"   loss {losses[way]:.6f}"
        )
    same = sum(a == b for a, b in zip(texts["shared"], texts["plain"], strict=True))
    print(
        f"plain/shared: generation {_ratio(gen_times)}, training step {_ratio(step_times)}; "
        f"identical text {same}/{len(prompts)}; loss difference {abs(losses['shared'] - losses['plain']):.2e}"
    )


def _timed(fn: Callable[[], Any], into: list[float]) -> Any:
    start = time.perf_counter()
    out = fn()
    into.append(time.perf_counter() - start)
    return out


def _fmt(times: list[float]) -> str:
    return f"median {statistics.median(times):6.2f} s (" + ", ".join(f"{t:.2f}" for t in times) + ")"


def _ratio(times: dict[str, list[float]]) -> str:
    return f"{statistics.median(times['plain']) / statistics.median(times['shared']):.2f}x"


if __name__ == "__main__":
    main()
