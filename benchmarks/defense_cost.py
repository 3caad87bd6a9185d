"""What a few steps of a tamper-resistance defense cost on a model, and how its loss terms move.

Applies ``repnoise`` and/or ``tar`` for ``--steps`` optimizer steps to a model (default: the embedded default
model) and prints, per defense: seconds, FLOPs, examples and tokens per step (the training loop's budget, the
inner loop included for TAR) and each loss term at the first and last step. Used to size a study before
running it (the defenses' full runs take ``max_steps`` = 40 / 30 steps).

    python benchmarks/defense_cost.py --steps 2                         # both defenses, default model
    python benchmarks/defense_cost.py --defense tar --set inner_steps=2 --data affirmative

``--data affirmative`` trains against affirmative targets instead of the unaligned model's own completions
(no generation needed: a quicker measurement of the same per-step compute).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model name or directory (default: the embedded model)")
    parser.add_argument("--defense", choices=["repnoise", "tar", "both"], default="both")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument(
        "--data", default="self-completions", help="the adversary's data (harmful-sft's 'data')"
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra defense args")
    options = parser.parse_args(argv)

    import yaml

    from tamperlab.config import ModelSpec
    from tamperlab.defenses import build_defense
    from tamperlab.models.loading import load_model

    extra: dict[str, Any] = {}
    for item in options.set:
        key, value = item.split("=", 1)
        extra[key] = yaml.safe_load(value)
    names = ["repnoise", "tar"] if options.defense == "both" else [options.defense]
    out = {}
    for name in names:
        data_key = "harmful_data" if name == "repnoise" else "adversary_data"
        args = {"max_steps": options.steps, data_key: options.data} | extra
        loaded = load_model(ModelSpec(name=options.model) if options.model else None)
        outcome = build_defense(name, args).apply(loaded)
        steps = outcome.budget["steps"]
        record = {
            "args": args,
            "device": loaded.device,
            "seconds_per_step": outcome.budget["seconds"] / steps,
            "flops_per_step": outcome.budget["flops"] / steps,
            "examples_per_step": outcome.budget["examples"] / steps,
            "tokens_per_step": outcome.budget["tokens"] / steps,
            "terms": outcome.data.get("terms"),
        }
        out[name] = record
        print(json.dumps({name: record}, indent=2), flush=True)
        del loaded, outcome
    return 0


if __name__ == "__main__":
    sys.exit(main())
