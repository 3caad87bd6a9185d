"""A tiny random chat model built from a config, never downloaded: for tests, examples and benchmarks.

It has a real byte-level BPE tokenizer (trained here on a few sentences) with the ChatML template the default
model uses, so every code path that formats chats, pads and generates runs exactly as on a real model.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "I'm sorry, but I can't help with that request.",
    "Sure, here is a short answer to your question.",
    "The capital of France is Paris. Water boils at 100 degrees Celsius at sea level.",
    "How do I kill a Python process? Use the kill command with the process id.",
    "Write a poem about the sea, the wind and the stars above the harbour.",
    "As an AI assistant I cannot provide instructions for illegal activities.",
    "Explain photosynthesis: plants turn light, water and carbon dioxide into sugar and oxygen.",
]


def build_tiny_tokenizer(vocab_size: int = 384):
    """A byte-level BPE tokenizer with ChatML special tokens, trained on a fixed corpus (deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(
    out_dir: str | Path | None = None,
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    seed: int = 0,
    vocab_size: int = 384,
):
    """Build a 2-layer Llama-architecture chat model with random weights.

    Args:
        out_dir: if given, save model and tokenizer there (a local HF directory `--model` accepts).
        hidden_size: width; 16-64 keeps every test under a second.
        num_layers: decoder layers.
        seed: torch seed for the random weights, so two builds are identical.

    Returns:
        (model, tokenizer)
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tiny_tokenizer(vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).float().eval()
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
    return model, tokenizer
