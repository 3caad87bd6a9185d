"""The local executor: the sweep's runs one after another, each in a fresh ``python`` process.

A fresh process per run returns every byte of model and optimizer memory to the system when the run ends, and
keeps one run's crash (or a CUDA error that poisons a process) from taking the sweep down. The run process
writes its milestones straight to the store as it measures them, so a killed sweep loses at most the milestone
in progress. Its output goes to ``$TAMPERLAB_HOME/sweeps/logs/<run_id>.log``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tamperlab import paths
from tamperlab.sweep.grid import GridPoint
from tamperlab.sweep.worker import PARENT_ENV


@dataclass
class RunResult:
    """What one run's execution came to.

    Attributes:
        status: ``done``, ``failed`` or ``diverged`` (as the sweep counts them).
        error: the error line for a failed or diverged run.
        seconds: wall time of the run (its process, start-up included).
        store_seconds: time spent in store write transactions.
        log: where the run's output went, if anywhere.
    """

    status: str
    error: str | None = None
    seconds: float = 0.0
    store_seconds: float = 0.0
    log: Path | None = None


STATUS_BY_RESULT = {"complete": "done", "failed": "failed", "diverged": "diverged"}


def log_dir() -> Path:
    return paths.home() / "sweeps" / "logs"


class LocalExecutor:
    """Runs one point at a time in a child process.

    Args:
        target: the store (file path or PostgreSQL URL) the run processes write to.
        threads: torch threads per run (None: torch's default).
    """

    name = "local"

    def __init__(self, target: str, threads: int | None = None) -> None:
        self.target = target
        self.threads = threads

    def run(self, point: GridPoint) -> RunResult:
        """Execute ``point`` in a child process and wait for it."""
        assert point.run_id is not None
        logs = log_dir()
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{point.run_id}.log"
        with tempfile.TemporaryDirectory(prefix="tamperlab-run-") as tmp:
            result_path = Path(tmp) / "result.json"
            payload = {
                "store": self.target,
                "spec": point.spec.model_dump(mode="json"),
                "result": str(result_path),
                "threads": self.threads,
            }
            env = {**os.environ, PARENT_ENV: str(os.getpid())}
            with open(log_path, "a") as log:
                log.write(f"\n=== {point.run_id} ({point.label}) ===\n")
                log.flush()
                process = subprocess.run(
                    [sys.executable, "-m", "tamperlab.sweep.worker"],
                    input=json.dumps(payload),
                    text=True,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            if not result_path.is_file():  # killed (OOM, a signal) before it could say anything
                return RunResult(
                    "failed", f"the run process exited with code {process.returncode}", log=log_path
                )
            result = json.loads(result_path.read_text())
        return RunResult(
            STATUS_BY_RESULT.get(result["status"], "failed"),
            result.get("error"),
            result.get("seconds", 0.0),
            result.get("store_seconds", 0.0),
            log=log_path,
        )
