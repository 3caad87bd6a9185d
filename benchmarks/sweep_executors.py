"""Sweep executors on a 12-run grid of the tiny model: sequential (local) against Ray with 2 workers, and the
store's overhead per result.

    python benchmarks/sweep_executors.py [--workers 2] [--runs-dir DIR]

Prints the wall time of each executor and their ratio, and the store's overhead: time spent in store write
transactions ÷ run time, per result (target < 5%). For Ray that counts the worker's writes to its private
store plus the driver's merge of the run's records into the shared one.

Both executors start from the same warmed cache (the safeguarded tiny model is trained once, untimed), so the
figures compare executing runs, not training the safeguard; each run gets one CPU thread under both. Ray's
wall time includes starting a local Ray.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import yaml

TRAIN = {"batch_size": 2, "max_length": 128}  # 48 leaves no answer token: nothing would train


def tiny_grid(model_dir: Path) -> dict:
    """12 runs: 3 learning rates x 2 modes x 2 seeds, each with milestones [0, 1, 2] and tiny evaluations."""
    base = {
        "model": {"name": str(model_dir)},
        "safeguard": {"name": "safety-sft", "args": {**TRAIN, "max_steps": 1, "answer_tokens": 8}},
        "attacks": [
            {"name": "harmful-sft", "args": {**TRAIN, "mode": "full", "data": "affirmative", "n_examples": 4}}
        ],
        "milestones": [0, 1, 2],
        "eval": {
            "harmful": {"source": "builtin:harmful", "limit": 4},
            "harmless": {"source": "builtin:harmless", "limit": 2},
            "overrefusal": {"source": "builtin:overrefusal", "limit": 2},
            "judges": [{"name": "keyword"}],
            "max_new_tokens": 4,
            "batch_size": 8,
            "nll_limit": 2,
            "kl_limit": 2,
        },
    }
    return {
        "name": "bench-12",
        "base": base,
        "axes": {
            "attacks.0.args.learning_rate": [1.0e-4, 3.0e-4, 1.0e-3],
            "attacks.0.args.mode": ["full", "lora"],
            "seeds": [[0], [1]],
        },
    }


def overhead(report) -> tuple[float, float, float]:
    """(total store seconds ÷ total run seconds, median per-result fraction, mean store ms per result)."""
    results = [r for r in report.results.values() if r.seconds > 0]
    fractions = [r.store_seconds / r.seconds for r in results]
    total = sum(r.store_seconds for r in results) / sum(r.seconds for r in results)
    return total, statistics.median(fractions), 1000 * statistics.mean(r.store_seconds for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2, help="Ray workers (runs at once).")
    parser.add_argument("--runs-dir", type=Path, default=None, help="Keep stores and caches here.")
    args = parser.parse_args()

    root = args.runs_dir or Path(tempfile.mkdtemp(prefix="tamperlab-bench-sweep-"))
    root.mkdir(parents=True, exist_ok=True)
    os.environ["TAMPERLAB_HOME"] = str(root / "home")
    os.environ.setdefault("TAMPERLAB_QUIET", "1")

    from tamperlab.models.tiny import build_tiny_model
    from tamperlab.sweep.runner import SweepOptions, run_sweep

    model_dir = root / "tiny-model"
    if not (model_dir / "config.json").is_file():
        build_tiny_model(model_dir)
    grid = tiny_grid(model_dir)
    grid_path = root / "grid.yaml"
    grid_path.write_text(yaml.safe_dump(grid, sort_keys=False))

    # Warm-up (untimed): train and cache the safeguarded model once, in a throwaway store.
    warm = dict(grid, axes={"milestones": [[0, 1]]})
    (root / "warm.yaml").write_text(yaml.safe_dump(warm, sort_keys=False))
    run_sweep(root / "warm.yaml", SweepOptions(store=str(root / "warm.sqlite")))

    cpus = os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {cpus} CPUs, load average {load:.1f}; "
        "grid: 12 runs of the tiny model (milestones [0, 1, 2])"
    )

    # Both executors give each run one CPU thread, so the ratio measures running two at once (and Ray's reuse
    # of worker processes), not thread counts.
    start = time.perf_counter()
    local = run_sweep(grid_path, SweepOptions(store=str(root / "local.sqlite"), num_cpus=1))
    local_wall = time.perf_counter() - start
    assert local.counts_after["done"] == 12, local.counts_after

    start = time.perf_counter()
    ray_report = run_sweep(
        grid_path,
        SweepOptions(store=str(root / "ray.sqlite"), executor="ray", workers=args.workers, num_cpus=1),
    )
    ray_wall = time.perf_counter() - start
    assert ray_report.counts_after["done"] == 12, ray_report.counts_after

    print(f"sequential (local executor, one process per run): {local_wall:7.1f} s wall")
    print(
        f"Ray local, {args.workers} workers x 1 CPU:                 {ray_wall:7.1f} s wall"
        f"  (driver merge {ray_report.merge_seconds:.2f} s)"
    )
    print(f"speed-up (sequential / Ray):                       {local_wall / ray_wall:7.2f}x")
    local_runs = [r.seconds for r in local.results.values()]
    ray_runs = [r.seconds for r in ray_report.results.values()]
    startup = (local_wall - sum(local_runs)) / len(local_runs)
    print(
        f"per run (median): local {statistics.median(local_runs):.1f} s in a fresh process (+{startup:.1f} s "
        f"process start-up each), Ray {statistics.median(ray_runs):.1f} s in a reused worker"
    )
    for name, report in (("local", local), ("ray", ray_report)):
        total, median, mean_ms = overhead(report)
        verdict = "ok" if total < 0.05 else "OVER the 5% target"
        print(
            f"store overhead, {name:5s}: {total:.2%} of run time (median per result {median:.2%}; "
            f"{mean_ms:.0f} ms of store writes per result) - {verdict}"
        )
    print(f"stores and logs: {root}")


if __name__ == "__main__":
    main()
