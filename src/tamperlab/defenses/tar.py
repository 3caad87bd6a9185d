"""``tar``: a tamper-resistance trainer in the spirit of TAR (Tamirisa et al. 2024, arXiv 2408.00761).

Each outer step trains the model on three things at once::

    L = w_s · L_refusal(θ)  +  w_c · L_LM(harmless; θ)  +  w_t · L_tamper(θ'),   θ' = adapt_K(θ)

- ``L_refusal``: the safeguard, the LM loss of refusals to harmful requests (as ``safety-sft`` trains it);
- ``L_LM(harmless)``: capability, the LM loss of reference answers to harmless requests;
- ``L_tamper(θ')``: the tamper-resistance loss at ``θ'``, the weights after a simulated attack: ``K`` steps of
  harmful fine-tuning (AdamW or SGD, on the adversary's data, from a copy of the current weights; the
  learning rate drawn per outer step from ``inner_learning_rates``, TAR's sampled adversaries).
  ``tamper_objective="refusal"``: the refusal loss at ``θ'`` (the attacked model should still refuse);
  ``"harmful-ascent"``: ``−log(1 + L_LM(harmful; θ'))`` on a held-out adversary batch (the attacked model
  should still not have learnt the harmful answers; the log saturates the ascent as in RepNoise).

The meta-gradient is **first order** (first-order MAML): ``∇_θ' L_tamper(θ')`` is applied to ``θ`` as if it
were ``∇_θ L_tamper``, dropping the Jacobian ``∂θ'/∂θ`` (TAR's own implementation is first order too). It
enters the shared training loop through a straight-through surrogate whose value is ``L_tamper(θ')`` and
whose gradient with respect to ``θ`` is that vector, so the loop's clipping, optimizer and divergence checks
apply unchanged.

What TAR does that this does not: the paper's initial "random mapping" stage, its DPO/entropy losses for
particular hazards, and its large, diverse adversary set (many attack configurations); this trainer's
adversary is harmful-sft itself (full fine-tuning, learning rates drawn from a list).

Budget: every inner step is a forward and backward pass through the whole model, and so is the tamper loss;
each micro-batch reports them (examples, tokens) beside the outer passes, so the budget's FLOPs
(``6·N·tokens``) include the whole inner loop.
"""

from __future__ import annotations

import copy
import logging
import math
import random
from typing import Any, Literal

from pydantic import Field, field_validator

from tamperlab.config import DataRef
from tamperlab.defenses.base import DEFENSES, Defense, DefenseOutcome
from tamperlab.train.loop import LossOutput, TrainSpec, causal_lm_loss, train

log = logging.getLogger(__name__)


class TarArgs(TrainSpec):
    """Tamper-resistance training: a TrainSpec (outer loop), the simulated adversary and the loss weights."""

    learning_rate: float = Field(default=2e-5, gt=0, description="Outer (defender's) peak learning rate.")
    max_steps: int = Field(default=30, ge=1, description="Outer optimizer steps.")
    batch_size: int = Field(default=4, ge=1, description="Examples per stream per outer micro-batch.")
    harmful: DataRef = Field(
        default=DataRef(source="builtin:harmful", split="train"),
        description="Harmful requests: refused in the safeguard loss, answered in the adversary's data.",
    )
    harmless: DataRef = Field(
        default=DataRef(source="builtin:harmless", split="train"),
        description="Harmless requests with reference answers (capability loss).",
    )
    adversary_data: str = Field(
        default="self-completions",
        description="The simulated attacker's data, as harmful-sft's 'data': 'self-completions', "
        "'affirmative' or 'chat-jsonl:PATH'.",
    )
    adversary_prompts: DataRef | None = Field(
        default=None, description="Requests the adversary's data is built from; None = the harmful set above."
    )
    n_examples: int | None = Field(
        default=None, ge=1, description="Use at most this many examples per stream."
    )
    completion_tokens: int = Field(
        default=64, ge=8, description="Length of self-completions (harmful-sft's default)."
    )
    unaligned_model: str | None = Field(
        default=None,
        description="Model whose completions are the adversary's data; None = the defended model's root.",
    )
    inner_steps: int = Field(default=4, ge=1, description="Simulated attack steps per outer step (K).")
    inner_learning_rates: list[float] = Field(
        default_factory=lambda: [1e-5, 3e-5, 1e-4],
        min_length=1,
        description="The simulated attacker's learning rate, drawn per outer step (seeded) from this list.",
    )
    inner_optimizer: Literal["adamw", "sgd"] = Field(
        default="adamw",
        description="The simulated attacker's optimizer ('adamw', as harmful-sft; fresh each step).",
    )
    inner_batch_size: int | None = Field(
        default=None, ge=1, description="Adversary batch size; None = batch_size."
    )
    inner_max_grad_norm: float | None = Field(
        default=1.0, gt=0, description="The simulated attacker's gradient clipping (harmful-sft's default)."
    )
    tamper_objective: Literal["refusal", "harmful-ascent"] = Field(
        default="refusal",
        description="Loss at the attacked weights: refusals kept, or the harmful answers' "
        "LM loss ascended (log-saturated).",
    )
    safeguard_weight: float = Field(default=1.0, ge=0, description="w_s: weight of the refusal loss.")
    capability_weight: float = Field(default=1.0, ge=0, description="w_c: weight of the harmless LM loss.")
    tamper_weight: float = Field(default=1.0, ge=0, description="w_t: weight of the tamper-resistance loss.")

    @field_validator("mode")
    @classmethod
    def _full_only(cls, value: str) -> str:
        if value != "full":
            raise ValueError(
                "tar trains every weight (the simulated attacker fine-tunes them all): mode must be 'full'"
            )
        return value


