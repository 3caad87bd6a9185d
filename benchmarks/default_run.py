"""The default `tamperlab run` end to end: cold (an empty cache) and cached, against its time targets.

Runs ``tamperlab run`` as a new user would, in a subprocess (so start-up and imports count), first with
``TAMPERLAB_HOME`` pointing at an empty folder: it dequantizes the embedded model, trains and caches the
default safeguard and the attack data, and attacks. Then ``tamperlab run seeds=[S]`` in the same folder, a new
run with the safeguard and attack data cached. Prints both wall times against the targets (15 and 8 minutes
on 2 CPU cores) and where the cold run's time went, from the store's timestamps and the cached models' own
records.

    python benchmarks/default_run.py [--home DIR] [--cached-seed 1] [--skip-cold]

``--home`` keeps the folder (default: a temporary one, removed afterwards); ``--skip-cold`` times only
the cached run in an existing ``--home``. About 20 minutes on 2 CPU cores. Run it on an idle machine: other
jobs on the cores make every figure pessimistic.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

TARGETS = {"cold": 15.0, "cached": 8.0}  # minutes


def timed_run(home: Path, *overrides: str) -> float:
    """Wall seconds of ``tamperlab run [overrides]`` with caches under ``home`` (output shown as it runs)."""
    env = os.environ | {"TAMPERLAB_HOME": str(home)}
    command = [sys.executable, "-m", "tamperlab", "run", *overrides]
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True)
    return time.perf_counter() - start


def _seconds_between(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def breakdown(home: Path) -> list[tuple[str, float]]:
    """Where the first run in ``home``'s store spent its time: (stage, seconds), in order."""
    from tamperlab.store import Store

    store = Store(home / "store.sqlite", readonly=True)
    run = store.list_runs("run")[0]
    models = {m["label"]: m for m in store.lineage(run["run_id"])}
    base, safeguarded = (
        store.get_evaluation(f"{run['run_id']}/{models[k]['model_id']}") for k in ("base", "safeguarded")
    )
    training = models["safeguarded"]["budget"]["seconds"]
    to_safeguarded = _seconds_between(base["created_at"], safeguarded["created_at"]) - safeguarded["seconds"]
    stages = [
        (
            "start, dequantizing the model, base evaluation",
            _seconds_between(run["created_at"], base["created_at"]),
        ),
        ("safeguard: self-distilled answers and set-up", to_safeguarded - training),
        ("safeguard: training", training),
        ("safeguarded evaluation", safeguarded["seconds"]),
    ]
    finished: dict[str, list[str]] = {}  # arm -> its evaluations' times, in order
    for row in store.milestones(run["run_id"]):
        if row["step"] > 0:
            finished.setdefault(row["arm"], []).append(store.get_evaluation(row["eval_id"])["created_at"])
    previous = safeguarded["created_at"]
    for i, (arm, times) in enumerate(sorted(finished.items(), key=lambda item: min(item[1]))):  # run order
        label = ("attack data, then " if i == 0 else "") + f"trajectory {arm} ({len(times)} evaluations)"
        stages.append((label, _seconds_between(previous, max(times))))
        previous = max(times)
    stages.append(("break costs, summary, report", _seconds_between(previous, run["finished_at"])))
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="Cache folder to use and keep (default: a temporary one).")
    parser.add_argument("--cached-seed", type=int, default=1, help="Seed of the cached run (a new run).")
    parser.add_argument(
        "--skip-cold", action="store_true", help="Only the cached run, in an existing --home."
    )
    args = parser.parse_args()
    if args.skip_cold and args.home is None:
        parser.error("--skip-cold needs --home (a folder that already holds the cold run's caches)")
    home = args.home or Path(tempfile.mkdtemp(prefix="tamperlab-default-run-"))
    if not args.skip_cold and (home / "store.sqlite").exists():
        parser.error(f"{home} already has a store: a cold run needs an empty --home")
    home.mkdir(parents=True, exist_ok=True)
    try:
        times = {}
        if not args.skip_cold:
            times["cold"] = timed_run(home)
        times["cached"] = timed_run(home, f"seeds=[{args.cached_seed}]")
        print()
        for kind, seconds in times.items():
            minutes, target = seconds / 60, TARGETS[kind]
            verdict = "met" if minutes <= target else "MISSED"
            ratio = minutes / target
            print(f"{kind:7s}: {minutes:5.1f} min  (target {target:g} min: {verdict}; {ratio:.2f}x target)")
        if "cold" in times:
            print("\nwhere the cold run's time went (from the store's timestamps):")
            for stage, seconds in breakdown(home):
                print(f"  {seconds / 60:5.2f} min  {stage}")
    finally:
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
