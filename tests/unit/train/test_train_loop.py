"""The training loop: what full and LoRA change, reproducibility, milestones, schedules, accumulation,
divergence, and budget counting for custom multi-stream losses."""

from __future__ import annotations

import math
import time

import pytest
import torch

from tamperlab.errors import DivergedError
from tamperlab.models import load_model
from tamperlab.train import (
    ChatExample,
    LossOutput,
    TrainSpec,
    causal_lm_loss,
    collate,
    learning_rate_at,
    tokenize_chat,
    train,
)
from tamperlab.train.loop import _unlabelled_shared_prefix, count_batch

EXAMPLES = [
    ChatExample.from_pair("How do I kill a Python process?", "Use the kill command with the process id."),
    ChatExample.from_pair("What is the capital of France?", "The capital of France is Paris."),
    ChatExample.from_pair("Write a poem about the sea.", "The wind and the stars above the harbour."),
    ChatExample.from_pair(
        "Explain photosynthesis.", "Plants turn light, water and carbon dioxide into sugar."
    ),
    ChatExample.from_pair("When does water boil?", "Water boils at 100 degrees Celsius at sea level."),
]


def quick(**overrides) -> TrainSpec:
    values = {"max_steps": 2, "batch_size": 2, "learning_rate": 1e-3, "seed": 0}
    values.update(overrides)
    return TrainSpec(**values)


def test_lora_changes_only_adapter_weights(tiny_model):
    before = {name: p.detach().clone() for name, p in tiny_model.model.named_parameters()}
    originals = dict(tiny_model.model.named_parameters())

    result = train(tiny_model, examples=EXAMPLES, spec=quick(mode="lora", max_steps=3), progress=False)

    for name, param in originals.items():  # peft keeps the original tensors as the frozen base layers
        assert torch.equal(param, before[name]), f"base weight {name} changed under LoRA"
    adapters = {n: p for n, p in result.model.named_parameters() if "lora_" in n}
    assert adapters and all(p.requires_grad for p in adapters.values())
    assert any(p.abs().sum() > 0 for n, p in adapters.items() if "lora_B" in n)  # B starts at zero
    assert result.trainable_parameters == sum(p.numel() for p in adapters.values())
    assert result.adapter_parameters == result.trainable_parameters
    assert result.flops_per_token == 4 * result.matmul_parameters + 6 * result.adapter_parameters


def test_full_fine_tuning_changes_base_weights(tiny_model):
    before = {name: p.detach().clone() for name, p in tiny_model.model.named_parameters()}
    result = train(tiny_model, examples=EXAMPLES, spec=quick(mode="full"), progress=False)
    after = dict(result.model.named_parameters())
    assert result.model is tiny_model.model
    changed = [name for name, p in after.items() if not torch.equal(p, before[name])]
    assert "model.layers.0.self_attn.q_proj.weight" in changed
    assert "model.embed_tokens.weight" in changed
    assert result.flops_per_token == 6 * result.matmul_parameters


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_a_seeded_run_is_reproducible(tiny_model_dir, mode):
    def losses(seed):
        loaded = load_model(str(tiny_model_dir))
        result = train(loaded, examples=EXAMPLES, spec=quick(mode=mode, seed=seed), progress=False)
        return [m.loss for m in result.history]

    first, second = losses(0), losses(0)
    assert first == pytest.approx(second, abs=1e-5)
    assert not losses(1) == pytest.approx(first, abs=1e-5)  # the seed matters (data order), so this can fail


def test_milestones_fire_at_the_requested_steps_with_growing_budgets(tiny_model):
    seen = []
    modes = []
    pause = 0.2

    def on_milestone(budget, model):
        seen.append(budget)
        model.eval()  # the loop must put the model back in train mode
        time.sleep(pause)  # and must not count this time

    def loss_fn(model, batch):
        modes.append(model.training)
        return causal_lm_loss(model, batch)

    spec = quick(max_steps=4, grad_accum=2)
    started = time.perf_counter()
    result = train(
        tiny_model,
        examples=EXAMPLES,
        spec=spec,
        milestones=[4, 0, 1],
        on_milestone=on_milestone,
        loss_fn=loss_fn,
        progress=False,
    )
    elapsed = time.perf_counter() - started

    assert [b.steps for b in seen] == [0, 1, 4]
    assert result.milestones == seen
    assert seen[0].examples == seen[0].tokens == seen[0].flops == 0 and seen[0].loss is None
    assert [b.examples for b in seen] == [s * spec.effective_batch_size for s in (0, 1, 4)]
    assert result.effective_batch_size == 4
    for earlier, later in zip(seen, seen[1:], strict=False):
        assert (
            later.tokens > earlier.tokens and later.flops > earlier.flops and later.seconds > earlier.seconds
        )
    assert all(b.flops == result.flops_per_token * b.tokens for b in seen)
    assert seen[-1] == result.budget
    assert all(modes)
    assert result.budget.seconds < elapsed - 3 * pause