def _tensor_tokens(batch: dict[str, Any]) -> tuple[int, int]:
    mask = batch["attention_mask"]
    return int(mask.shape[0]), int(mask.sum())


class TamperResistanceLoss:
    """The TAR objective on ``{"refusal", "harmless", "adversary": {"0": …}, "tamper"}`` micro-batches.

    Metrics per step: ``safeguard`` and ``capability`` (outer losses at θ), ``tamper`` (the tamper-resistance
    loss at the attacked weights θ'), ``adversary_first`` / ``adversary_last`` (the simulated attacker's loss
    at its first and last step) and ``inner_lr``.
    """

    def __init__(self, args: TarArgs) -> None:
        self.args = args
        self._rng = random.Random(args.seed)
        self._adversary: Any = None

    def _copy_of(self, model: Any) -> Any:
        """The adversary's model, a copy of ``model``'s current weights (allocated once, then reused)."""
        import torch

        if self._adversary is None:
            self._adversary = copy.deepcopy(model)
            self._adversary.requires_grad_(True)
        with torch.no_grad():
            for mine, theirs in zip(self._adversary.parameters(), model.parameters(), strict=True):
                mine.copy_(theirs)
                mine.grad = None
        self._adversary.train()
        return self._adversary

    def tamper_loss(self, model: Any, batch: dict[str, Any]) -> Any:
        """The tamper-resistance loss of ``model`` on ``batch["tamper"]`` (lower = more tamper-resistant)."""
        import torch

        loss = causal_lm_loss(model, batch["tamper"])
        return loss if self.args.tamper_objective == "refusal" else -torch.log1p(loss)

    def adapt(self, model: Any, batch: dict[str, Any], lr: float) -> tuple[Any, list[float]]:
        """Simulate the attack: K fine-tuning steps on ``batch["adversary"]`` from a copy of ``model``.

        Returns the adapted copy (θ') and the adversary's loss at each of its steps.
        """
        import torch

        adversary = self._copy_of(model)
        params = [p for p in adversary.parameters() if p.requires_grad]
        if self.args.inner_optimizer == "adamw":
            optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
        else:
            optimizer = torch.optim.SGD(params, lr=lr)
        losses = []
        for k in range(self.args.inner_steps):
            optimizer.zero_grad(set_to_none=True)
            loss = causal_lm_loss(adversary, batch["adversary"][str(k)])
            loss.backward()
            if self.args.inner_max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, self.args.inner_max_grad_norm)
            optimizer.step()
            losses.append(float(loss.detach()))
        optimizer.zero_grad(set_to_none=True)
        return adversary, losses

    def post_adaptation_loss(self, model: Any, batch: dict[str, Any], lr: float) -> float:
        """The tamper loss after a simulated attack at learning rate ``lr`` (``model`` is left unchanged)."""
        adversary, _ = self.adapt(model, batch, lr)
        return float(self.tamper_loss(adversary, batch).detach())

    def __call__(self, model: Any, batch: dict[str, Any]) -> LossOutput:
        import torch

        a = self.args
        lr = self._rng.choice(a.inner_learning_rates)
        examples = tokens = 0
        for name in ("refusal", "harmless", "tamper"):
            e, t = _tensor_tokens(batch[name])
            examples, tokens = examples + e, tokens + t
        for k in range(a.inner_steps):
            e, t = _tensor_tokens(batch["adversary"][str(k)])
            examples, tokens = examples + e, tokens + t

        # Inner loop: the simulated attack, then the tamper loss and its gradient at the attacked weights θ'.
        adversary, adversary_losses = self.adapt(model, batch, lr)
        tamper = self.tamper_loss(adversary, batch)
        tamper.backward()
        meta_grads = [p.grad for p in adversary.parameters()]

        # Outer losses at θ, and the first-order surrogate: value L_tamper(θ'), gradient ∇_θ' L_tamper(θ').
        safeguard = causal_lm_loss(model, batch["refusal"])
        capability = causal_lm_loss(model, batch["harmless"])
        surrogate = torch.zeros((), device=safeguard.device)
        for p, g in zip(model.parameters(), meta_grads, strict=True):
            if g is not None and p.requires_grad:
                surrogate = surrogate + (p * g.detach()).sum()
        tamper_term = tamper.detach() + surrogate - surrogate.detach()
        loss = (
            a.safeguard_weight * safeguard + a.capability_weight * capability + a.tamper_weight * tamper_term
        )
        for p in adversary.parameters():
            p.grad = None
        metrics = {
            "safeguard": safeguard.detach(),
            "capability": capability.detach(),
            "tamper": tamper.detach(),
            "adversary_first": adversary_losses[0],
            "adversary_last": adversary_losses[-1],
            "inner_lr": lr,
        }
        return LossOutput(loss=loss, examples=examples, tokens=tokens, metrics=metrics)


