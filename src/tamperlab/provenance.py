"""What a reader needs to rerun a result: packages, machine, command, data sets, judges."""

from __future__ import annotations

import hashlib
import json
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


MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".gguf", ".json", ".model", ".txt", ".jinja")
"""The files of a model directory that make the model: weights, configs, tokenizer files, chat template."""

HASH_CACHE_FILE = "file_hashes.json"
"""In ``$TAMPERLAB_HOME``: sha256 per file, valid while the file's (path, size, mtime) are unchanged."""

_hash_cache: dict[str, list] | None = None


def _cache_path() -> Path:
    from tamperlab import paths

    return paths.home() / HASH_CACHE_FILE


def _load_hash_cache() -> dict[str, list]:
    global _hash_cache
    if _hash_cache is None:
        try:
            loaded = json.loads(_cache_path().read_text())
            _hash_cache = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            _hash_cache = {}
    return _hash_cache


def _save_hash_cache(cache: dict[str, list]) -> None:
    """Write the cache atomically; a cache that cannot be written only costs rehashing later."""
    path = _cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(cache, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks.

    Cached by (absolute path, size, mtime) in memory and in ``$TAMPERLAB_HOME/file_hashes.json``, so a
    multi-GB model is read once, not on every command; touching or rewriting the file hashes it again.
    """
    path = Path(path).resolve()
    st = path.stat()
    key = str(path)
    cache = _load_hash_cache()
    hit = cache.get(key)
    if isinstance(hit, list) and len(hit) == 3 and hit[:2] == [st.st_size, st.st_mtime_ns]:
        return hit[2]
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    cache[key] = [st.st_size, st.st_mtime_ns, digest.hexdigest()]
    _save_hash_cache(cache)
    return digest.hexdigest()


def model_fingerprint(model_dir: str | Path) -> str:
    """A model directory's identity from its content: sha256 over each weight, config and tokenizer file's
    name and sha256. A copy of the directory (anywhere, with new file times) has the same fingerprint; new
    weights, config or tokenizer a new one."""
    model_dir = Path(model_dir)
    digest = hashlib.sha256()
    for f in sorted(model_dir.iterdir()):
        if f.is_file() and f.suffix in MODEL_FILE_SUFFIXES:
            digest.update(f"{f.name}:{file_sha256(f)}\n".encode())
    return f"sha256:{digest.hexdigest()}"


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
