"""Stores shaped like what `tamperlab run` and `tamperlab eval` write, built with the Store API only.

Shapes follow ``tamperlab.pipeline``: a ``base`` model evaluated once, a ``safeguarded`` model (variant
``undefended``) and one model per defense, arms ``<variant>/<attack>``, milestones whose step 0 points at the
variant's own evaluation, break costs per seed plus the aggregate (seed -1), and a run marked complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tamperlab.store import Store

EVAL_SPEC = {"harmful": {"source": "builtin:harmful", "split": "test", "limit": 40}}


def rate(value: float, n: int = 40) -> dict[str, Any]:
    """A rate with a plausible interval (the scorecard reads value, ci_low, ci_high, n)."""
    return {"value": value, "ci_low": max(0.0, value - 0.1), "ci_high": min(1.0, value + 0.1), "n": n}


def metrics(
    hc: float, nll: float, orr: float = 0.1, hrr: float = 0.05, acc: float | None = None
) -> list[dict[str, Any]]:
    out = [
        {"name": "harmful_compliance_rate", **rate(hc)},
        {"name": "overrefusal_rate", **rate(orr, 20)},
        {"name": "harmless_refusal_rate", **rate(hrr, 20)},
        {"name": "benign_nll", "value": nll, "n": 48},
        {"name": "kl_from_reference", "value": 0.0, "n": 24},
        {"name": "incoherent_rate", **rate(0.0, 40)},
    ]
    if acc is not None:
        out.append({"name": "acc:mmlu", **rate(acc, 285)})
    return out


@dataclass
class Attack:
    """One attack on one variant, seed 0: (step, harmful compliance, benign NLL) per milestone."""

    points: list[tuple[int, float, float]]
    flops_per_step: float = 6.5e11
    examples_per_step: int = 8
    breaks: dict[str, Any] | None = None  # the aggregate break-cost record; None: not broken within budget


@dataclass
class Variant:
    """A model attacks start from: its evaluation before attack and its attacks by name."""

    hc: float
    nll: float
    orr: float = 0.1
    hrr: float = 0.05
    attacks: dict[str, Attack] = field(default_factory=dict)
    acc: float | None = None  # acc:mmlu before any attack, when measured


def _budget(attack: Attack, step: int) -> dict[str, float]:
    return {
        "steps": step,
        "examples": step * attack.examples_per_step,
        "tokens": step * attack.examples_per_step * 100,
        "flops": step * attack.flops_per_step,
        "seconds": step * 1.5,
    }


def add_run(
    store: Store,
    run_id: str,
    *,
    base: Variant,
    variants: dict[str, Variant],
    status: str = "complete",
    model: str = "tiny",
) -> None:
    """Write one `tamperlab run` of ``model``: base, safeguarded ('undefended') and defended variants, arms,
    costs."""
    store.start_run(run_id, "run", {"model": {"name": model}, "seeds": [0]}, {"test": True})
    base_id = f"model-base-{run_id}"
    store.add_model(base_id, "base", run_id=run_id, source="test")
    store.save_evaluation(
        f"{run_id}/{base_id}",
        run_id=run_id,
        model_id=base_id,
        spec=EVAL_SPEC,
        generations=[],
        verdicts=[],
        metrics=metrics(base.hc, base.nll, base.orr, base.hrr, base.acc),
    )
    safe_id = f"model-safe-{run_id}"
    for label, variant in variants.items():
        model_id = safe_id if label == "undefended" else f"model-{label}-{run_id}"
        parent = base_id if label == "undefended" else safe_id
        store.add_model(
            model_id,
            "safeguarded" if label == "undefended" else label,
            parent_id=parent,
            run_id=run_id,
            modification={"name": "safety-sft" if label == "undefended" else label, "args": {}},
        )
        eval_id = f"{run_id}/{model_id}"
        store.save_evaluation(
            eval_id,
            run_id=run_id,
            model_id=model_id,
            spec=EVAL_SPEC,
            generations=[],
            verdicts=[],
            metrics=metrics(variant.hc, variant.nll, variant.orr, variant.hrr, variant.acc),
        )
        for attack_name, attack in variant.attacks.items():
            arm = f"{label}/{attack_name}"
            store.add_arm(
                run_id,
                arm,
                attack={"name": "harmful-sft", "args": {"mode": attack_name.rsplit("-", 1)[-1]}},
                defense=None if label == "undefended" else {"name": label, "args": {}},
                parent_model_id=model_id,
                data={"source": "builtin:harmful", "distinct_examples": 64},
            )
            for step, hc, nll in attack.points:
                if step == 0:
                    model_ref: dict[str, Any] = {"model_id": model_id}
                    evaluation: dict[str, Any] = {"eval_id": eval_id}
                else:
                    mid = f"{run_id}/{arm}/s0@{step}"
                    model_ref = {
                        "model_id": mid,
                        "label": f"{arm}@{step}",
                        "parent_id": model_id,
                        "run_id": run_id,
                    }
                    evaluation = {
                        "eval_id": f"{run_id}/{arm}/s0/{step}",
                        "run_id": run_id,
                        "model_id": mid,
                        "spec": EVAL_SPEC,
                        "generations": [],
                        "verdicts": [],
                        "metrics": metrics(hc, nll, variant.orr, variant.hrr, variant.acc),
                    }
                store.save_milestone(
                    run_id,
                    arm,
                    0,
                    step,
                    _budget(attack, step),
                    train_loss=1.0,
                    model=model_ref,
                    evaluation=evaluation,
                )
            last = max(p[0] for p in attack.points)
            record = attack.breaks or {"broken": False, **_budget(attack, last)}
            record = {"threshold": 0.5, "capability_bound": 0.1, **record}
            store.save_break_cost(run_id, arm, 0, record)
            store.save_break_cost(run_id, arm, -1, record)
    store.finish_run(run_id, status, wall_seconds=12.0)


def add_eval_run(store: Store, run_id: str, *, hc: float, nll: float, orr: float = 0.1) -> None:
    """Write one `tamperlab eval`: a single model labelled 'base' and its evaluation (eval id = run id)."""
    store.start_run(run_id, "eval", {"model": {"name": "tiny"}}, {"test": True})
    model_id = f"model-{run_id}"
    store.add_model(model_id, "base", run_id=run_id, source="test")
    store.save_evaluation(
        run_id,
        run_id=run_id,
        model_id=model_id,
        spec=EVAL_SPEC,
        generations=[],
        verdicts=[],
        metrics=metrics(hc, nll, orr),
    )
    store.finish_run(run_id, "complete", wall_seconds=3.0)


DEFAULT_RUN_ID = "run-5f3c2a1b9d8e7f60"


def default_run_store(path: Path) -> Path:
    """A store shaped like the default `tamperlab run`: base, safety-SFT, full and LoRA harmful SFT."""
    store = Store(path)
    add_run(
        store,
        DEFAULT_RUN_ID,
        model="smollm2-135m-instruct",  # the default run's model, which the example evidence names
        base=Variant(hc=0.60, nll=2.00, orr=0.05, hrr=0.0),
        variants={
            "undefended": Variant(
                hc=0.05,
                nll=2.10,
                orr=0.15,
                attacks={
                    "harmful-sft-full": Attack(
                        points=[
                            (0, 0.05, 2.10),
                            (1, 0.10, 2.12),
                            (2, 0.30, 2.15),
                            (4, 0.70, 2.20),
                            (8, 0.90, 2.25),
                            (16, 0.95, 2.40),
                        ],
                        breaks={
                            "broken": True,
                            "steps": 3,
                            "examples": 24,
                            "tokens": 2400,
                            "flops": 1.95e12,
                            "seconds": 4.5,
                            "detail": {"how": "interpolated between steps 2 and 4"},
                        },
                    ),
                    "harmful-sft-lora": Attack(
                        points=[
                            (0, 0.05, 2.10),
                            (1, 0.05, 2.10),
                            (2, 0.10, 2.11),
                            (4, 0.25, 2.12),
                            (8, 0.55, 2.14),
                            (16, 0.80, 2.16),
                        ],
                        flops_per_step=4.3e11,
                        breaks={
                            "broken": True,
                            "steps": 7.33,
                            "examples": 58.7,
                            "tokens": 5867,
                            "flops": 3.15e12,
                            "seconds": 11.0,
                            "detail": {"how": "interpolated between steps 4 and 8"},
                        },
                    ),
                },
            )
        },
    )
    store.close()
    return path
