"""``quantize``: weight quantization as a modification: does compression alone change refusal?

Released models are routinely re-published quantized (GGUF, GPTQ, AWQ, bitsandbytes), and a safeguard only a
few ULPs deep could be rounded away. Two round-to-nearest (RTN) schemes, the baselines of the GPTQ and AWQ
papers:

- ``int8``: per-output-channel symmetric: each weight row gets ``scale = max|w| / 127`` and ``q = round(w /
  scale)`` in [-127, 127] (LLM.int8()'s vector-wise weight quantization, without its outlier decomposition).
- ``int4``: group-wise over the input dimension (groups of ``group_size``, default 64; 32/64/128 are usual):
  asymmetric by default, ``scale = (max - min) / 15`` and an integer zero point so ``q`` is in [0, 15]; or
  symmetric (``symmetric: true``), ``scale = max|w| / 7`` and ``q`` in [-8, 7] (llama.cpp's Q4_0 style). A row
  whose length is not a multiple of the group has a shorter last group (padded by repeating its last weight).

Either way every element's rounding error is at most ``scale / 2`` of its channel or group.

This is *simulated* ("fake") quantization: weights are rounded to the integer grid and dequantized straight
back to the model's dtype, so the model runs on CPU as usual and computes with exactly the values a real
int8/int4 kernel would hold (real kernels add their own activation arithmetic, which this does not model).
Quantized: every ``nn.Linear`` weight except the output head (and so not the tied input embedding), as GPTQ
and AWQ do; ``include_head: true`` quantizes the head too. Biases and norms stay as they are.

Budget: step 1 = the one edit; 0 examples and tokens; FLOPs = the elementwise operations of the round trip
(:data:`OPS_PER_WEIGHT` per weight; nothing next to a forward pass); seconds = wall time of the edit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from tamperlab.attacks.base import ATTACKS, Attack, AttackContext, MilestoneCallback
from tamperlab.attacks.one_shot import EditCost, run_one_shot
from tamperlab.config import Spec

log = logging.getLogger(__name__)

OPS_PER_WEIGHT = 6
"""Elementwise operations per weight of a quantize-dequantize round trip: range reduction, divide, round,
clamp, subtract/add zero point, multiply."""


def quantize_int8(weight: Any) -> tuple[Any, Any]:
    """Per-output-channel symmetric int8 RTN of a 2-D weight ``[out, in]``.

    Returns:
        (``q``: int8 ``[out, in]`` in [-127, 127], ``scale``: float32 ``[out, 1]``); ``q * scale``
        dequantizes.
    """
    import torch

    w = weight.detach().float()
    scale = w.abs().amax(dim=1, keepdim=True) / 127.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row stays zero with any scale
    q = torch.clamp(torch.round(w / scale), -127, 127).to(torch.int8)
    return q, scale


def _grouped(weight: Any, group_size: int) -> tuple[Any, int]:
    """``[out, in]`` → ``[out, groups, group_size]``, float32; a short last group repeats its last weight."""
    import torch

    w = weight.detach().float()
    pad = (-w.shape[1]) % group_size
    if pad:
        w = torch.cat([w, w[:, -1:].expand(-1, pad)], dim=1)
    return w.reshape(w.shape[0], -1, group_size), pad


def quantize_int4(weight: Any, group_size: int = 64, symmetric: bool = False) -> tuple[Any, Any, Any]:
    """Group-wise 4-bit RTN of a 2-D weight ``[out, in]`` (groups along the input dimension).

    Returns:
        (``q``: uint8/int8 ``[out, groups, group_size]``, ``scale`` and ``zero``: float32 ``[out, groups,
        1]``); ``(q - zero) * scale`` dequantizes (``zero`` is 0 when symmetric). Padding of a short last
        group is included in ``q``; :func:`dequantize_int4` removes it.
    """
    import torch

    g, _ = _grouped(weight, group_size)
    if symmetric:
        scale = g.abs().amax(dim=2, keepdim=True) / 7.0
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        q = torch.clamp(torch.round(g / scale), -8, 7).to(torch.int8)
        return q, scale, torch.zeros_like(scale)
    low = g.amin(dim=2, keepdim=True)
    high = g.amax(dim=2, keepdim=True)
    scale = (high - low) / 15.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero = torch.round(-low / scale)
    q = torch.clamp(torch.round(g / scale) + zero, 0, 15).to(torch.uint8)
    return q, scale, zero


def dequantize_int4(q: Any, scale: Any, zero: Any, in_features: int) -> Any:
    """Back to a float32 ``[out, in]`` weight (the padding of a short last group dropped)."""
    w = (q.float() - zero) * scale
    return w.reshape(w.shape[0], -1)[:, :in_features]


def fake_quantize(weight: Any, scheme: str, group_size: int = 64, symmetric: bool = False) -> Any:
    """The weight after a quantize-dequantize round trip, in float32."""
    if scheme == "int8":
        q, scale = quantize_int8(weight)
        return q.float() * scale
    if scheme == "int4":
        q, scale, zero = quantize_int4(weight, group_size, symmetric)
        return dequantize_int4(q, scale, zero, weight.shape[1])
    raise ValueError(f"unknown quantization scheme {scheme!r}; expected int8 or int4")


def quantizable_linears(model: Any, include_head: bool = False) -> list[tuple[str, Any]]:
    """``(name, module)`` of the ``nn.Linear`` layers quantized: all but the output head unless asked."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head_weight = getattr(head, "weight", None)
    return [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and (include_head or module.weight is not head_weight)
    ]


