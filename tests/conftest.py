"""Shared fixtures: a tiny random chat model built from a config (never a download) and isolated homes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(
    os.environ.get("TAMPERLAB_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own TAMPERLAB_HOME so caches and stores never leak between tests or into ~."""
    home = tmp_path_factory.mktemp("tamperlab_home")
    monkeypatch.setenv("TAMPERLAB_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved 2-layer, hidden-32 Llama chat model with a real BPE tokenizer and ChatML template."""
    from tamperlab.models.tiny import build_tiny_model

    out = tmp_path_factory.mktemp("tiny_model")
    build_tiny_model(out)
    return out


@pytest.fixture
def tiny_model(tiny_model_dir):
    """A freshly loaded tiny model (a new copy per test, so training in one test cannot affect another)."""
    from tamperlab.models import load_model

    return load_model(str(tiny_model_dir))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The workspace's standard benchmark files (../shared/data); tests that need them skip without them."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"standard data files not found at {SHARED_DATA}")
    return SHARED_DATA.resolve()
