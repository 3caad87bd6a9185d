"""What attacks and defenses need to know about a causal LM's structure, found by inspecting its modules.

Nothing here is a list of one family's module names: the decoder layers are the model's ``ModuleList`` of
``num_hidden_layers`` blocks, linear layers are ``nn.Linear`` or transformers' GPT-2 ``Conv1D`` (whose weight
is stored transposed, ``[in, out]``), and the final norm is the decoder's norm module outside the layers.
Works for Llama, Mistral, Qwen2/3, Gemma2/3, Phi3, GPT-NeoX, GPT-2 and OLMo2 (and other decoder-only models
built the same way); a PEFT-wrapped model is inspected through its base model.

- :func:`lora_targets`: the distinct names of the linear layers inside the decoder layers (attention and MLP
  projections, e.g. ``q_proj … down_proj``; ``c_attn, c_proj, c_fc`` for GPT-2);
- :func:`residual_writers`: the linear layers whose output is added to the residual stream: in each decoder
  layer, of each parent module's (attention's, MLP's) linear layers of output width ``hidden``, the one a
  forward pass calls last (``o_proj`` and ``down_proj``; GPT-2's two ``c_proj``; GPT-NeoX's ``dense`` and
  ``dense_4h_to_h``). In post-norm blocks (Gemma2/3, OLMo2) a norm with an elementwise scale follows them,
  so removing a direction from their output leaves a little of it after that norm;
- :func:`decoder_layers`, :func:`final_norm`, :func:`position_embeddings`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tamperlab.errors import ConfigError


def base_model(model: Any) -> Any:
    """The transformers model under a PEFT wrapper (the model itself otherwise)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def is_linear(module: Any) -> bool:
    """``nn.Linear`` (LoRA's wrapped layers included) or transformers' ``Conv1D`` (GPT-2)."""
    import torch

    if isinstance(module, torch.nn.Linear):
        return True
    base = getattr(module, "base_layer", None)  # a PEFT LoRA layer wrapping a linear one
    if base is not None and base is not module:
        return is_linear(base)
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and hasattr(module, "weight")


def out_features(module: Any) -> int:
    """Output width of a linear-like module."""
    module = getattr(module, "base_layer", module)
    if type(module).__name__ == "Conv1D":
        return int(module.nf)
    return int(module.out_features)


def is_transposed(module: Any) -> bool:
    """True when the weight is ``[in, out]`` (``Conv1D``: ``y = x W + b``) rather than ``[out, in]``."""
    return type(getattr(module, "base_layer", module)).__name__ == "Conv1D"


def _num_layers(model: Any) -> int | None:
    config = getattr(model, "config", None)
    config = getattr(config, "get_text_config", lambda: config)() if config is not None else None
    for attr in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(config, attr, None)
        if isinstance(value, int):
            return value
    return None


def decoder_layers_named(model: Any) -> tuple[str, Any]:
    """``(qualified name, ModuleList)`` of the decoder's blocks: the ModuleList holding ``num_hidden_layers``
    modules of one class (the shallowest such list)."""
    import torch

    model = base_model(model)
    want = _num_layers(model)
    best: tuple[str, Any] | None = None
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.ModuleList) or len(module) == 0:
            continue
        if want is not None and len(module) != want:
            continue
        if len({type(m) for m in module}) != 1 or not any(True for _ in module[0].parameters()):
            continue
        if best is None or name.count(".") < best[0].count("."):
            best = (name, module)
    if best is None:
        raise ConfigError(
            f"{type(model).__name__}: cannot find its decoder layers (a ModuleList of {want} blocks)"
        )
    return best


def decoder_layers(model: Any) -> Any:
    """The decoder's blocks, in order (a ``ModuleList``)."""
    return decoder_layers_named(model)[1]


def _is_norm(module: Any) -> bool:
    import torch

    if isinstance(module, torch.nn.LayerNorm | torch.nn.GroupNorm):
        return True
    name = type(module).__name__.lower()
    return "norm" in name and hasattr(module, "weight") and not list(module.children())


def final_norm(model: Any) -> Any:
    """The norm applied to the last layer's output before the LM head: the last norm module registered in
    the decoder layers' parent, outside the layers (``norm``, ``ln_f``, ``final_layer_norm``)."""
    model = base_model(model)
    layers_name, _ = decoder_layers_named(model)
    parent_name = layers_name.rsplit(".", 1)[0] if "." in layers_name else ""
    parent = model.get_submodule(parent_name) if parent_name else model
    norms = [m for n, m in parent.named_children() if _is_norm(m)]
    if not norms:
        raise ConfigError(
            f"{type(model).__name__}: cannot find its final norm (no norm module beside {layers_name})"
        )
    return norms[-1]


def hidden_size(model: Any) -> int:
    return int(base_model(model).get_input_embeddings().weight.shape[1])