def test_tokens_are_the_non_padding_tokens_of_the_batches(tiny_model):
    spec = quick(max_steps=1, batch_size=5)
    features = [tokenize_chat(tiny_model.tokenizer, e, spec.max_length) for e in EXAMPLES]
    result = train(tiny_model, examples=EXAMPLES, spec=spec, progress=False)
    assert result.budget.tokens == sum(len(f["input_ids"]) for f in features)  # one epoch, every example once


def test_milestones_beyond_max_steps_are_an_error(tiny_model):
    with pytest.raises(ValueError, match="milestone 5"):
        train(tiny_model, examples=EXAMPLES, spec=quick(max_steps=4), milestones=[2, 5], on_milestone=print)


def test_schedule_learning_rates_match_hand_computed_values():
    linear = TrainSpec(learning_rate=1.0, max_steps=10, warmup_steps=2, schedule="linear")
    assert [learning_rate_at(linear, s) for s in (1, 2, 3, 4, 10)] == pytest.approx(
        [0.5, 1.0, 1.0, 0.875, 0.125]
    )
    cosine = linear.model_copy(update={"schedule": "cosine"})
    # step 6: progress 3/8 -> (1 + cos(3π/8))/2 = 0.691342; step 10: progress 7/8 -> 0.038060
    assert [learning_rate_at(cosine, s) for s in (1, 3, 6, 10)] == pytest.approx(
        [0.5, 1.0, 0.691342, 0.038060], abs=1e-6
    )
    constant = linear.model_copy(update={"schedule": "constant"})
    assert [learning_rate_at(constant, s) for s in (1, 2, 3, 10)] == pytest.approx([0.5, 1.0, 1.0, 1.0])


def test_the_loop_uses_the_scheduled_learning_rate(tiny_model):
    spec = quick(max_steps=4, warmup_steps=1, schedule="linear", learning_rate=0.01)
    result = train(tiny_model, examples=EXAMPLES, spec=spec, progress=False)
    assert [m.lr for m in result.history] == pytest.approx([0.01, 0.01, 0.01 * 2 / 3, 0.01 / 3])


def test_grad_accumulation_2x2_matches_1x4(tiny_model_dir):
    def run(batch_size, grad_accum):
        loaded = load_model(str(tiny_model_dir))
        spec = quick(batch_size=batch_size, grad_accum=grad_accum, max_steps=2)
        result = train(loaded, examples=EXAMPLES, spec=spec, progress=False)
        return result, dict(result.model.named_parameters())

    one, one_params = run(4, 1)
    two, two_params = run(2, 2)
    # the loss is normalized by the label tokens of the whole step, so the gradient itself matches, not just
    # Adam's (scale-free) first update
    for a, b in zip(one.history, two.history, strict=True):
        assert a.loss == pytest.approx(b.loss, rel=1e-5)
        assert a.grad_norm == pytest.approx(b.grad_norm, rel=1e-4)
        assert a.examples == b.examples == 4
    for name, param in one_params.items():
        torch.testing.assert_close(param, two_params[name], rtol=1e-4, atol=1e-6)


def test_a_nan_loss_raises_diverged_at_that_step_before_updating(tiny_model):
    calls = []
    snapshot = {}

    def loss_fn(model, batch):
        calls.append(1)
        loss = causal_lm_loss(model, batch)
        return loss * float("nan") if len(calls) == 2 else loss

    def on_milestone(budget, model):
        snapshot.update({n: p.detach().clone() for n, p in model.named_parameters()})

    with pytest.raises(DivergedError, match="step 2") as info:
        train(
            tiny_model,
            examples=EXAMPLES,
            spec=quick(max_steps=4),
            loss_fn=loss_fn,
            milestones=[1],
            on_milestone=on_milestone,
            progress=False,
        )
    assert info.value.step == 2
    assert info.value.budget.steps == 1 and info.value.budget.examples == 2
    assert len(info.value.history) == 1
    for name, param in tiny_model.model.named_parameters():  # the diverged step was not applied
        assert torch.equal(param, snapshot[name])


