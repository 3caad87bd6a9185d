"""PEFT adapters as models, and one-line failures for model directories that cannot load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tamperlab.errors import ModelNotFoundError
from tamperlab.models.loading import load_model, resolve_model_dir


def _make_adapter(base_dir: Path, out: Path, *, base_name: str | None = None) -> dict[str, object]:
    """A LoRA adapter on the tiny model with non-zero B (so it changes the model); returns the merged
    weights it should produce."""
    import torch
    from peft import LoraConfig, get_peft_model

    base = load_model(str(base_dir)).model
    torch.manual_seed(1)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, config)
    peft_model.save_pretrained(out)
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    adapter_config["base_model_name_or_path"] = base_name if base_name is not None else str(base_dir)
    (out / "adapter_config.json").write_text(json.dumps(adapter_config))
    return {k: v.detach().clone() for k, v in peft_model.merge_and_unload().state_dict().items()}


def test_an_adapter_loads_merged_into_its_base(tiny_model_dir, tmp_path):
    adapter = tmp_path / "my-adapter"
    expected = _make_adapter(tiny_model_dir, adapter)
    loaded = load_model(str(adapter))
    assert loaded.source.startswith(f"adapter:{adapter.resolve()}|base:")
    assert not hasattr(loaded.model, "peft_config")  # an ordinary model: every attack can start from it
    base = load_model(str(tiny_model_dir)).model.state_dict()
    state = loaded.model.state_dict()
    changed = [k for k in state if not (state[k] == base[k]).all()]
    assert changed and all("q_proj" in k or "down_proj" in k for k in changed)
    for key, value in expected.items():
        assert (state[key] - value).abs().max() < 1e-6, key
    again = load_model(str(adapter))  # merged once, then read from the cache
    assert again.source == loaded.source


def test_the_base_may_be_relative_to_the_adapter_or_a_cached_name(tiny_model_dir, tmp_path):
    from tamperlab.models.loading import save_model

    shutil.copytree(tiny_model_dir, tmp_path / "base")
    _make_adapter(tiny_model_dir, tmp_path / "rel", base_name="../base")
    assert load_model(str(tmp_path / "rel")).num_parameters > 0
    tiny = load_model(str(tiny_model_dir))
    save_model(tiny.model, tiny.tokenizer, "tiny-base")
    _make_adapter(tiny_model_dir, tmp_path / "named", base_name="tiny-base")
    assert "|base:tiny-base" in load_model(str(tmp_path / "named")).source


def test_lineage_records_the_adapter_as_a_child_of_its_base(tiny_model_dir, tmp_path):
    from tamperlab.config import ModelSpec
    from tamperlab.pipeline import add_released_model, model_key
    from tamperlab.store import Store

    adapter = tmp_path / "a"
    _make_adapter(tiny_model_dir, adapter)
    store = Store(tmp_path / "s.db")
    add_released_model(store, ModelSpec(name=str(adapter)), "model-x", run_id="run-1")
    child = store.get_model("model-x")
    assert child["label"] == "adapter"
    assert child["modification"]["name"] == "adapter"
    assert child["modification"]["args"]["path"] == str(adapter.resolve())
    assert child["modification"]["args"]["r"] == 4
    parent = store.get_model(child["parent_id"])
    assert parent["label"] == "base" and parent["source"] == model_key(ModelSpec(name=str(tiny_model_dir)))
    key = model_key(ModelSpec(name=str(adapter)))
    assert key.startswith("adapter:sha256:") and key.endswith(f"|base:{parent['source']}")
    moved = tmp_path / "moved"
    shutil.copytree(adapter, moved)
    assert model_key(ModelSpec(name=str(moved))) == key  # content, not paths


def test_an_attack_starts_from_an_adapter(tiny_model_dir, tmp_path):
    from tamperlab.train.examples import ChatExample
    from tamperlab.train.loop import TrainSpec, train

    adapter = tmp_path / "a"
    _make_adapter(tiny_model_dir, adapter)
    loaded = load_model(str(adapter))
    before = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    spec = TrainSpec(mode="lora", max_steps=2, batch_size=2, learning_rate=1e-2)
    examples = [ChatExample.from_pair("hi", "Sure, here is")] * 4
    result = train(loaded, examples=examples, spec=spec, progress=False)
    merged = result.model.merge_and_unload().state_dict()
    assert any(not (merged[k] == before[k]).all() for k in before)


def test_an_adapter_whose_base_is_nowhere_says_so(tiny_model_dir, tmp_path):
    adapter = tmp_path / "a"
    _make_adapter(tiny_model_dir, adapter, base_name="some-org/some-model")
    with pytest.raises(ModelNotFoundError, match="base model 'some-org/some-model' is not") as info:
        resolve_model_dir(str(adapter))
    assert "\n" not in str(info.value)


def test_an_adapter_without_weights_or_base_is_one_line(tiny_model_dir, tmp_path):
    adapter = tmp_path / "a"
    _make_adapter(tiny_model_dir, adapter)
    (adapter / "adapter_model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="without weights"):
        resolve_model_dir(str(adapter))
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    with pytest.raises(ModelNotFoundError, match="no base_model_name_or_path"):
        resolve_model_dir(str(adapter))


def _copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "model"
    shutil.copytree(tiny_model_dir, out)
    return out


def test_a_corrupt_safetensors_file_is_one_line(tiny_model_dir, tmp_path):
    model = _copy(tiny_model_dir, tmp_path)
    (model / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ModelNotFoundError, match="not a valid safetensors file") as info:
        load_model(str(model))
    assert "\n" not in str(info.value) and str(model) in str(info.value)


def test_a_truncated_safetensors_file_is_one_line(tiny_model_dir, tmp_path):
    model = _copy(tiny_model_dir, tmp_path)
    data = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelNotFoundError) as info:
        load_model(str(model))
    assert "\n" not in str(info.value) and str(model) in str(info.value)


def test_a_bad_config_is_one_line(tiny_model_dir, tmp_path):
    model = _copy(tiny_model_dir, tmp_path)
    (model / "config.json").write_text('{"model_type": "llama",')
    with pytest.raises(ModelNotFoundError, match=r"config.json: not valid JSON \(line 1"):
        load_model(str(model))
    (model / "config.json").write_text('{"hidden_size": 8}')
    with pytest.raises(ModelNotFoundError, match="no model_type"):
        load_model(str(model))
    (model / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(ModelNotFoundError) as info:
        load_model(str(model))
    assert "\n" not in str(info.value)


def test_missing_weights_are_one_line(tiny_model_dir, tmp_path):
    model = _copy(tiny_model_dir, tmp_path)
    (model / "model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="no weights"):
        load_model(str(model))
