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
