"""Batched generation vs one prompt at a time and vs transformers' `generate` in batches, and `tamperlab eval`
wall time, on the default model.

    python benchmarks/generation.py            # 64 prompts, 64 new tokens, one batch; then the eval timing
    python benchmarks/generation.py --no-eval  # only the generation comparison

The second baseline is what a user would otherwise write (and what tamperlab did before its own loop):
``model.generate`` on length-sorted, left-padded batches of ``--hf-batch-size`` prompts.

Targets: batched >= 5x faster than one at a time with identical text; `tamperlab eval` on
100 harmful + 100 harmless + 100 over-refusal prompts at 64 new tokens <= 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=128, help="tamperlab's batches (its default)")
    parser.add_argument("--hf-batch-size", type=int, default=16, help="batches of the transformers baseline")
    parser.add_argument("--no-eval", action="store_true", help="skip the `tamperlab eval` timing")
    args = parser.parse_args()

    from tamperlab.data.sets import load_builtin
    from tamperlab.evals.generation import generate
    from tamperlab.models import load_model

    loaded = load_model()
    half = args.prompts // 2
    prompts = (
        load_builtin("harmful").select("test").texts()[:half]
        + load_builtin("harmless").select("test").texts()[: args.prompts - half]
    )
    print(
        f"model: {loaded.name} ({loaded.num_parameters / 1e6:.1f}M params, {loaded.device}, {loaded.dtype}), "
        f"torch threads: {torch.get_num_threads()}"
    )
    print(f"{len(prompts)} prompts, {args.new_tokens} new tokens, greedy")

    start = time.perf_counter()
    batched = generate(
        loaded.model, loaded.tokenizer, prompts, max_new_tokens=args.new_tokens, batch_size=args.batch_size
    )
    t_batched = time.perf_counter() - start

    start = time.perf_counter()
    single = [
        generate(loaded.model, loaded.tokenizer, [p], max_new_tokens=args.new_tokens, batch_size=1)[0]
        for p in prompts
    ]
    t_single = time.perf_counter() - start

    start = time.perf_counter()
    hf = hf_generate(loaded, prompts, args.new_tokens, args.hf_batch_size)
    t_hf = time.perf_counter() - start

    same = sum(a == b for a, b in zip(batched, single, strict=True))
    same_hf = sum(a == b for a, b in zip(batched, hf, strict=True))
    for label, wall in (
        ("one at a time", t_single),
        (f"transformers batch {args.hf_batch_size}", t_hf),
        (f"tamperlab batch {args.batch_size}", t_batched),
    ):
        print(f"{label:<24}: {wall:7.1f} s  ({wall / len(prompts):.2f} s/prompt)")
    print(f"speed-up vs one at a time : {t_single / t_batched:5.1f}x   (target >= 5x)")
    print(f"speed-up vs transformers  : {t_hf / t_batched:5.1f}x")
    print(f"identical text: {same}/{len(prompts)} (one at a time), {same_hf}/{len(prompts)} (transformers)")
    for a, b in zip(batched, single, strict=True):
        if a != b:
            print(f"  differs:\n    batched: {a!r}\n    single : {b!r}")
            break

    if args.no_eval:
        return
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "tamperlab",
            "eval",
            "--store",
            os.path.join(tmp, "store.sqlite"),
            "eval.harmful.split=all",
            "eval.harmful.limit=100",
            "eval.harmless.split=all",
            "eval.harmless.limit=100",
            "eval.overrefusal.split=all",
            "eval.overrefusal.limit=100",
            "eval.max_new_tokens=64",
        ]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env={**os.environ, "TAMPERLAB_QUIET": "1"})
        wall = time.perf_counter() - start
    print(
        f"tamperlab eval, 100 harmful + 100 harmless + 100 over-refusal prompts (the over-refusal set has "
        f"{len(load_builtin('overrefusal'))}), 64 new tokens: {wall:.0f} s wall (target <= 180 s)"
    )


def hf_generate(loaded, prompts: list[str], new_tokens: int, batch_size: int) -> list[str]:
    """transformers' greedy ``generate`` on length-sorted, left-padded batches, cut at the end token."""
    from tamperlab.models.chat import format_prompt

    tok, model = loaded.tokenizer, loaded.model
    encoded = [tok(format_prompt(tok, p), add_special_tokens=False)["input_ids"] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    out = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in chunk)
        ids = torch.tensor([[tok.pad_token_id] * (width - len(encoded[i])) + encoded[i] for i in chunk])
        mask = torch.arange(width)[None, :] >= torch.tensor([width - len(encoded[i]) for i in chunk])[:, None]
        with torch.inference_mode():
            new = model.generate(
                input_ids=ids,
                attention_mask=mask.long(),
                max_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )[:, width:]
        for row, i in enumerate(chunk):
            tokens = new[row].tolist()
            cut = tokens.index(tok.eos_token_id) if tok.eos_token_id in tokens else len(tokens)
            out[i] = tok.decode(tokens[:cut], skip_special_tokens=True)
    return out


if __name__ == "__main__":
    main()