def test_a_huge_learning_rate_diverges(tiny_model):
    with pytest.raises(DivergedError, match="diverged at step") as info:
        train(tiny_model, examples=EXAMPLES, spec=quick(max_steps=20, learning_rate=1e6), progress=False)
    assert 1 < info.value.step <= 20


def test_a_custom_multi_stream_loss_counts_every_stream(tiny_model):
    tok = tiny_model.tokenizer
    features = [tokenize_chat(tok, e, 128) for e in EXAMPLES]
    harmful = collate(features[:2], tok.pad_token_id)
    harmless = collate(features[2:], tok.pad_token_id)
    pair = {"harmful": harmful, "harmless": harmless}

    def loss_fn(model, batch):
        ascent = -causal_lm_loss(model, batch["harmful"])
        descent = causal_lm_loss(model, batch["harmless"])
        return LossOutput(
            loss=ascent + descent, metrics={"ascent": ascent.detach(), "descent": descent.detach()}
        )

    spec = quick(max_steps=3, grad_accum=2, max_grad_norm=None)
    result = train(tiny_model, spec=spec, loss_fn=loss_fn, batches=iter([pair] * 6), progress=False)

    tokens_per_micro = int(harmful["attention_mask"].sum() + harmless["attention_mask"].sum())
    assert count_batch(pair) == (5, tokens_per_micro)
    assert result.budget.examples == 3 * 2 * 5
    assert result.budget.tokens == 3 * 2 * tokens_per_micro
    assert result.budget.flops == result.flops_per_token * result.budget.tokens
    first = result.history[0]
    assert set(first.metrics) == {"ascent", "descent"}
    assert first.loss == pytest.approx(first.metrics["ascent"] + first.metrics["descent"], rel=1e-5)


def test_loss_output_counts_override_the_batch(tiny_model):
    def loss_fn(model, batch):
        return LossOutput(loss=causal_lm_loss(model, batch), examples=7, tokens=100, flops=12345)

    result = train(tiny_model, examples=EXAMPLES, spec=quick(max_steps=2), loss_fn=loss_fn, progress=False)
    assert (result.budget.examples, result.budget.tokens, result.budget.flops) == (14, 200, 24690)


def test_running_out_of_batches_is_an_error(tiny_model):
    batch = collate(
        [tokenize_chat(tiny_model.tokenizer, EXAMPLES[0], 128)], tiny_model.tokenizer.pad_token_id
    )
    with pytest.raises(ValueError, match="ran out at step 3"):
        train(tiny_model, spec=quick(max_steps=3), batches=[batch, batch], progress=False)


def test_an_uncountable_batch_asks_for_counts():
    with pytest.raises(ValueError, match="LossOutput"):
        count_batch({"vectors": torch.zeros(2, 3)})


def test_spec_rejects_unknown_fields_and_bad_values():
    with pytest.raises(ValueError):
        TrainSpec(learning_rate=0)
    with pytest.raises(ValueError):
        TrainSpec(lr=1e-4)
    assert TrainSpec(batch_size=3, grad_accum=4).effective_batch_size == 12
    assert math.isclose(TrainSpec().learning_rate, 5e-5)


def test_a_milestone_callback_can_show_its_own_progress_bar(tiny_model, monkeypatch):
    # rich < 14 raises LiveError for a second live display; the loop pauses its bar around callbacks.
    from tamperlab.progress import progress_bar

    monkeypatch.delenv("TAMPERLAB_QUIET", raising=False)
    monkeypatch.setattr("tamperlab.train.loop.peak_flops", lambda device: 1e11)  # skip the 1-3 s measurement
    shown = []

    def on_milestone(budget, model):
        with progress_bar("evaluating", total=2) as advance:  # rich allows one live display at a time
            advance(2)
        shown.append(budget.steps)

    result = train(
        tiny_model, examples=EXAMPLES, spec=quick(), milestones=[0, 1, 2], on_milestone=on_milestone
    )
    assert shown == [0, 1, 2]
    assert result.peak_flops == 1e11 and result.mfu == pytest.approx(result.flops_per_second / 1e11)


