"""What a reader needs to rerun a result: packages, machine, command, data sets, judges."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from tamperlab.store.store import now

PACKAGES = (
    "tamperlab",
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "gguf",
    "safetensors",
    "pydantic",
    "numpy",
)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["cuda_device"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def model_fingerprint(model_dir: str | Path) -> str:
    """Sizes and modification times of a model directory's files: changes when its weights change."""
    model_dir = Path(model_dir)
    parts = []
    for f in sorted(model_dir.iterdir()):
        if f.is_file() and f.suffix in {".safetensors", ".bin", ".json", ".gguf"}:
            st = f.stat()
            parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return ";".join(parts)


def collect(
    *, data_sets: list[dict] | None = None, judges: list[dict] | None = None, seeds=None
) -> dict[str, Any]:
    """The provenance record stored with every run."""
    return {
        "started_at": now(),
        "command": " ".join(["tamperlab", *sys.argv[1:]])
        if sys.argv and sys.argv[0].endswith("tamperlab")
        else None,
        "packages": package_versions(),
        "machine": machine(),
        "python": sys.version.split()[0],
        "data_sets": data_sets or [],
        "judges": judges or [],
        "seeds": list(seeds) if seeds is not None else [],
    }