class Tar(Defense):
    def __init__(self, args: TarArgs) -> None:
        self.args = args
        self.label = "tar"

    def build_data(self, loaded: Any) -> tuple[dict[str, list], dict[str, Any]]:
        """The refusal, harmless and adversary examples, and a record of where they came from."""
        from tamperlab.defenses.tamper_data import adversary_examples, reference_examples, refusal_examples

        a = self.args
        adversary_prompts = a.adversary_prompts or a.harmful
        adversary, adversary_source = adversary_examples(
            loaded,
            data=a.adversary_data,
            prompts=adversary_prompts,
            n_examples=a.n_examples,
            completion_tokens=a.completion_tokens,
            unaligned_model=a.unaligned_model,
        )
        examples = {
            "refusal": refusal_examples(a.harmful, a.n_examples),
            "harmless": reference_examples(a.harmless, a.n_examples),
            "adversary": adversary,
        }
        data = {
            "sources": sorted({a.harmful.source, a.harmless.source, adversary_prompts.source}),
            "harmful_data": a.adversary_data,
            "harmful_source": adversary_source,
            "refusal_examples": len(examples["refusal"]),
            "harmless_examples": len(examples["harmless"]),
            "adversary_examples": len(adversary),
        }
        return examples, data

    def batches(self, loaded: Any, examples: dict[str, list]) -> Any:
        """Outer micro-batches: refusal, harmless, K adversary batches and the tamper batch, each a stream."""
        from tamperlab.defenses.tamper_data import collated_stream, pad_id, tokenized, zipped

        tok, a = loaded.tokenizer, self.args
        pad = pad_id(tok)
        inner = a.inner_batch_size or a.batch_size
        features = {name: tokenized(tok, ex, a.max_length) for name, ex in examples.items()}
        adversary = collated_stream(features["adversary"], inner, a.seed + 2, pad)
        if a.tamper_objective == "refusal":
            tamper = collated_stream(features["refusal"], a.batch_size, a.seed + 3, pad)
        else:
            tamper = collated_stream(features["adversary"], a.batch_size, a.seed + 3, pad)

        def inner_batches() -> Any:
            while True:
                yield {str(k): next(adversary) for k in range(a.inner_steps)}

        return zipped(
            {
                "refusal": collated_stream(features["refusal"], a.batch_size, a.seed, pad),
                "harmless": collated_stream(features["harmless"], a.batch_size, a.seed + 1, pad),
                "adversary": inner_batches(),
                "tamper": tamper,
            }
        )

    def apply(self, loaded: Any) -> DefenseOutcome:
        examples, data = self.build_data(loaded)
        spec = TrainSpec(**{k: v for k, v in self.args.model_dump().items() if k in TrainSpec.model_fields})
        loss_fn = TamperResistanceLoss(self.args)
        result = train(loaded, spec=spec, loss_fn=loss_fn, batches=self.batches(loaded, examples))
        loss_fn._adversary = None  # free the adversary's copy of the weights
        budget = result.budget.as_dict()
        budget.pop("loss", None)
        first, last = result.history[0].metrics, result.history[-1].metrics
        terms = {k: {"first": first.get(k), "last": last.get(k)} for k in last if k != "inner_lr"}
        if not all(math.isfinite(v) for v in last.values()):
            log.warning("tar: a loss term is not finite at the last step: %s", last)
        return DefenseOutcome(
            result.model.eval(), budget, data | {"final_loss": result.budget.loss, "terms": terms}
        )


@DEFENSES.register("tar", args_model=TarArgs)
def tar(args: TarArgs) -> Tar:
    return Tar(args)
