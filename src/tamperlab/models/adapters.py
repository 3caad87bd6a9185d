"""PEFT (LoRA) adapters as models: a directory with ``adapter_config.json`` naming its base.

The base (``base_model_name_or_path``) resolves as any ``--model`` does (an embedded model's name, a cached
model, a local directory; a relative path is tried from the working directory, then from the adapter's
folder). The adapter is merged into its base once and the merged model cached under a name derived from both
contents, so evaluation and every attack see an ordinary model; the lineage records it as an adapter of its
base (:func:`adapter_record`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tamperlab.errors import ModelNotFoundError

log = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_RECORD = "tamperlab_adapter.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


@dataclass(frozen=True)
class Adapter:
    """An adapter directory and the base model it names, resolved."""

    path: Path
    base: str  # the base as tamperlab resolves it (a name or an absolute path)
    config: dict[str, Any]

    @property
    def peft_type(self) -> str:
        return str(self.config.get("peft_type", "LORA"))


def is_adapter_dir(path: Path) -> bool:
    return path.is_dir() and (path / ADAPTER_CONFIG).is_file()


def read_adapter(path: str | Path) -> Adapter:
    """Read and check an adapter directory; ModelNotFoundError (one line) when it cannot be used."""
    from tamperlab.models.embedded import embedded_model
    from tamperlab.models.loading import is_cached

    path = Path(path).expanduser().resolve()
    config = _read_json(path / ADAPTER_CONFIG)
    base = config.get("base_model_name_or_path")
    if not isinstance(base, str) or not base:
        raise ModelNotFoundError(
            f"{path / ADAPTER_CONFIG}: no base_model_name_or_path, so the adapter's base model is unknown"
        )
    if not any((path / w).is_file() for w in ADAPTER_WEIGHTS):
        raise ModelNotFoundError(f"{path}: an adapter without weights (no {' or '.join(ADAPTER_WEIGHTS)})")
    if embedded_model(base) is None and not ("/" not in base and is_cached(base)):
        candidate = Path(base).expanduser()
        if not candidate.exists() and not candidate.is_absolute() and (path / candidate).exists():
            base = str((path / candidate).resolve())
        elif candidate.exists():
            base = str(candidate.resolve())
        else:
            raise ModelNotFoundError(
                f"{path}: the adapter's base model {base!r} is not an embedded model, a cached model or a "
                f"local directory (from here or from the adapter's folder); nothing is downloaded"
            )
    if Path(base).resolve() == path:
        raise ModelNotFoundError(f"{path}: the adapter names itself as its base model")
    return Adapter(path, base, config)


def adapter_key(adapter: Adapter) -> str:
    """The adapter's identity: its files' content and its base's identity (never paths or file times)."""
    from tamperlab.config import ModelSpec
    from tamperlab.models.identity import model_key  # identity imports this module
    from tamperlab.provenance import model_fingerprint

    return f"adapter:{model_fingerprint(adapter.path)}|base:{model_key(ModelSpec(name=adapter.base))}"


def merged_cache_name(adapter: Adapter) -> str:
    digest = hashlib.sha256(adapter_key(adapter).encode()).hexdigest()[:12]
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in adapter.path.name)[:40]
    return f"adapter-{slug}-{digest}"


def merged_model_dir(adapter: Adapter) -> Path:
    """The adapter merged into its base, cached (merged once, atomically)."""
    from tamperlab.models.loading import cached_model_dir, is_cached

    name = merged_cache_name(adapter)
    target = cached_model_dir(name)
    if not is_cached(name):
        _merge(adapter, target)
    return target


def _merge(adapter: Adapter, target: Path) -> None:
    import torch

    from tamperlab.models.loading import from_pretrained, load_tokenizer, resolve_model_dir

    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a core dependency
        raise ModelNotFoundError("loading an adapter needs peft: pip install 'peft>=0.12'") from None

    base_dir, base_source = resolve_model_dir(adapter.base)
    log.info("merging the adapter %s into its base %s once", adapter.path, adapter.base)
    base = from_pretrained(base_dir, torch.float32)
    try:
        model = PeftModel.from_pretrained(base, str(adapter.path))
    except Exception as exc:  # peft raises ValueError, KeyError, RuntimeError for a mismatched adapter
        raise ModelNotFoundError(
            f"{adapter.path}: cannot apply the adapter to its base {adapter.base} "
            f"({type(exc).__name__}: {_one_line(exc)})"
        ) from None
    merged = model.merge_and_unload()
    has_tokenizer = any((adapter.path / f).is_file() for f in _TOKENIZER_FILES)
    tokenizer = load_tokenizer(adapter.path if has_tokenizer else base_dir)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        record = {
            "adapter": str(adapter.path),
            "peft_type": adapter.peft_type,
            "base": adapter.base,
            "base_source": base_source,
            "key": adapter_key(adapter),
            "lora": {k: adapter.config.get(k) for k in ("r", "lora_alpha", "target_modules")},
        }
        (tmp / ADAPTER_RECORD).write_text(json.dumps(record, indent=2, default=str))
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # another process finished first
            return
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def adapter_record(adapter: Adapter) -> dict[str, Any]:
    """The lineage edge's modification: what was applied to the base."""
    return {
        "name": "adapter",
        "args": {
            "path": str(adapter.path),
            "peft_type": adapter.peft_type,
            "r": adapter.config.get("r"),
            "lora_alpha": adapter.config.get("lora_alpha"),
            "target_modules": adapter.config.get("target_modules"),
        },
    }


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelNotFoundError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelNotFoundError(f"{path}: cannot be read ({_one_line(exc)})") from None
    if not isinstance(data, dict):
        raise ModelNotFoundError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("…" if len(text) > 300 else "")
