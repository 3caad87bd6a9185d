"""Checkpoints on disk: the cap, clean-up after a finished run, half-written models of dead processes."""

from __future__ import annotations

import os

import pytest

from tamperlab import paths
from tamperlab.config import RunSpec, validate
from tamperlab.sweep import artifacts


def spec(model="m", keep=False, **extra) -> RunSpec:
    data = {
        "model": {"name": str(model)},
        "safeguard": None,
        "keep_checkpoints": keep,
        "attacks": [{"name": "harmful-sft"}, {"name": "harmful-sft", "args": {"mode": "lora"}}],
        "defenses": [{"name": "safety-sft"}],
        "milestones": [0, 2, 4],
        "seeds": [0, 1, 2],
        **extra,
    }
    return validate(RunSpec, data)


def make_dir(name: str, size: int = 1000):
    d = paths.models_dir() / name
    d.mkdir(parents=True)
    (d / "model.safetensors").write_bytes(b"\0" * size)
    return d


def test_planned_checkpoints_count_every_arm_seed_and_milestone_after_zero():
    assert artifacts.planned_checkpoints(spec(keep=False)) == 0
    # variants x attacks x seeds x milestones (2, 4)
    assert artifacts.planned_checkpoints(spec(keep=True)) == 2 * 2 * 3 * 2


def test_cap_refuses_a_run_whose_checkpoints_would_not_fit(tiny_model_dir):
    model_bytes = artifacts.directory_bytes(tiny_model_dir)
    keeping = spec(tiny_model_dir, keep=True)
    need = artifacts.estimate_checkpoint_bytes(keeping)
    assert need == 24 * model_bytes
    assert artifacts.over_cap(keeping, max_gb=None) is None
    assert artifacts.over_cap(spec(tiny_model_dir, keep=False), max_gb=0) is None  # nothing to write
    assert artifacts.over_cap(keeping, max_gb=need / 1e9) is None
    make_dir("run-0000000000000000-undefended-x-s0-2", size=10)  # checkpoints already there count too
    reason = artifacts.over_cap(keeping, max_gb=need / 1e9)
    assert reason is not None and "--max-checkpoint-gb" in reason


def test_clean_after_run_deletes_checkpoints_unless_kept():
    run_a = make_dir("run-aaaaaaaaaaaaaaaa-undefended-harmful-sft-full-s0-2")
    run_b = make_dir("run-bbbbbbbbbbbbbbbb-undefended-harmful-sft-full-s0-2")
    other = make_dir("safeguarded-model")
    assert artifacts.clean_after_run("run-aaaaaaaaaaaaaaaa", spec(keep=False), "done") == 1000
    assert not run_a.exists() and other.exists()
    assert artifacts.clean_after_run("run-bbbbbbbbbbbbbbbb", spec(keep=True), "done") == 0
    assert run_b.exists()
    assert artifacts.clean_after_run("run-bbbbbbbbbbbbbbbb", spec(keep=False), "failed") == 0  # may resume
    assert run_b.exists()


def test_half_written_models_of_dead_processes_are_removed():
    dead_pid = 2**22 + 12345  # above the default pid_max: no such process
    with pytest.raises(ProcessLookupError):
        os.kill(dead_pid, 0)
    dead = make_dir(f"some-model.tmp-{dead_pid}")
    alive = make_dir(f"other-model.tmp-{os.getpid()}")
    assert artifacts.remove_stale_temporaries() == [dead]
    assert alive.exists() and not dead.exists()
