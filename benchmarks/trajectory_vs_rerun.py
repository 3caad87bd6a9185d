"""One training trajectory evaluated at budget milestones vs re-running each budget from scratch.

The engine measures a budget sweep along ONE trajectory: milestones M cost max(M) optimizer steps plus one
evaluation per milestone. The baseline a user would otherwise write re-trains from the parent model for every
budget: sum(M) steps plus the same evaluations. Both run here on the same model, attack data and seed; the
script checks that they measure the same thing (identical metrics at every milestone: training is seeded
and the schedule is constant, so step k of the long run is the k-step run) and prints wall seconds,
optimizer steps and the ratios.

    python benchmarks/trajectory_vs_rerun.py [--model NAME] [--milestones 0,1,2,4,8] [--harmful 16]
        [--max-new-tokens 24] [--attack-arg mode=lora]

Defaults take a few minutes on 2 CPU cores with the embedded model (its attack data, the unaligned model's own
completions, are generated once and cached).
"""

from __future__ import annotations

import argparse
import time
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--milestones", default="0,1,2,4,8")
    parser.add_argument("--harmful", type=int, default=16, help="Harmful test prompts per evaluation.")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--attack-arg", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    from tamperlab.attacks import AttackContext, build_attack
    from tamperlab.config import EvalSpec, ModelSpec, _parse_value, validate
    from tamperlab.evals.safety import build_judges, evaluate, load_eval_sets
    from tamperlab.models import load_model
    from tamperlab.progress import silence_library_bars

    silence_library_bars()
    milestones = [int(m) for m in args.milestones.split(",")]
    attack_args = {"mode": "full"} | {
        k: _parse_value(v) for k, v in (a.split("=", 1) for a in args.attack_arg)
    }
    model_spec = ModelSpec(name=args.model)
    ctx = AttackContext(unaligned=model_spec)
    eval_spec = validate(
        EvalSpec,
        {
            "harmful": {"source": "builtin:harmful", "limit": args.harmful},
            "harmless": {"source": "builtin:harmless", "limit": 4},
            "overrefusal": {"source": "builtin:overrefusal", "limit": 4},
            "judges": [{"name": "keyword"}],
            "max_new_tokens": args.max_new_tokens,
            "nll_limit": 8,
            "kl_limit": 1,  # no reference model is given, so no KL is computed
        },
    )
    judges = build_judges(eval_spec)
    sets = load_eval_sets(eval_spec)
    # Attack data (self-completions) is generated and cached, and the code warmed, before any timing.
    warm = load_model(model_spec)
    build_attack("harmful-sft", attack_args).run(
        warm, ctx, seed=0, milestones=[1], on_milestone=lambda budget, model: None
    )
    del warm

    def measure(run_milestones: list[int], keep: set[int], out: dict[int, Any]) -> int:
        """Run one attack up to max(run_milestones), evaluating at ``keep``; returns optimizer steps taken."""
        loaded = load_model(model_spec)

        def measured(model: Any) -> dict[str, float]:
            result = evaluate(model, loaded.tokenizer, eval_spec, judges=judges, sets=sets)
            return {m["name"]: round(m["value"], 6) for m in result.metrics if m["value"] is not None}

        if max(run_milestones) == 0:  # budget 0 is the parent itself: evaluate it, train nothing
            out[0] = measured(loaded.model)
            return 0

        def on_milestone(budget: Any, model: Any) -> None:
            if budget.steps in keep:
                out[budget.steps] = measured(model)

        build_attack("harmful-sft", attack_args).run(
            loaded, ctx, seed=0, milestones=run_milestones, on_milestone=on_milestone
        )
        return max(run_milestones)

    print(f"model {args.model}, harmful-sft {attack_args}, milestones {milestones}")
    start = time.perf_counter()
    along: dict[int, Any] = {}
    steps_along = measure(milestones, set(milestones), along)
    t_along = time.perf_counter() - start

    start = time.perf_counter()
    rerun: dict[int, Any] = {}
    steps_rerun = 0
    for m in milestones:
        steps_rerun += measure(sorted({0, m}), {m}, rerun)
    t_rerun = time.perf_counter() - start

    same = sum(along[m] == rerun[m] for m in milestones)
    n = len(milestones)
    print(f"one trajectory      : {t_along:7.1f} s, {steps_along:4d} optimizer steps, {n} evaluations")
    print(f"re-run every budget : {t_rerun:7.1f} s, {steps_rerun:4d} optimizer steps, {n} evaluations")
    ratio_steps = steps_rerun / max(steps_along, 1)
    print(f"ratio (re-run / one): {t_rerun / t_along:7.2f}x wall, {ratio_steps:.2f}x optimizer steps")
    print(f"identical metrics   : {same}/{n} milestones")
    for m in milestones:
        if along[m] != rerun[m]:
            diff = {
                k: (along[m].get(k), rerun[m].get(k)) for k in along[m] if along[m].get(k) != rerun[m].get(k)
            }
            print(f"  step {m} differs: {diff}")


if __name__ == "__main__":
    main()