def linear_modules(model: Any) -> list[tuple[str, Any]]:
    """``(qualified name, module)`` of every linear-like layer inside the decoder layers."""
    model = base_model(model)
    layers_name, layers = decoder_layers_named(model)
    out = []
    for i, layer in enumerate(layers):
        for name, module in layer.named_modules():
            if name and is_linear(module) and ".lora_" not in f".{name}" and "base_layer" not in name:
                out.append((f"{layers_name}.{i}.{name}", module))
    return out


def lora_targets(model: Any) -> list[str]:
    """The distinct names (last component) of the decoder layers' linear layers, in first-seen order."""
    names: list[str] = []
    for qualified, _ in linear_modules(model):
        leaf = qualified.rsplit(".", 1)[-1]
        if leaf not in names:
            names.append(leaf)
    if not names:
        raise ConfigError(f"{type(base_model(model)).__name__}: no linear layers in its decoder layers")
    return names


def _layer_call_order(model: Any, layer: Any) -> list[str]:
    """Names (within ``layer``) of its linear layers in the order a forward pass calls them: one pass over two
    tokens (registration order is not call order: Phi3 registers ``o_proj`` before ``qkv_proj``)."""
    import torch

    names = {
        id(m): n
        for n, m in layer.named_modules()
        if n and is_linear(m) and "lora_" not in n and "base_layer" not in n
    }
    order: list[str] = []
    hooks = [
        m.register_forward_hook(lambda mod, _i, _o: order.append(names[id(mod)]))
        for n, m in layer.named_modules()
        if id(m) in names
    ]
    device = next(model.parameters()).device
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(input_ids=torch.tensor([[0, 1]], device=device), use_cache=False)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    seen = list(dict.fromkeys(order))
    return seen + [n for n in names.values() if n not in seen]


def residual_writers(model: Any) -> list[tuple[str, Any]]:
    """``(qualified name, module)`` of the linear layers writing into the residual stream (see the module
    docstring): per decoder layer, of each parent module's linear layers of output width ``hidden``, the one
    a forward pass calls last."""
    model = base_model(model)
    width = hidden_size(model)
    layers_name, layers = decoder_layers_named(model)
    order = _layer_call_order(model, layers[0])  # every block has the same structure
    last_of_parent: dict[str, str] = {}
    for name in order:
        module = layers[0].get_submodule(name)
        if out_features(module) == width:
            last_of_parent[name.rsplit(".", 1)[0] if "." in name else ""] = name
    found = [
        (f"{layers_name}.{i}.{name}", layer.get_submodule(name))
        for i, layer in enumerate(layers)
        for name in last_of_parent.values()
    ]
    if not found:
        raise ConfigError(
            f"{type(model).__name__}: no linear layer in its decoder layers writes the hidden width {width}"
        )
    return found


def named_writers(model: Any, names: Sequence[str]) -> list[tuple[str, Any]]:
    """``(qualified name, module)`` of the linear layers whose last name component is in ``names``."""
    wanted = set(names)
    model = base_model(model)
    return [
        (n, m)
        for n, m in model.named_modules()
        if n.rsplit(".", 1)[-1] in wanted and is_linear(m) and "lora_" not in n
    ]


def position_embeddings(model: Any) -> list[Any]:
    """Learned absolute position embeddings (GPT-2's ``wpe``), which also write into the residual stream:
    every ``nn.Embedding`` outside the decoder layers other than the input (and output) embeddings."""
    import torch

    model = base_model(model)
    token = model.get_input_embeddings()
    layers_name, _ = decoder_layers_named(model)
    out = []
    for name, module in model.named_modules():
        if (
            isinstance(module, torch.nn.Embedding)
            and module is not token
            and not name.startswith(layers_name)
        ):
            out.append(module)
    return out


def describe(model: Any) -> dict[str, Any]:
    """What inspection found, for records and error messages."""
    layers_name, layers = decoder_layers_named(model)
    return {
        "model_type": getattr(getattr(base_model(model), "config", None), "model_type", None),
        "decoder_layers": f"{layers_name} ({len(layers)})",
        "lora_targets": lora_targets(model),
        "residual_writers": sorted({n.split(".")[-1] for n, _ in residual_writers(model)}),
        "final_norm": type(final_norm(model)).__name__,
    }


def mlp_modules(model: Any) -> list[Any]:
    """Each decoder layer's MLP block: the parent of the residual writer a forward pass calls last."""
    model = base_model(model)
    layers_name, layers = decoder_layers_named(model)
    writers = residual_writers(model)
    prefix = f"{layers_name}.0."
    first = [n.removeprefix(prefix) for n, _ in writers if n.startswith(prefix)]
    if not first or "." not in first[-1]:
        raise ConfigError(f"{type(model).__name__}: cannot find the MLP block of its decoder layers")
    parent = first[-1].rsplit(".", 1)[0]
    return [layer.get_submodule(parent) for layer in layers]
