"""A model's identity: what run ids and cache keys name it by, from its content, never its path."""

from __future__ import annotations

from pathlib import Path

from tamperlab import provenance
from tamperlab.config import ModelSpec
from tamperlab.models.adapters import adapter_key, is_adapter_dir, read_adapter
from tamperlab.models.embedded import embedded_model
from tamperlab.models.embedded import identity as embedded_identity
from tamperlab.models.loading import resolve_model_dir


def model_key(spec: ModelSpec) -> str:
    """The model's identity, from its content and never from paths or file times.

    The embedded default model is its packaged GGUF, named by package version and file size; an embedded
    model assembled from parts is its pinned sha256: the same on every machine, so one spec has one run id
    everywhere. Any other model (a directory, a cached model, a converted
    GGUF) is the sha256 of its weight, config and tokenizer files: a copied or moved directory keeps its run
    ids.
    """
    embedded = embedded_model(spec.name)
    if embedded is not None:
        return embedded_identity(embedded)
    if is_adapter_dir(Path(spec.name).expanduser()):
        return adapter_key(read_adapter(spec.name))
    model_dir, _ = resolve_model_dir(spec.name)
    return provenance.model_fingerprint(model_dir)
