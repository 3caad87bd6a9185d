"""What runs leave on disk: milestone checkpoints (only when a spec asks), their disk cap, and clean-up.

The pipeline writes an attacked model at a milestone only when ``keep_checkpoints`` is set, into the model
cache as ``<run_id>-<arm>-s<seed>-<step>``. The sweep layer
- refuses to start a run whose checkpoints would take the cache's run checkpoints past ``--max-checkpoint-gb``
  (it stays pending, with a message saying how much it needs);
- after a run completes, deletes that run's checkpoints unless its spec keeps them;
- deletes half-written model directories (``<name>.tmp-<pid>``) whose writer is dead, which a killed save
  leaves.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from tamperlab import paths
from tamperlab.config import RunSpec

log = logging.getLogger(__name__)

GB = 1e9
_TEMPORARY = re.compile(r"\.tmp-(\d+)$")


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def checkpoint_dirs(run_id: str | None = None) -> list[Path]:
    """Milestone checkpoints in the model cache: one run's, or every run's."""
    root = paths.models_dir()
    if not root.is_dir():
        return []
    pattern = f"{run_id}-*" if run_id else "run-*"
    return sorted(d for d in root.glob(pattern) if d.is_dir() and not _TEMPORARY.search(d.name))


def checkpoint_bytes() -> int:
    """Bytes the cache's run checkpoints take now."""
    return sum(directory_bytes(d) for d in checkpoint_dirs())


def planned_checkpoints(spec: RunSpec) -> int:
    """How many checkpoints a run writes at most: every (variant, attack, seed) at every milestone after 0
    (a trajectory that ends where it breaks writes fewer)."""
    if not spec.keep_checkpoints:
        return 0
    variants = 1 + len(spec.defenses)
    return variants * len(spec.attacks) * len(spec.seeds) * len([m for m in spec.milestones if m > 0])


def estimate_checkpoint_bytes(spec: RunSpec) -> int:
    """A run's checkpoints: their count times the size of its model's directory (LoRA is saved merged)."""
    count = planned_checkpoints(spec)
    if count == 0:
        return 0
    from tamperlab.models.loading import resolve_model_dir

    model_dir, _ = resolve_model_dir(spec.model.name)
    return count * directory_bytes(model_dir)


def over_cap(spec: RunSpec, max_gb: float | None) -> str | None:
    """Why ``spec`` may not start under the cap (None when it may)."""
    if max_gb is None or not spec.keep_checkpoints:
        return None
    need = estimate_checkpoint_bytes(spec)
    used = checkpoint_bytes()
    if used + need <= max_gb * GB:
        return None
    return (
        f"its checkpoints need about {need / GB:.2f} GB and run checkpoints already take {used / GB:.2f} GB "
        f"of the {max_gb:g} GB cap (--max-checkpoint-gb)"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries() -> list[Path]:
    """Delete ``*.tmp-<pid>`` model directories whose writing process is gone; returns what was removed."""
    root = paths.models_dir()
    removed = []
    if not root.is_dir():
        return removed
    for d in root.iterdir():
        match = _TEMPORARY.search(d.name)
        if match and d.is_dir() and not _alive(int(match.group(1))):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def clean_after_run(run_id: str, spec: RunSpec, status: str) -> int:
    """Delete what a finished run no longer needs; returns the bytes freed."""
    freed = 0
    for d in remove_stale_temporaries():
        log.info("removed a half-written model left by a dead process: %s", d)
    if status == "done" and not spec.keep_checkpoints:
        for d in checkpoint_dirs(run_id):
            freed += directory_bytes(d)
            shutil.rmtree(d, ignore_errors=True)
    return freed
