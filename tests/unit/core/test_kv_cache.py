"""The KV cache is handed over and read back under whichever name the model's forward pass uses."""

from types import SimpleNamespace

from tamperlab.models.kv_cache import cache_arg, cache_of


class _OldStyle:
    def forward(self, input_ids=None, past_key_values=None, use_cache=None):  # transformers <= 5.17
        return None


class _NewStyle:
    def forward(self, input_ids=None, cache=None, use_cache=None):  # transformers 5.2x
        return None


class _Wrapper:  # a PEFT model forwards **kwargs to its base model
    def __init__(self, base):
        self.base = base

    def get_base_model(self):
        return self.base

    def forward(self, *args, **kwargs):
        return None


def test_the_argument_takes_the_name_the_forward_signature_declares():
    marker = object()
    assert cache_arg(_OldStyle(), marker) == {"past_key_values": marker}
    assert cache_arg(_NewStyle(), marker) == {"cache": marker}
    assert cache_arg(_Wrapper(_NewStyle()), marker) == {"cache": marker}
    assert cache_arg(_Wrapper(_OldStyle()), marker) == {"past_key_values": marker}


def test_the_returned_cache_is_read_under_either_name():
    marker = object()
    assert cache_of(SimpleNamespace(cache=marker)) is marker
    assert cache_of(SimpleNamespace(past_key_values=marker)) is marker
    assert cache_of(SimpleNamespace(cache=None, past_key_values=marker)) is marker
    assert cache_of(SimpleNamespace(logits=1)) is None


def test_the_installed_transformers_needs_no_deprecated_name():
    import warnings

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    model = LlamaForCausalLM(config).eval()
    ids = torch.tensor([[1, 2, 3]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        with torch.no_grad():
            cache = cache_of(model(input_ids=ids, use_cache=True))
            out = model(input_ids=torch.tensor([[4]]), use_cache=True, **cache_arg(model, cache))
    assert cache_of(out) is not None
