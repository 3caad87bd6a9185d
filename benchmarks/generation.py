"""Batched generation vs one-prompt-at-a-time `generate`, and `tamperlab eval` wall time, on the default model.

    python benchmarks/generation.py            # 64 prompts, 64 new tokens, batch 32; then the eval timing
    python benchmarks/generation.py --no-eval  # only the generation comparison

Targets (issue "Core"): batched >= 5x faster than one at a time with identical text; `tamperlab eval` on
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
    parser.add_argument("--batch-size", type=int, default=32)
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

    same = sum(a == b for a, b in zip(batched, single, strict=True))
    print(f"one at a time : {t_single:7.1f} s  ({t_single / len(prompts):.2f} s/prompt)")
    print(f"batched ({args.batch_size:>3}) : {t_batched:7.1f} s  ({t_batched / len(prompts):.2f} s/prompt)")
    print(f"speed-up      : {t_single / t_batched:7.1f}x   (target >= 5x)")
    print(f"identical text: {same}/{len(prompts)}")
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
            "eval.batch_size=32",
        ]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env={**os.environ, "TAMPERLAB_QUIET": "1"})
        wall = time.perf_counter() - start
    print(
        f"tamperlab eval, 100 harmful + 100 harmless + 100 over-refusal prompts (the over-refusal set has "
        f"{len(load_builtin('overrefusal'))}), 64 new tokens: {wall:.0f} s wall (target <= 180 s)"
    )


if __name__ == "__main__":
    main()