class QuantizeArgs(Spec):
    """Arguments of ``quantize``."""

    scheme: Literal["int8", "int4"] = Field(
        default="int8",
        description="'int8': per-channel symmetric; 'int4': group-wise (see the module docstring).",
    )
    group_size: int = Field(
        default=64, ge=2, description="int4 only: weights per group along the input dimension."
    )
    symmetric: bool = Field(
        default=False, description="int4 only: symmetric (Q4_0-like) instead of min/max with zero point."
    )
    include_head: bool = Field(
        default=False, description="Quantize the output head (and a tied input embedding) too."
    )


class Quantize(Attack):
    """Round every linear weight to an int8 or int4 grid (simulated: dequantized back)."""

    one_shot = True  # one edit, not a trajectory: its break cost is never interpolated (see one_shot.py)

    def __init__(self, args: QuantizeArgs) -> None:
        self.args = args
        if args.scheme == "int8":
            self.label = "quantize-int8"
        else:
            self.label = f"quantize-int4-g{args.group_size}" + ("-sym" if args.symmetric else "")
        self.stats: dict[str, Any] = {}

    def describe_data(self, ctx: AttackContext) -> dict[str, Any]:
        a = self.args
        if a.scheme == "int8":
            how = "int8, per output channel, symmetric round-to-nearest; fp16 scale per row"
        else:
            kind = "symmetric" if a.symmetric else "asymmetric (scale and zero point)"
            how = f"int4, groups of {a.group_size} along the input dimension, {kind} round-to-nearest"
        return {
            "source": "no data: weight quantization",
            "distinct_examples": 0,
            "template": how,
            "effective_batch": 0,
            "simulated": "fake quantization: weights rounded to the integer grid and dequantized back to the "
            "model's dtype (run as usual on CPU)",
            "quantized": "every nn.Linear weight"
            + (" including the output head" if a.include_head else " except the output head"),
            "budget": f"step 1 = one edit; FLOPs = {OPS_PER_WEIGHT} elementwise ops per quantized weight; "
            "seconds = wall time",
        }

    def apply(self, model: Any) -> EditCost:
        """Quantize ``model``'s linear weights in place; returns the edit's cost."""
        import torch

        a = self.args
        count, worst, sq_err, sq_norm = 0, 0.0, 0.0, 0.0
        with torch.no_grad():
            for _, module in quantizable_linears(model, a.include_head):
                w = module.weight
                new = fake_quantize(w, a.scheme, a.group_size, a.symmetric)
                diff = new - w.float()
                worst = max(worst, float(diff.abs().max()))
                sq_err += float(diff.pow(2).sum())
                sq_norm += float(w.float().pow(2).sum())
                w.copy_(new.to(w.dtype))
                count += w.numel()
        self.stats = {
            "weights_quantized": count,
            "max_abs_error": worst,
            "relative_rms_error": (sq_err / sq_norm) ** 0.5 if sq_norm else 0.0,
        }
        log.info("%s: %s", self.label, self.stats)
        return EditCost(flops=OPS_PER_WEIGHT * count)

    def run(
        self,
        loaded: Any,
        ctx: AttackContext,
        *,
        seed: int,
        milestones: Sequence[int],
        on_milestone: MilestoneCallback,
    ) -> None:
        run_one_shot(loaded, on_milestone, lambda: self.apply(loaded.model))


@ATTACKS.register("quantize", args_model=QuantizeArgs)
def quantize(args: QuantizeArgs) -> Quantize:
    return Quantize(args)
