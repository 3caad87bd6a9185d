"""quantize: round trips stay within half a quantization step, the edit hits every linear weight but the head,
the model still runs, and the budget is one edit with its elementwise operations."""

from __future__ import annotations

import pytest
import torch

from tamperlab.attacks import AttackContext, build_attack
from tamperlab.attacks.quantization import (
    OPS_PER_WEIGHT,
    dequantize_int4,
    fake_quantize,
    quantizable_linears,
    quantize_int4,
    quantize_int8,
)
from tamperlab.config import ModelSpec


def weight(rows: int = 6, cols: int = 40, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g) * 0.05
    w[0, 3] = 0.9  # an outlier widens its row's (or group's) scale
    w[1] = 0.0  # an all-zero row must stay zero
    return w


def test_int8_round_trip_error_is_at_most_half_a_step():
    w = weight()
    q, scale = quantize_int8(w)
    assert q.dtype == torch.int8 and int(q.abs().max()) <= 127 and scale.shape == (6, 1)
    error = (q.float() * scale - w).abs()
    assert torch.all(error <= scale / 2 + 1e-7)
    assert torch.equal(fake_quantize(w, "int8")[1], torch.zeros(40))
    assert torch.isclose(scale[0, 0], torch.tensor(0.9 / 127))  # symmetric: the row's max |w| maps to 127


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("group", [8, 16, 32])
def test_int4_round_trip_error_is_at_most_half_a_step(group, symmetric):
    w = weight()  # 40 columns: groups of 16 and 32 leave a short last group
    q, scale, zero = quantize_int4(w, group, symmetric)
    low, high = (-8, 7) if symmetric else (0, 15)
    assert int(q.min()) >= low and int(q.max()) <= high
    back = dequantize_int4(q, scale, zero, w.shape[1])
    per_element = scale.expand(-1, -1, group).reshape(w.shape[0], -1)[:, : w.shape[1]]
    assert back.shape == w.shape
    assert torch.all((back - w).abs() <= per_element / 2 + 1e-7)
    assert torch.equal(fake_quantize(w, "int4", group, symmetric), back)


def test_int4_has_at_most_sixteen_levels_per_group():
    w = weight(cols=64)
    back = fake_quantize(w, "int4", 32)
    for row in back:
        for group in row.split(32):
            assert len(torch.unique(group)) <= 16


def test_quantize_attack_edits_linears_not_the_tied_head_and_model_still_runs(tiny_model):
    model = tiny_model.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    attack = build_attack("quantize", {"scheme": "int4", "group_size": 16})
    assert attack.label == "quantize-int4-g16"
    assert "fake quantization" in attack.describe_data(AttackContext(unaligned=ModelSpec()))["simulated"]
    seen = []
    attack.run(
        tiny_model,
        AttackContext(unaligned=ModelSpec()),
        seed=0,
        milestones=[0, 4, 8],
        on_milestone=lambda budget, m: seen.append(budget),
    )
    assert [b.steps for b in seen] == [0, 1]  # one edit, whatever milestones the run declares
    quantized = quantizable_linears(model)
    n_weights = sum(m.weight.numel() for _, m in quantized)
    assert seen[1].flops == OPS_PER_WEIGHT * n_weights and seen[1].examples == 0 and seen[1].tokens == 0
    assert seen[1].seconds > 0
    assert attack.stats["weights_quantized"] == n_weights
    names = {f"{n}.weight" for n, _ in quantized}
    for name, param in model.named_parameters():
        changed = not torch.equal(param, before[name])
        assert changed == (name in names), name  # embeddings (tied head) and norms untouched
    ids = torch.tensor([tiny_model.tokenizer("Hello there", add_special_tokens=False)["input_ids"]])
    assert torch.isfinite(model(ids).logits).all()


def test_int8_attack_label_and_rows_on_the_grid(tiny_model):
    attack = build_attack("quantize", {})
    assert attack.label == "quantize-int8"
    attack.apply(tiny_model.model)
    for _, module in quantizable_linears(tiny_model.model):
        w = module.weight.detach()
        scale = w.abs().amax(1, keepdim=True) / 127
        assert torch.allclose(w / scale, torch.round(w / scale), atol=1e-3)  # already on the int8 grid
