"""Every shipped YAML under configs/ validates with the loader its folder stands for.

- ``runs/`` and ``studies/``: a RunSpec (``tamperlab run FILE``), every component's name and args checked.
- ``evals/``: an eval spec (``tamperlab eval FILE``), every judge's name and args checked.
- ``sweeps/``: a grid (``tamperlab sweep FILE``) whose every point is a valid RunSpec with valid components.

A YAML file anywhere else under configs/ fails, so a new config cannot skip validation.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tamperlab.config import RunSpec, load_spec
from tamperlab.evals.run_eval import EvalRunSpec
from tamperlab.sweep.grid import expand, load_grid, validate_components

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
FOLDERS = ("runs", "studies", "evals", "sweeps")
SHIPPED = sorted(CONFIGS.rglob("*.yaml"))


def _validate_run(path: Path) -> None:
    validate_components(load_spec(RunSpec, path))


def _validate_eval(path: Path) -> None:
    import tamperlab.evals.judges.builtin  # noqa: F401  (registers the built-in judges)
    from tamperlab.evals.judges.base import JUDGES

    spec = load_spec(EvalRunSpec, path)
    for ref in spec.eval.judges:
        JUDGES.validate_args(ref.name, ref.args)


def _validate_sweep(path: Path) -> None:
    points = expand(load_grid(path))
    assert points, f"{path}: the grid expands to no runs"
    assert len({p.spec_key for p in points}) == len(points)


LOADERS = {
    "runs": _validate_run,
    "studies": _validate_run,
    "evals": _validate_eval,
    "sweeps": _validate_sweep,
}


def _folder(path: Path) -> str:
    return path.relative_to(CONFIGS).parts[0]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_shipped_config_validates_with_its_folders_loader(path):
    folder = _folder(path)
    assert folder in LOADERS, f"{path.relative_to(CONFIGS)}: configs/ holds only {', '.join(FOLDERS)}/"
    LOADERS[folder](path)


def test_every_folder_holds_configs_and_nothing_is_loose():
    assert not list(CONFIGS.glob("*.yaml")), "a loose YAML at configs/ top level: move it into a folder"
    assert {_folder(p) for p in SHIPPED} == set(FOLDERS)


def test_both_example_sweeps_are_among_the_validated():
    names = {p.name for p in SHIPPED if _folder(p) == "sweeps"}
    assert {"lr_by_mode.yaml", "lr_schedule_zip.yaml", "repnoise_grid.yaml"} <= names
