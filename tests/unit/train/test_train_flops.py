"""The FLOP formula against hand-worked numbers, and the matmul peak cache."""

from __future__ import annotations

import json

import pytest

from tamperlab.train import flops, peak

# The tiny model: hidden 32, intermediate 64, 2 layers, 4 heads of 8, 2 KV heads (KV width 16).
# Per layer: q 32·32 + k 32·16 + v 32·16 + o 32·32 + gate/up/down 3·32·64 = 1024+512+512+1024+6144 = 9216.
TINY_LAYERS = 2 * 9216
# LoRA r=8 on all seven projections, A is in×8 and B is 8×out:
# q 256+256, k 256+128, v 256+128, o 256+256, gate 256+512, up 256+512, down 512+256 = 4096 per layer.
TINY_LORA = 2 * 4096


def test_forward_and_training_flops_follow_the_formula():
    assert flops.forward_flops(1000, 7) == 2 * 1000 * 7
    assert flops.training_flops(1000, 7, "full") == 6 * 1000 * 7
    assert flops.training_flops(1000, 7, "lora", n_lora=10) == 4 * 1000 * 7 + 6 * 10 * 7
    with pytest.raises(ValueError):
        flops.training_flops_per_token(1000, "qlora")


def test_tied_embedding_counts_once_as_the_output_head(tiny_model):
    vocab = tiny_model.model.config.vocab_size
    assert tiny_model.model.config.tie_word_embeddings
    assert flops.matmul_parameter_count(tiny_model.model) == TINY_LAYERS + vocab * 32


def test_untied_input_embedding_is_a_lookup_and_not_counted():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=100,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    total = sum(p.numel() for p in model.parameters())
    norms = 32 * (2 * 2 + 1)  # two RMSNorms per layer plus the final one
    assert total == TINY_LAYERS + 2 * 100 * 32 + norms
    assert flops.matmul_parameter_count(model) == TINY_LAYERS + 100 * 32


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")  # peft on transformers 5
def test_lora_adapters_are_counted_apart_from_the_base(tiny_model):
    from peft import LoraConfig, get_peft_model

    from tamperlab.train.loop import DEFAULT_LORA_TARGETS

    vocab = tiny_model.model.config.vocab_size
    wrapped = get_peft_model(
        tiny_model.model, LoraConfig(r=8, lora_alpha=16, target_modules=list(DEFAULT_LORA_TARGETS))
    )
    assert flops.adapter_parameter_count(wrapped) == TINY_LORA
    assert flops.matmul_parameter_count(wrapped) == TINY_LAYERS + vocab * 32


def test_peak_is_measured_once_then_read_from_the_cache(monkeypatch, isolated_home):
    calls = []
    monkeypatch.setattr(peak, "measure_peak_flops", lambda device: calls.append(device) or 123e9)
    assert peak.cached_peak_flops("cpu") is None
    assert peak.peak_flops("cpu") == 123e9
    assert peak.peak_flops("cpu") == 123e9
    assert len(calls) == 1
    cached = json.loads((isolated_home / "peak_flops.json").read_text())
    assert cached[peak.device_key("cpu")]["flops"] == 123e9
    assert peak.device_key("cpu").endswith("|float32")


def test_a_real_peak_measurement_is_positive_and_quick():
    assert peak.measure_peak_flops("cpu", budget_s=0.05) > 1e8


def test_mfu_is_the_fraction_of_peak():
    assert peak.mfu(50e9, 200e9) == pytest.approx(0.25)
    assert peak.mfu(50e9, None) is None


def test_refreshing_the_peak_keeps_the_higher_reading(monkeypatch):
    readings = iter([100e9, 60e9, 150e9])  # 60: the machine was busy during that measurement
    monkeypatch.setattr(peak, "measure_peak_flops", lambda device: next(readings))
    assert peak.peak_flops("cpu") == 100e9
    assert peak.peak_flops("cpu", refresh=True) == 100e9
    assert peak.cached_peak_flops("cpu") == 100e9
    assert peak.peak_flops("cpu", refresh=True) == 150e9
    assert peak.cached_peak_flops("cpu") == 150e9


def test_mfu_is_unknown_when_the_cached_peak_is_below_what_was_achieved():
    """A peak read while other work ran is stale: no MFU above 100% is ever reported."""
    assert peak.mfu(90e9, 54e9) is None
    assert peak.mfu(54e9, 54e9) == pytest.approx(1.0)
