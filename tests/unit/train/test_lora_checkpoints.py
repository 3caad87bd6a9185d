"""Saving a LoRA model at a milestone (keep_checkpoints) leaves the live model training with its adapters."""

from __future__ import annotations

import torch

from tamperlab.models import load_model
from tamperlab.models.loading import cached_model_dir, save_model
from tamperlab.train import ChatExample, TrainSpec, train

EXAMPLES = [
    ChatExample.from_pair("What is the capital of France?", "The capital of France is Paris."),
    ChatExample.from_pair("When does water boil?", "Water boils at 100 degrees Celsius at sea level."),
]


def test_a_lora_checkpoint_at_a_milestone_does_not_stop_training(tiny_model):
    saved = {}

    def on_milestone(budget, model):
        save_model(model, tiny_model.tokenizer, f"ckpt-{budget.steps}")
        with torch.no_grad():
            ids = torch.tensor([[1, 2, 3, 4]])
            saved[budget.steps] = model(input_ids=ids).logits.clone()

    spec = TrainSpec(mode="lora", max_steps=3, batch_size=2, learning_rate=1e-2, max_length=128, seed=0)
    result = train(tiny_model, examples=EXAMPLES, spec=spec, milestones=[1, 2, 3], on_milestone=on_milestone)
    assert result.budget.steps == 3 and all(h.loss > 0 for h in result.history)
    assert any("lora_" in n for n, _ in result.model.named_parameters())  # adapters still in the live model
    assert result.history[2].loss != result.history[1].loss  # it kept training after the checkpoints
    ids = torch.tensor([[1, 2, 3, 4]])
    for step in (1, 2):
        reloaded = load_model(str(cached_model_dir(f"ckpt-{step}"))).model.eval()
        with torch.no_grad():
            logits = reloaded(input_ids=ids).logits
        torch.testing.assert_close(logits, saved[step], atol=1e-4, rtol=1e-4)  # the merged copy is that model
        assert not any("lora_" in n for n, _ in reloaded.named_parameters())
    assert not torch.allclose(saved[1], saved[2])  # the weights moved between milestones