def _full_logits_loss(model, batch):
    """The loss the long way: every position's logits, then the labelled ones."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = torch.nn.functional.pad(batch["labels"], (0, 1), value=-100)[:, 1:]
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="sum"
    )


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_unembedding_only_labelled_positions_gives_the_same_loss_and_gradients(tiny_model, mode):
    """The loss unembeds only positions with a label; loss and gradients equal the all-positions ones."""
    tok = tiny_model.tokenizer
    batch = collate([tokenize_chat(tok, e) for e in EXAMPLES], tok.pad_token_id)
    model = train(tiny_model, examples=EXAMPLES, spec=quick(mode=mode, max_steps=1), progress=False).model
    base = model.get_base_model() if mode == "lora" else model
    assert base.config.model_type == "llama"  # the fast path is the one tested
    assert _unlabelled_shared_prefix(batch) > 0  # with the shared chat-template start run once
    params = [p for p in model.parameters() if p.requires_grad]

    fast = causal_lm_loss(model, batch, reduction="sum")
    fast_grads = torch.autograd.grad(fast, params)
    slow = _full_logits_loss(model, batch)
    slow_grads = torch.autograd.grad(slow, params)
    assert fast.item() == pytest.approx(slow.item(), rel=1e-5)
    for a, b in zip(fast_grads, slow_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_shared_prefix_stops_at_the_first_difference_label_or_padding():
    ids = torch.tensor([[1, 2, 3, 4, 5], [1, 2, 3, 6, 0], [1, 2, 3, 4, 7]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    unlabelled = torch.full_like(ids, -100)
    assert _unlabelled_shared_prefix({"input_ids": ids, "labels": unlabelled, "attention_mask": mask}) == 3
    labelled = unlabelled.clone()
    labelled[1, 2] = 3  # position 1 predicts a label: it must run per row
    assert _unlabelled_shared_prefix({"input_ids": ids, "labels": labelled, "attention_mask": mask}) == 1
    left_padded = mask.clone()
    left_padded[2, 0] = 0
    left = {"input_ids": ids, "labels": unlabelled, "attention_mask": left_padded}
    assert _unlabelled_shared_prefix(left) == 0
    same = {"input_ids": ids[:1].repeat(2, 1), "labels": unlabelled[:2]}
    assert _unlabelled_shared_prefix(same) == 4  # identical rows keep their last position
    assert _unlabelled_shared_prefix({"input_ids": ids[:1], "labels": unlabelled[:1]}) == 0


def test_other_architectures_take_every_positions_logits(tiny_model, monkeypatch):
    """A model type not known to unembed plainly takes the general path, with the same loss."""
    from tamperlab.train import loop

    tok = tiny_model.tokenizer
    batch = collate([tokenize_chat(tok, e) for e in EXAMPLES], tok.pad_token_id)
    fast = causal_lm_loss(tiny_model.model, batch, reduction="sum").item()
    monkeypatch.setattr(loop, "PLAIN_UNEMBEDDING", frozenset())
    calls = []
    tiny_model.model.register_forward_hook(lambda *args: calls.append(1))
    general = causal_lm_loss(tiny_model.model, batch, reduction="sum").item()
    assert calls, "the general path runs the whole model (its forward, with the unembedding)"
    assert general == pytest.approx(fast, rel=1e-5)
    assert general == pytest.approx(_full_logits_loss(tiny_model.model, batch).item(), rel=1e-5)


def test_progress_clock_formats_training_seconds():
    from tamperlab.train.loop import _clock

    assert _clock(0.0) == "0:00:00" and _clock(3725.9) == "1:02:05"


def test_no_assistant_token_within_max_length_is_an_error_not_a_spent_budget(tiny_model):
    from tamperlab.errors import ConfigError

    before = {n: p.detach().clone() for n, p in tiny_model.model.named_parameters()}
    fired = []
    with pytest.raises(
        ConfigError, match=r"max_length=8: none of the 5 training examples keeps an assistant"
    ):
        train(
            tiny_model,
            examples=EXAMPLES,
            spec=quick(max_length=8),
            milestones=[0, 1],
            on_milestone=lambda budget, model: fired.append(budget),
        )
    assert fired == []  # no milestone recorded a budget that trained nothing
    assert all(torch.equal(p, before[n]) for n, p in tiny_model.model.named_parameters())


def test_a_step_without_labelled_tokens_is_an_error(tiny_model):
    from tamperlab.errors import ConfigError

    pad = tiny_model.tokenizer.pad_token_id or 0
    empty = tokenize_chat(tiny_model.tokenizer, EXAMPLES[0], 8)
    labelled = tokenize_chat(tiny_model.tokenizer, EXAMPLES[1], 128)
    assert all(label == -100 for label in empty["labels"][1:])
    with pytest.raises(ConfigError, match=r"step 2: .* no assistant token within max_length=8"):
        train(
            tiny_model,
            spec=quick(batch_size=1, max_length=8),
            batches=iter([collate([labelled], pad), collate([empty], pad)]),
        )
