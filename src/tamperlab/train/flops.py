"""FLOP accounting for training and inference budgets.

The standard dense-transformer estimate (Kaplan et al. 2020; Chinchilla), counting a multiply-add as 2 FLOPs:

* Forward pass: ``2·N·T``, where ``N`` is the number of parameters taking part in matrix multiplications and
  ``T`` the number of (non-padding) tokens processed.
* Full fine-tuning: forward ``2·N·T`` + backward ``4·N·T`` (gradients with respect to activations, ``2·N·T``,
  and with respect to weights, ``2·N·T``) = **6·N·T**.
* LoRA: the frozen base weights still cost the forward ``2·N·T`` and the activation gradients ``2·N·T`` (the
  adapters sit inside every layer, so the gradient must flow through the frozen weights), but no weight
  gradients for them (saving ``2·N·T``); the adapters themselves are trained fully, ``6·N_lora·T``
  ⇒ **4·N·T + 6·N_lora·T**.

``N`` counts every weight matrix used in a matmul. An input embedding is a table lookup, not a matmul, so it
is left out; the output head is a matmul and counts. With tied embeddings the one shared matrix is the output
head, so it is counted once. Norm weights and biases (1-D) are left out: they cost O(d) per token, not O(d²).

The attention-score term (``QKᵀ`` and ``AV``: about ``2·n_layers·context·d_attn`` per token forward, ×3 for
training) is not included: for SmolLM2-135M at 128 tokens it is 4.4 MFLOP against 2·N = 269 MFLOP per token
forward, under 2%. Budgets therefore read slightly low, the same for every method compared.
"""

from __future__ import annotations

from typing import Any, Literal

TrainMode = Literal["full", "lora"]


def forward_flops(n_params: int, tokens: int) -> int:
    """FLOPs of a forward pass over ``tokens`` tokens through ``n_params`` matmul parameters: ``2·N·T``.

    Used for evaluation and generation costs and for weight-editing attacks that only run forward passes.
    """
    return 2 * n_params * tokens


def training_flops_per_token(n_params: int, mode: TrainMode = "full", n_lora: int = 0) -> int:
    """FLOPs per token of one training pass (forward + backward).

    Args:
        n_params: matmul parameters of the base model (``N``; see the module docstring).
        mode: ``"full"`` (``6·N``) or ``"lora"`` (``4·N + 6·N_lora``).
        n_lora: adapter parameters (LoRA only).
    """
    if mode == "full":
        return 6 * n_params
    if mode == "lora":
        return 4 * n_params + 6 * n_lora
    raise ValueError(f"unknown training mode {mode!r}; expected 'full' or 'lora'")


def training_flops(n_params: int, tokens: int, mode: TrainMode = "full", n_lora: int = 0) -> int:
    """FLOPs of training on ``tokens`` tokens: ``6·N·T`` (full) or ``(4·N + 6·N_lora)·T`` (LoRA)."""
    return training_flops_per_token(n_params, mode, n_lora) * tokens


def _is_adapter(name: str) -> bool:
    return "lora_" in name


def matmul_parameter_count(model: Any) -> int:
    """``N``: the base model's parameters taking part in matmuls (adapters excluded; see the module doc).

    Counts each distinct parameter once (so a tied embedding/output matrix counts once, as the output head),
    leaves out 1-D parameters (norms, biases), and leaves out input-embedding tables unless the same matrix is
    the output head.
    """
    import torch

    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head_weight = getattr(output, "weight", None)
    lookup_ids = {
        id(module.weight)
        for module in model.modules()
        if isinstance(module, torch.nn.Embedding) and module.weight is not head_weight
    }
    total = 0
    for name, param in model.named_parameters():  # named_parameters() yields a shared tensor once
        if param.ndim < 2 or _is_adapter(name) or id(param) in lookup_ids:
            continue
        total += param.numel()
    return total


def adapter_parameter_count(model: Any) -> int:
    """``N_lora``: the LoRA adapter parameters in ``model`` (0 for a model without adapters)."""
    return sum(p.numel() for name, p in model.named_parameters() if _is_adapter(name))
