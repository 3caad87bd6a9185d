"""``repnoise``: Representation Noising (Rosati et al. 2024, arXiv 2405.14577).

RepNoise removes the information about harmful text from the model's representations, so that harmful
fine-tuning has little to recover. One step's loss, on a harmful micro-batch (harmful requests with the
compliant answers an attacker would train on) and a harmless one (harmless requests with reference answers)::

    L = L_LM(harmless) + β · mean_l MMD²(a_l(harmful), N(0, I)) − α · log(1 + mean_l L_LM^l(harmful))

- ``L_LM(harmless)`` keeps the model's capability (token-mean next-token cross-entropy on the answers);
- the MMD term pulls the harmful answers' activations ``a_l`` at every decoder layer ``l`` towards Gaussian
  noise (:func:`mmd2`, a multi-bandwidth Gaussian kernel, biased estimator);
- the ascent term raises the harmful answers' LM loss read out from *every* layer: each layer's hidden state
  is put through the final norm and the LM head (``L_LM^l``), the final layer's being the model's own loss.
  The log saturates the ascent (its gradient is ``α / (1 + loss)``), so it cannot run away as plain gradient
  ascent does.

Paper defaults: β = 0.001, α = 1; the authors note that a grid search over α, β and the learning rate is
always needed (``configs/sweeps/repnoise_grid.yaml``, ``benchmarks/repnoise_grid.py``).

Following the reference implementation (github.com/domenicrosati/representation-noising, ``loss.py``):
activations for the MMD are the MLP outputs of every decoder layer (``noise_site="mlp"``; ``"residual"`` uses
the residual stream instead); each example's masked activations are flattened into one vector (sequence ×
hidden), so the MMD compares the batch's examples with as many noise samples masked the same way; bandwidths
default to the reference's heuristic (mean pairwise squared distance of the pooled sample, ×2^k for k in
−2..2); the ascent term is ``log(mean + 1)``; the hidden states read out include the embedding output.

Deviations from the reference, and why:
- the loss mask is the answer tokens (labels ≠ −100). The reference pairs each harmful example with a refusal
  to the *same* request and masks the positions where the two token sequences differ; our harmless stream is
  harmless requests with reference answers (the paired refusals are optional: ``paired_refusals``), so there
  is no pairing to diff, and the answer tokens are what that diff selects;
- the reference sums the final logits' loss *and* the re-normed last hidden state's loss (the same quantity
  twice, as Hugging Face's last hidden state is already normed) and divides by the number of hidden states; we
  take the plain mean over the L + 1 distinct read-outs (embeddings, layers 1..L−1, final);
- per-layer read-outs are computed only at answer positions and under activation checkpointing, so the
  L × tokens × vocabulary logits are never all held in memory (the result is the same; the recomputation is
  counted in the budget's FLOPs);
- the MMD uses ``‖x‖² + ‖y‖² − 2x·y`` for pairwise distances instead of materializing all differences.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal

from pydantic import Field

from tamperlab.config import DataRef
from tamperlab.defenses.base import DEFENSES, Defense, DefenseOutcome
from tamperlab.models.architecture import final_norm, mlp_modules
from tamperlab.train.examples import IGNORE_INDEX
from tamperlab.train.loop import LossOutput, TrainSpec, causal_lm_loss, train

log = logging.getLogger(__name__)


def mmd2(
    x: Any,
    y: Any,
    *,
    bandwidths: list[float] | tuple[float, ...] | None = None,
    kernel_mul: float = 2.0,
    kernel_num: int = 5,
) -> Any:
    """Biased estimate of the squared maximum mean discrepancy between samples ``x`` (n×d) and ``y`` (m×d).

    With the kernel ``k(a, b) = Σ_j exp(−‖a − b‖² / σ_j)``::

        MMD² = 1/n² Σ_ij k(x_i, x_j) + 1/m² Σ_ij k(y_i, y_j) − 2/(nm) Σ_ij k(x_i, y_j)

    The bandwidths ``σ_j`` are ``bandwidths`` when given; otherwise (the reference implementation's heuristic)
    ``σ_j = σ̄ · kernel_mul^(j − ⌊kernel_num/2⌋)`` for ``j = 0..kernel_num−1``, where ``σ̄`` is the mean squared
    distance between distinct points of the pooled sample (a constant: no gradient flows through it).

    Worked example (one bandwidth σ = 1): x = [(0,0), (1,0)], y = [(0,1), (1,1)]. Squared distances are 1
    within x, 1 within y, and (1, 2, 2, 1) across, so the three means are (1 + e⁻¹)/2, (1 + e⁻¹)/2 and
    (e⁻¹ + e⁻²)/2, and MMD² = 1 + e⁻¹ − e⁻¹ − e⁻² = 1 − e⁻² ≈ 0.8647. With the heuristic and kernel_num = 1,
    σ̄ = (2·8)/12 = 4/3.
    """
    import torch

    n = x.shape[0]
    total = torch.cat([x, y], dim=0).float()
    squared = (total * total).sum(dim=1)
    d2 = (squared[:, None] + squared[None, :] - 2.0 * total @ total.T).clamp_min(0.0)
    if bandwidths is None:
        pooled = total.shape[0]
        base = d2.detach().sum() / max(1, pooled * pooled - pooled)
        base = torch.clamp(base, min=1e-12) / (kernel_mul ** (kernel_num // 2))
        sigmas = [base * (kernel_mul**j) for j in range(kernel_num)]
    else:
        sigmas = [float(s) for s in bandwidths]
    kernel = sum(torch.exp(-d2 / s) for s in sigmas)
    xx, yy, xy = kernel[:n, :n], kernel[n:, n:], kernel[:n, n:]
    return xx.mean() + yy.mean() - 2.0 * xy.mean()


class RepNoiseArgs(TrainSpec):
    """Representation Noising: a TrainSpec plus the loss's weights and its data."""

    learning_rate: float = Field(default=2e-5, gt=0, description="Peak learning rate (the paper's 2e-5).")
    max_steps: int = Field(default=40, ge=1, description="Optimizer steps.")
    batch_size: int = Field(
        default=4, ge=1, description="Examples per stream per micro-batch (harmful and harmless)."
    )
    alpha: float = Field(
        default=1.0, ge=0, description="Weight α of the saturating ascent term −α·log(1 + loss)."
    )
    beta: float = Field(default=0.001, ge=0, description="Weight β of the MMD-to-noise term.")
    harmful: DataRef = Field(
        default=DataRef(source="builtin:harmful", split="train"),
        description="Harmful requests; their compliant answers are the adversary's data (see harmful_data).",
    )
    harmful_data: str = Field(
        default="self-completions",
        description="How harmful answers are made, as harmful-sft's 'data': 'self-completions' (the "
        "unaligned model's own answers), 'affirmative', or 'chat-jsonl:PATH'.",
    )
    harmless: DataRef = Field(
        default=DataRef(source="builtin:harmless", split="train"),
        description="Harmless requests with reference answers (the capability-keeping LM loss).",
    )
    paired_refusals: bool = Field(
        default=False,
        description="Also put each harmful request with a refusal into the harmless stream (the paper's "
        "harmless set is refusals to the same harmful questions).",
    )
    n_harmful: int | None = Field(default=None, ge=1, description="Use at most this many harmful examples.")
    n_harmless: int | None = Field(default=None, ge=1, description="Use at most this many harmless examples.")
    completion_tokens: int = Field(
        default=64, ge=8, description="Length of self-completions (harmful-sft's default)."
    )
    unaligned_model: str | None = Field(
        default=None,
        description="Model whose completions are the harmful answers; None = the defended model's root.",
    )
    noise_site: Literal["mlp", "residual"] = Field(
        default="mlp",
        description="Activations pulled to noise: each decoder layer's MLP output (the reference) or its "
        "residual-stream output.",
    )
    mmd_bandwidths: list[float] | None = Field(
        default=None,
        description="Gaussian-kernel bandwidths σ (k = Σ exp(−d²/σ)); None = the reference's data-driven "
        "heuristic.",
    )
    mmd_kernel_mul: float = Field(
        default=2.0, gt=1, description="Heuristic bandwidths: ratio between neighbours."
    )
    mmd_kernel_num: int = Field(default=5, ge=1, description="Heuristic bandwidths: how many.")


class RepNoiseLoss:
    """The RepNoise loss on ``{"harmful": batch, "harmless": batch}``; a ``loss_fn`` for :func:`train`.

    Metrics per step: ``harmless_lm`` (capability loss), ``mmd`` (mean over layers), ``harmful_layer_lm``
    (mean read-out loss over layers, the quantity whose log is ascended) and ``harmful_lm`` (the final
    layer's).
    """

    def __init__(self, args: RepNoiseArgs) -> None:
        self.args = args
        self._flops_per_token: int | None = None
        self._head_flops_per_token: int | None = None
        self._mlps: list[Any] | None = None  # each decoder layer's MLP block, found by inspection
        self._norm: Any = None  # the final norm, found by inspection

    def _setup(self, model: Any) -> None:
        from tamperlab.train.flops import (
            adapter_parameter_count,
            matmul_parameter_count,
            training_flops_per_token,
        )

        n_lora = adapter_parameter_count(model)
        mode = "lora" if n_lora else "full"
        self._flops_per_token = training_flops_per_token(matmul_parameter_count(model), mode, n_lora)
        head = model.get_output_embeddings().weight
        vocab, hidden = head.shape
        # Per answer token and read-out layer: forward 2·H·V, its recomputation under checkpointing 2·H·V, the
        # activation gradient 2·H·V, and the head's weight gradient 2·H·V when the head is trained.
        self._head_flops_per_token = (8 if head.requires_grad else 6) * hidden * vocab

    def terms(self, model: Any, batch: dict[str, Any]) -> dict[str, Any]:
        """The loss's parts as tensors: harmless_lm, mmd, harmful_layer_lm, harmful_lm, and answer_tokens."""
        import torch
        import torch.nn.functional as F
        from torch.utils.checkpoint import checkpoint

        harmful, harmless = batch["harmful"], batch["harmless"]
        if self._mlps is None:
            self._mlps = mlp_modules(model) if self.args.noise_site == "mlp" else []
            self._norm = final_norm(model)
        captured: list[Any] = []
        handles = [m.register_forward_hook(lambda _m, _i, out: captured.append(out)) for m in self._mlps]
        try:
            out = model(
                input_ids=harmful["input_ids"],
                attention_mask=harmful["attention_mask"],
                output_hidden_states=True,
                use_cache=False,
            )
        finally:
            for handle in handles:
                handle.remove()
        hidden_states = out.hidden_states  # embeddings, layers 1..L-1, then the final (already normed) layer
        activations = captured if self.args.noise_site == "mlp" else list(hidden_states[1:])

        # MMD between each layer's masked answer activations and Gaussian noise masked the same way.
        answer = (harmful["labels"] != IGNORE_INDEX).unsqueeze(-1)
        mmd = torch.zeros((), device=out.logits.device)
        for act in activations:
            masked = act.float() * answer
            noise = torch.randn_like(masked) * answer
            mmd = mmd + mmd2(
                masked.reshape(masked.shape[0], -1),
                noise.reshape(noise.shape[0], -1),
                bandwidths=self.args.mmd_bandwidths,
                kernel_mul=self.args.mmd_kernel_mul,
                kernel_num=self.args.mmd_kernel_num,
            )
        mmd = mmd / max(1, len(activations))

        # The harmful answers' LM loss read out from every layer (final norm + LM head), at answer positions.
        shifted = F.pad(harmful["labels"], (0, 1), value=IGNORE_INDEX)[:, 1:]
        where = shifted != IGNORE_INDEX
        targets = shifted[where]
        norm, head = self._norm, model.get_output_embeddings()

        count = max(1, int(targets.numel()))  # a batch whose answers were all cut off contributes 0, not NaN

        def readout_loss(h: Any) -> Any:
            return F.cross_entropy(head(norm(h)).float(), targets, reduction="sum") / count

        layer_losses = [checkpoint(readout_loss, h[where], use_reentrant=False) for h in hidden_states[:-1]]
        final = F.cross_entropy(out.logits[where].float(), targets, reduction="sum") / count
        harmful_layer_lm = torch.stack([*layer_losses, final]).mean()
        harmless_lm = causal_lm_loss(model, harmless)
        return {
            "harmless_lm": harmless_lm,
            "mmd": mmd,
            "harmful_layer_lm": harmful_layer_lm,
            "harmful_lm": final,
            "answer_tokens": int(targets.numel()),
            "readout_layers": len(layer_losses),
        }

    def __call__(self, model: Any, batch: dict[str, Any]) -> LossOutput:
        import torch

        if self._flops_per_token is None:
            self._setup(model)
        t = self.terms(model, batch)
        loss = (
            t["harmless_lm"]
            + self.args.beta * t["mmd"]
            - self.args.alpha * torch.log1p(t["harmful_layer_lm"])
        )
        tokens = int(batch["harmful"]["attention_mask"].sum() + batch["harmless"]["attention_mask"].sum())
        flops = (
            self._flops_per_token * tokens
            + self._head_flops_per_token * t["answer_tokens"] * t["readout_layers"]
        )
        metrics = {k: t[k].detach() for k in ("harmless_lm", "mmd", "harmful_layer_lm", "harmful_lm")}
        return LossOutput(loss=loss, flops=flops, metrics=metrics)


class RepNoise(Defense):
    def __init__(self, args: RepNoiseArgs) -> None:
        self.args = args
        self.label = "repnoise"

    def build_data(self, loaded: Any) -> tuple[list, list, dict[str, Any]]:
        """(harmful examples, harmless examples, a record of where they came from)."""
        from tamperlab.defenses.tamper_data import adversary_examples, reference_examples, refusal_examples

        a = self.args
        harmful, harmful_source = adversary_examples(
            loaded,
            data=a.harmful_data,
            prompts=a.harmful,
            n_examples=a.n_harmful,
            completion_tokens=a.completion_tokens,
            unaligned_model=a.unaligned_model,
        )
        harmless = reference_examples(a.harmless, a.n_harmless)
        refusals = refusal_examples(a.harmful, a.n_harmful) if a.paired_refusals else []
        data = {
            "sources": [a.harmful.source, a.harmless.source],
            "harmful_data": a.harmful_data,
            "harmful_source": harmful_source,
            "harmful_examples": len(harmful),
            "harmless_examples": len(harmless),
            "paired_refusals": len(refusals),
        }
        return harmful, harmless + refusals, data

    def batches(self, loaded: Any, harmful: list, harmless: list) -> Any:
        from tamperlab.defenses.tamper_data import collated_stream, pad_id, tokenized, zipped

        tok, a = loaded.tokenizer, self.args
        pad = pad_id(tok)
        return zipped(
            {
                "harmful": collated_stream(tokenized(tok, harmful, a.max_length), a.batch_size, a.seed, pad),
                "harmless": collated_stream(
                    tokenized(tok, harmless, a.max_length), a.batch_size, a.seed + 1, pad
                ),
            }
        )

    def apply(self, loaded: Any) -> DefenseOutcome:
        harmful, harmless, data = self.build_data(loaded)
        spec = TrainSpec(**{k: v for k, v in self.args.model_dump().items() if k in TrainSpec.model_fields})
        result = train(
            loaded,
            spec=spec,
            loss_fn=RepNoiseLoss(self.args),
            batches=self.batches(loaded, harmful, harmless),
        )
        model = result.model.merge_and_unload() if spec.mode == "lora" else result.model
        budget = result.budget.as_dict()
        budget.pop("loss", None)
        first, last = result.history[0].metrics, result.history[-1].metrics
        terms = {k: {"first": first.get(k), "last": last.get(k)} for k in last}
        if not all(math.isfinite(v) for v in last.values()):
            log.warning("repnoise: a loss term is not finite at the last step: %s", last)
        return DefenseOutcome(model.eval(), budget, data | {"final_loss": result.budget.loss, "terms": terms})


@DEFENSES.register("repnoise", args_model=RepNoiseArgs)
def repnoise(args: RepNoiseArgs) -> RepNoise:
    return RepNoise(args)
