"""The one training loop shared by every attack and defense: full or LoRA fine-tuning with budget milestones.

Budgets are counted as the loop runs: optimizer steps, examples, tokens (non-padding tokens through forward
passes), FLOPs (:mod:`tamperlab.train.flops`) and wall seconds of training. At each requested milestone the
caller's ``on_milestone(budget, model)`` runs (to evaluate or save); its time is not counted and the model is
put back in train mode after it, with the torch RNG restored, so evaluating at milestones never changes the
training run.

Defenses with their own objective pass ``loss_fn`` (and ``batches`` when one step needs several data streams,
e.g. RepNoise's harmful and harmless sub-batches); see :class:`LossOutput` for how such a step's examples and
tokens are counted.
"""

from __future__ import annotations

import logging
import math
import random
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from pydantic import Field

from tamperlab.config import Spec
from tamperlab.errors import ConfigError, DivergedError
from tamperlab.models.kv_cache import cache_arg, cache_of
from tamperlab.train.examples import IGNORE_INDEX, ChatExample, batch_stream, collate, tokenize_chat
from tamperlab.train.flops import (
    adapter_parameter_count,
    matmul_parameter_count,
    training_flops_per_token,
)
from tamperlab.train.peak import cached_peak_flops, mfu, peak_flops

log = logging.getLogger(__name__)

DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""What inspection finds in Llama-family models (the default model's); the former fixed default, which run
ids of specs that leave ``lora_targets`` unset still hash (see ``Registry.fingerprint_args``)."""


class TrainSpec(Spec):
    """How to fine-tune: method, optimizer (AdamW), schedule, batch and length, LoRA shape."""

    mode: Literal["full", "lora"] = Field(
        default="full", description="'full' trains every weight; 'lora' trains low-rank adapters only."
    )
    learning_rate: float = Field(default=5e-5, gt=0, description="Peak AdamW learning rate.")
    schedule: Literal["constant", "linear", "cosine"] = Field(
        default="constant",
        description="Learning-rate schedule after warmup. 'constant' by default so the model at milestone k "
        "is the same whatever max_steps is (a decaying schedule makes step k depend on the run's length).",
    )
    warmup_steps: int = Field(
        default=0,
        ge=0,
        description="Linear warmup: update k (1-based) uses lr·k/warmup_steps for k ≤ warmup.",
    )
    batch_size: int = Field(default=8, ge=1, description="Examples per micro-batch (one forward/backward).")
    grad_accum: int = Field(
        default=1,
        ge=1,
        description="Micro-batches per optimizer step; effective batch = batch_size·grad_accum.",
    )
    max_steps: int = Field(default=100, ge=1, description="Optimizer steps to run.")
    seed: int = Field(default=0, description="Seeds torch, Python's random, numpy, data order and LoRA init.")
    weight_decay: float = Field(
        default=0.0, ge=0, description="AdamW decoupled weight decay, on matrices only (not norms or biases)."
    )
    max_grad_norm: float | None = Field(
        default=1.0, gt=0, description="Clip the global gradient norm to this; None disables clipping."
    )
    max_length: int = Field(default=128, ge=2, description="Tokens kept per example (cut at the end).")
    lora_rank: int = Field(default=8, ge=1, description="LoRA rank r.")
    lora_alpha: float = Field(default=16, gt=0, description="LoRA scaling numerator (scale = alpha / r).")
    lora_dropout: float = Field(default=0.0, ge=0, lt=1, description="Dropout on the LoRA input; 0 = off.")
    lora_targets: tuple[str, ...] | None = Field(
        default=None,
        min_length=1,
        description="Module names that get adapters; None = every linear layer of the decoder layers, found "
        "by inspecting the model (attention and MLP projections: q_proj … down_proj for Llama-family models,"
        " c_attn, c_proj, c_fc for GPT-2).",
        json_schema_extra={"fingerprint_default": list(DEFAULT_LORA_TARGETS)},
    )

    @property
    def effective_batch_size(self) -> int:
        """Examples per optimizer step: ``batch_size · grad_accum``."""
        return self.batch_size * self.grad_accum


def learning_rate_at(spec: TrainSpec, step: int) -> float:
    """The learning rate of optimizer update ``step`` (1-based: step 1 is the first update).

    Warmup: ``lr·step/warmup_steps`` for ``step ≤ warmup_steps``. After warmup, with progress
    ``p = (step - warmup_steps - 1) / (max_steps - warmup_steps)`` in ``[0, 1)``: constant ``lr``, linear
    ``lr·(1 - p)``, cosine ``lr·(1 + cos(π·p))/2``. Unlike Hugging Face's schedules no update gets lr 0 (their
    first warmup step and last decay step do nothing), so every step counted in a budget does work.
    Example: lr 1, max_steps 10, warmup 2, linear: 0.5, 1.0, 1.0, 0.875, …, 0.125.
    """
    if step < 1:
        raise ValueError(f"step is 1-based, got {step}")
    base = spec.learning_rate
    if step <= spec.warmup_steps:
        return base * step / spec.warmup_steps
    if spec.schedule == "constant":
        return base
    progress = (step - spec.warmup_steps - 1) / max(1, spec.max_steps - spec.warmup_steps)
    progress = min(progress, 1.0)
    if spec.schedule == "linear":
        return base * (1.0 - progress)
    return base * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class Budget:
    """What training has spent so far.

    Attributes:
        steps: optimizer updates done.
        examples: examples through forward passes (``steps · effective batch`` for plain chat data).
        tokens: non-padding tokens through forward passes.
        flops: training FLOPs (:mod:`tamperlab.train.flops`).
        seconds: wall seconds inside training steps (data collation, forward, backward, update); time in
            milestone callbacks, tokenization and model setup is not counted.
        loss: the last step's loss (None before the first update).
    """

    steps: int = 0
    examples: int = 0
    tokens: int = 0
    flops: int = 0
    seconds: float = 0.0
    loss: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StepMetrics:
    """One optimizer step's record: the loss whose gradient was taken, the lr used, the pre-clip grad norm."""

    step: int
    loss: float
    lr: float
    grad_norm: float
    examples: int
    tokens: int
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class LossOutput:
    """What a custom ``loss_fn`` may return instead of a bare loss tensor.

    By default a micro-batch's examples and tokens are counted from the batch: a mapping with an
    ``attention_mask`` counts its rows and the mask's sum; otherwise every sub-mapping with one is counted and
    summed (so ``{"harmful": batch, "harmless": batch}`` counts both streams). Set ``examples`` / ``tokens``
    when the loss ran other forward passes (e.g. a meta-learning inner loop), and ``flops`` when they were not
    ordinary training passes through the whole model (it replaces ``flops_per_token · tokens``).

    Attributes:
        loss: scalar tensor to backpropagate (the loop divides it by ``grad_accum``).
        examples: examples this micro-batch put through the model, if not counted from the batch.
        tokens: non-padding tokens this micro-batch put through forward passes, if not counted from the batch.
        flops: FLOPs this micro-batch cost, if not ``flops_per_token · tokens``.
        metrics: extra scalars to log per step (averaged over micro-batches), e.g. the two RepNoise terms.
    """

    loss: Any
    examples: int | None = None
    tokens: int | None = None
    flops: int | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)


LossFn = Callable[[Any, Any], Any]
MilestoneFn = Callable[[Budget, Any], None]


@dataclass
class TrainResult:
    """The trained model (the peft-wrapped model for LoRA) and what training cost.

    Attributes:
        model: the model to evaluate or generate with; for LoRA the ``PeftModel`` wrapping the original.
        spec: the spec trained with.
        budget: the final budget.
        history: one :class:`StepMetrics` per optimizer step.
        milestones: the budget at each milestone fired, in order.
        effective_batch_size: examples per optimizer step per stream (``batch_size · grad_accum``).
        trainable_parameters: parameters the optimizer updated.
        matmul_parameters: ``N`` of the FLOP formula (base model).
        adapter_parameters: ``N_lora`` (0 for full fine-tuning).
        flops_per_token: training FLOPs per token from the formula.
        peak_flops: this machine's matmul peak (None when not measured: ``progress=False`` and no cache).
    """

    model: Any
    spec: TrainSpec
    budget: Budget
    history: list[StepMetrics]
    milestones: list[Budget]
    effective_batch_size: int
    trainable_parameters: int
    matmul_parameters: int
    adapter_parameters: int
    flops_per_token: int
    peak_flops: float | None = None

    @property
    def tokens_per_second(self) -> float:
        return self.budget.tokens / self.budget.seconds if self.budget.seconds > 0 else 0.0

    @property
    def flops_per_second(self) -> float:
        return self.budget.flops / self.budget.seconds if self.budget.seconds > 0 else 0.0

    @property
    def mfu(self) -> float | None:
        """Achieved FLOP/s over the measured matmul peak (see :mod:`tamperlab.train.peak`)."""
        return mfu(self.flops_per_second, self.peak_flops)


PLAIN_UNEMBEDDING = frozenset({"llama", "mistral", "qwen2", "qwen3"})
"""Model types whose logits are exactly ``lm_head(last hidden state)``, with no scaling or soft-capping after
it, so :func:`label_logits` may unembed only the positions that carry a label."""


def label_logits(model: Any, batch: Mapping[str, Any]) -> tuple[Any, Any]:
    """The logits at the positions that predict a label, and those labels: ``((n, vocab), (n,))``.

    Labels are aligned with ``input_ids`` and shifted here (position ``t`` predicts label ``t + 1``). For the
    architectures in :data:`PLAIN_UNEMBEDDING` (the default model's among them) only those ``n`` positions go
    through the unembedding: prompt, system and padding positions carry no label, and the unembedding and its
    softmax (49,152 × 576 for SmolLM2, about a fifth of the model's FLOPs) would be wasted on them. The loss
    is the same; other architectures compute every position's logits and select. LoRA-wrapped (peft) models
    take the same path: their adapters sit inside the decoder.

    On that path, the leading tokens every row shares and none of them labels (the chat template's system turn
    and user header) run once, for one row, and their keys and values are repeated for the others; the rows'
    own tokens attend to them as before. Same attention, same positions, so the same loss; gradients through
    the repeat sum over the rows, as they would over separate copies. (With dropout on, which the default
    model and LoRA setting do not use, the shared positions would share one dropout mask.)
    """
    import torch.nn.functional as F

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    inputs = {
        "input_ids": batch["input_ids"],
        "attention_mask": batch.get("attention_mask"),
        "use_cache": False,
    }
    labels = F.pad(batch["labels"], (0, 1), value=IGNORE_INDEX)[:, 1:]
    if getattr(getattr(base, "config", None), "model_type", None) in PLAIN_UNEMBEDDING:
        decoder = base.get_decoder()
        # gradient checkpointing turns the cache off, so it takes the plain pass
        shared = 0 if getattr(decoder, "gradient_checkpointing", False) else _unlabelled_shared_prefix(batch)
        if shared:
            ids = batch["input_ids"]
            cache = cache_of(decoder(input_ids=ids[:1, :shared], use_cache=True))
            cache.batch_repeat_interleave(ids.shape[0])
            inputs |= {"input_ids": ids[:, shared:], **cache_arg(decoder, cache), "use_cache": True}
            labels = labels[:, shared:]
        hidden = decoder(**inputs).last_hidden_state
        keep = (labels != IGNORE_INDEX).to(hidden.device)
        return base.get_output_embeddings()(hidden[keep]), labels.to(hidden.device)[keep]
    logits = model(**inputs).logits
    keep = (labels != IGNORE_INDEX).to(logits.device)
    return logits[keep], labels.to(logits.device)[keep]


def _unlabelled_shared_prefix(batch: Mapping[str, Any]) -> int:
    """How many leading positions every row of ``batch`` shares (same tokens, attended, predicting no label),
    leaving each row at least one position of its own; 0 for a single row."""
    ids, labels, mask = batch["input_ids"], batch["labels"], batch.get("attention_mask")
    if ids.shape[0] < 2:
        return 0
    same = (ids == ids[:1]).all(0)
    if mask is not None:
        same &= mask.bool().all(0)
    # position t's hidden state predicts label t + 1: a shared position must predict nothing
    same[:-1] &= (labels[:, 1:] == IGNORE_INDEX).all(0)
    same[-1] = False
    return int(same.long().cumprod(0).sum())


def causal_lm_loss(model: Any, batch: Mapping[str, Any], reduction: Literal["mean", "sum"] = "mean") -> Any:
    """Next-token cross-entropy on ``batch["labels"]`` (``-100`` ignored), computed in fp32.

    Labels are aligned with ``input_ids`` and shifted in :func:`label_logits`, which unembeds only labelled
    positions where it can. ``"mean"`` averages over label tokens (0 when there are none, never NaN).
    """
    import torch.nn.functional as F

    logits, labels = label_logits(model, batch)
    loss = F.cross_entropy(logits.float(), labels, reduction="sum")
    if reduction == "sum":
        return loss
    return loss / max(1, labels.numel())


def count_batch(batch: Any) -> tuple[int, int]:
    """(examples, non-padding tokens) of a batch; see :class:`LossOutput` for the rule."""
    if isinstance(batch, Mapping):
        if "attention_mask" in batch:
            mask = batch["attention_mask"]
            return int(mask.shape[0]), int(mask.sum())
        if "input_ids" in batch:
            ids = batch["input_ids"]
            return int(ids.shape[0]), int(ids.numel())
        examples = tokens = 0
        found = False
        for value in batch.values():
            if isinstance(value, Mapping):
                e, t = count_batch(value)
                examples, tokens, found = examples + e, tokens + t, True
        if found:
            return examples, tokens
    raise ValueError(
        "cannot count examples and tokens in this batch (no attention_mask or input_ids in it or its "
        "sub-mappings); return a LossOutput with examples= and tokens= from loss_fn"
    )


def _label_tokens(batch: Mapping[str, Any]) -> int:
    """Label tokens the shifted loss predicts (a label at position 0 has nothing before it)."""
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


def _to_device(batch: Any, device: Any) -> Any:
    import torch

    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds every CUDA device too


def _prepare_model(model: Any, spec: TrainSpec) -> Any:
    """Full: every weight trainable. LoRA: wrap with peft (adapters trainable, base frozen)."""
    try:
        from peft import LoraConfig, PeftModel, get_peft_model
    except ImportError:  # pragma: no cover - peft is a core dependency
        raise ImportError("tamperlab's training loop needs peft: pip install 'peft>=0.12'") from None

    is_peft = isinstance(model, PeftModel)
    if spec.mode == "full":
        if is_peft:
            raise ValueError("full fine-tuning of a LoRA-wrapped model: call merge_and_unload() on it first")
        model.requires_grad_(True)
        return model
    if is_peft:
        return model  # continue training its adapters
    from tamperlab.models.architecture import lora_targets

    config = LoraConfig(
        r=spec.lora_rank,
        lora_alpha=spec.lora_alpha,
        lora_dropout=spec.lora_dropout,
        target_modules=list(spec.lora_targets) if spec.lora_targets is not None else lora_targets(model),
        bias="none",
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():
        # peft calls transformers' deprecated is_gradient_checkpointing (transformers 5.x); not ours to fix.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config)


def _build_optimizer(params: list[tuple[str, Any]], spec: TrainSpec) -> Any:
    import torch

    decay = [p for _, p in params if p.ndim >= 2]
    no_decay = [p for _, p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    try:  # fused AdamW runs on CPU and CUDA in torch >= 2.4 (and is what HF Trainer uses by default)
        return torch.optim.AdamW(groups, lr=spec.learning_rate, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.AdamW(groups, lr=spec.learning_rate)


def _check_milestones(
    milestones: Iterable[int], max_steps: int, on_milestone: MilestoneFn | None
) -> list[int]:
    steps = sorted(set(int(m) for m in milestones))
    if steps and on_milestone is None:
        raise ValueError("milestones were given but no on_milestone callback")
    for m in steps:
        if m < 0 or m > max_steps:
            raise ValueError(f"milestone {m} is outside 0..max_steps ({max_steps})")
    return steps


def _micro_batches(
    examples: Sequence[Any] | None, tokenizer: Any, spec: TrainSpec, batches: Iterable[Any] | None
) -> Iterator[Any]:
    """The micro-batch stream: the caller's ``batches``, or ``examples`` tokenized once, then collated."""
    if batches is not None:
        return iter(batches)
    if not examples:
        raise ValueError("train() needs examples (or a batches iterator)")
    features = []
    for example in examples:
        if isinstance(example, ChatExample):
            if tokenizer is None:
                raise ValueError("a tokenizer is needed to tokenize ChatExamples")
            features.append(tokenize_chat(tokenizer, example, spec.max_length))
        elif isinstance(example, Mapping) and "input_ids" in example and "labels" in example:
            features.append(
                {
                    "input_ids": example["input_ids"][: spec.max_length],
                    "labels": example["labels"][: spec.max_length],
                }
            )
        else:
            raise TypeError(
                f"a training example must be a ChatExample or a tokenized dict, got {type(example)}"
            )
    empty = sum(all(label == IGNORE_INDEX for label in f["labels"][1:]) for f in features)
    if empty == len(features):
        raise ConfigError(
            f"max_length={spec.max_length}: none of the {len(features)} training examples keeps an assistant"
            " token within it (each is cut before its answer), so training would learn nothing; raise"
            " max_length"
        )
    if empty:
        log.warning(
            "%d of %d examples have no assistant tokens within max_length=%d",
            empty,
            len(features),
            spec.max_length,
        )
    pad_id = _pad_id(tokenizer)
    return (collate(group, pad_id) for group in batch_stream(features, spec.batch_size, spec.seed))


def _pad_id(tokenizer: Any) -> int:
    # Padding is masked and labelled -100, so its id never matters for the loss; 0 serves without a tokenizer.
    if tokenizer is None:
        return 0
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pad) if pad is not None else 0


def _scalar(value: Any) -> float:
    return float(value.detach().float().item()) if hasattr(value, "detach") else float(value)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


class _Progress:
    """A rich progress bar with loss, tokens/s and MFU; a no-op when disabled or ``TAMPERLAB_QUIET`` is set.

    It is paused around milestone callbacks: rich allows one live display at a time, and an evaluation at a
    milestone shows its own bars. Its clock is the training time (the budget's seconds), which leaves the
    evaluations out; rich's elapsed-time column would count them.
    """

    def __init__(self, enabled: bool, total: int, peak: float | None) -> None:
        self.enabled = enabled
        self.peak = peak
        self._progress: Any = None
        self._task: Any = None
        self._total = total

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            from tamperlab.progress import console as shared_console

            self._progress = Progress(
                TextColumn("train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[clock]}"),
                TextColumn("{task.fields[stats]}"),
                console=shared_console,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("train", total=self._total, stats="", clock=_clock(0.0))
        return self

    def update(self, budget: Budget) -> None:
        if self._progress is None:
            return
        tps = budget.tokens / budget.seconds if budget.seconds > 0 else 0.0
        util = mfu(budget.flops / budget.seconds, self.peak) if budget.seconds > 0 else None
        stats = f"loss {budget.loss:.4f}  {tps:,.0f} tok/s"
        if util is not None:
            stats += f"  MFU {util:.1%}"
        self._progress.update(self._task, completed=budget.steps, stats=stats, clock=_clock(budget.seconds))

    @contextmanager
    def paused(self) -> Iterator[None]:
        if self._progress is None:
            yield
            return
        self._progress.stop()
        try:
            yield
        finally:
            self._progress.start()

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)


def train(
    model: Any,
    tokenizer: Any = None,
    examples: Sequence[ChatExample | Mapping[str, Any]] | None = None,
    spec: TrainSpec | None = None,
    *,
    milestones: Iterable[int] = (),
    on_milestone: MilestoneFn | None = None,
    loss_fn: LossFn | None = None,
    batches: Iterable[Any] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Fine-tune ``model`` for ``spec.max_steps`` AdamW steps, firing ``on_milestone`` at budget milestones.

    Args:
        model: a ``LoadedModel`` (its tokenizer is used when ``tokenizer`` is None) or a causal-LM module. It
            is trained in place on its own device; for LoRA it is wrapped by peft (adapters injected into it).
        tokenizer: tokenizes ``ChatExample``s (chat template, loss on assistant turns only); gives the pad id.
        examples: ``ChatExample``s or tokenized ``{"input_ids", "labels"}`` dicts; tokenized once, then
            batched by a seeded stream that reshuffles each epoch. Ignored when ``batches`` is given.
        spec: the training spec (defaults: :class:`TrainSpec`).
        milestones: optimizer-step counts at which ``on_milestone`` fires; 0 fires before any update.
        on_milestone: ``on_milestone(budget, model)``; may switch to eval mode, generate, save: the loop puts
            the model back in train mode and restores the torch RNG after it, and does not count its time.
        loss_fn: ``loss_fn(model, micro_batch) -> Tensor | LossOutput`` replacing the default, which is
            next-token cross-entropy on the labels, normalized by the label tokens of the whole optimizer step
            (so ``grad_accum`` micro-batches give the same update as one batch of their union). A custom loss
            is divided by ``grad_accum``.
        batches: an iterator of micro-batches (e.g. ``{"harmful": batch, "harmless": batch}``) for a custom
            ``loss_fn``; each optimizer step takes ``grad_accum`` of them, on CPU or on the model's device.
        progress: show a progress bar (loss, tokens/s, MFU; off when ``TAMPERLAB_QUIET`` is set) and measure
            the matmul peak if not yet cached.

    Returns:
        A :class:`TrainResult`; ``result.model`` is the model to use afterwards (the ``PeftModel`` for LoRA).

    Raises:
        DivergedError: a step's loss or gradient norm is NaN or infinite; raised before that step's update,
            with ``.step``, ``.budget`` (the budget of the completed steps) and ``.history`` attached.
        ValueError: a milestone outside ``0..max_steps``, or ``batches`` running out before ``max_steps``.
    """
    import torch

    spec = spec or TrainSpec()
    if not isinstance(model, torch.nn.Module) and hasattr(model, "model") and hasattr(model, "tokenizer"):
        tokenizer = tokenizer if tokenizer is not None else model.tokenizer
        model = model.model
    milestone_steps = _check_milestones(milestones, spec.max_steps, on_milestone)
    pending = list(milestone_steps)

    _seed_everything(spec.seed)  # before LoRA wrapping: the adapters' initialization is random
    model = _prepare_model(model, spec)
    first = next(model.parameters())
    device = first.device
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    trainable = [p for _, p in params]
    optimizer = _build_optimizer(params, spec)
    n_matmul = matmul_parameter_count(model)
    n_adapter = adapter_parameter_count(model) if spec.mode == "lora" else 0
    flops_per_token = training_flops_per_token(n_matmul, spec.mode, n_adapter)
    from tamperlab import progress as shared_progress

    progress = progress and shared_progress.enabled()  # TAMPERLAB_QUIET turns every bar off
    # Measuring the peak takes 1-3 s once per machine: only when a person watches the bar; else use the cache.
    peak = peak_flops(device) if progress else cached_peak_flops(device)
    stream = _micro_batches(examples, tokenizer, spec, batches)
    custom_loss = loss_fn is not None
    cuda = device.type == "cuda"

    budget = Budget()
    history: list[StepMetrics] = []
    fired: list[Budget] = []
    bar = _Progress(progress, spec.max_steps, peak)

    def fire(current: Budget) -> None:
        if cuda:
            torch.cuda.synchronize(device)
        fired.append(current)
        with bar.paused(), torch.random.fork_rng(devices=[device] if cuda else []):
            on_milestone(current, model)  # type: ignore[misc]
        model.train()

    log.info(
        "training %s: %d steps × %d examples (batch %d × accum %d), %s trainable parameters, "
        "%.3g FLOPs/token",
        spec.mode,
        spec.max_steps,
        spec.effective_batch_size,
        spec.batch_size,
        spec.grad_accum,
        f"{sum(p.numel() for p in trainable):,}",
        flops_per_token,
    )
    model.train()
    with bar:
        if pending and pending[0] == 0:
            pending.pop(0)
            fire(budget)
        for step in range(1, spec.max_steps + 1):
            started = time.perf_counter()
            micro = []
            for _ in range(spec.grad_accum):
                try:
                    micro.append(next(stream))
                except StopIteration:
                    raise ValueError(
                        f"the batches iterator ran out at step {step} of {spec.max_steps}"
                    ) from None
            label_tokens = 0 if custom_loss else sum(_label_tokens(b) for b in micro)
            if not custom_loss and label_tokens == 0:
                raise ConfigError(
                    f"step {step}: its {spec.effective_batch_size} examples have no assistant token within"
                    f" max_length={spec.max_length}, so the step would learn nothing yet count as budget;"
                    " raise max_length"
                )
            optimizer.zero_grad(set_to_none=True)  # here, not after the step: a callback may leave gradients
            step_loss = torch.zeros((), device=device, dtype=torch.float32)
            step_examples = step_tokens = step_flops = 0
            step_metrics: dict[str, float] = {}
            for cpu_batch in micro:
                batch = _to_device(cpu_batch, device)
                out = loss_fn(model, batch) if custom_loss else causal_lm_loss(model, batch, reduction="sum")
                if not isinstance(out, LossOutput):
                    out = LossOutput(loss=out)
                loss = out.loss / (spec.grad_accum if custom_loss else label_tokens)
                loss.backward()
                step_loss += loss.detach().float()
                counted = count_batch(cpu_batch) if out.examples is None or out.tokens is None else (0, 0)
                examples_here = int(out.examples) if out.examples is not None else counted[0]
                tokens_here = int(out.tokens) if out.tokens is not None else counted[1]
                step_examples += examples_here
                step_tokens += tokens_here
                step_flops += int(out.flops) if out.flops is not None else flops_per_token * tokens_here
                for key, value in out.metrics.items():
                    step_metrics[key] = step_metrics.get(key, 0.0) + _scalar(value) / spec.grad_accum

            if spec.max_grad_norm is not None:
                grad_norm = torch.nn.utils.clip_grad_norm_(trainable, spec.max_grad_norm)
            else:
                grad_norm = torch.nn.utils.get_total_norm([p.grad for p in trainable if p.grad is not None])
            # One device sync per step: the divergence check needs both values on the host anyway.
            loss_value, norm_value = torch.stack([step_loss, grad_norm.float().to(device)]).tolist()
            if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
                budget = replace(budget, seconds=budget.seconds + time.perf_counter() - started)
                err = DivergedError(
                    f"training diverged at step {step}: loss {loss_value}, grad norm {norm_value} "
                    f"(lr {learning_rate_at(spec, step):.3g})"
                )
                err.step = step  # type: ignore[attr-defined]
                err.budget = budget  # type: ignore[attr-defined]
                err.history = history  # type: ignore[attr-defined]
                raise err

            lr = learning_rate_at(spec, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.step()
            if cuda and (step == spec.max_steps or (pending and pending[0] == step)):
                torch.cuda.synchronize(device)  # so the budget's seconds include this step's queued work
            budget = Budget(
                steps=step,
                examples=budget.examples + step_examples,
                tokens=budget.tokens + step_tokens,
                flops=budget.flops + step_flops,
                seconds=budget.seconds + time.perf_counter() - started,
                loss=loss_value,
            )
            history.append(
                StepMetrics(step, loss_value, lr, norm_value, step_examples, step_tokens, step_metrics)
            )
            bar.update(budget)
            if pending and pending[0] == step:
                pending.pop(0)
                fire(budget)

    result = TrainResult(
        model=model,
        spec=spec,
        budget=budget,
        history=history,
        milestones=fired,
        effective_batch_size=spec.effective_batch_size,
        trainable_parameters=sum(p.numel() for p in trainable),
        matmul_parameters=n_matmul,
        adapter_parameters=n_adapter,
        flops_per_token=flops_per_token,
        peak_flops=peak,
    )
    util = result.mfu
    log.info(
        "trained %d steps in %.1fs: %.0f tokens/s, %.3g FLOP/s%s",
        budget.steps,
        budget.seconds,
        result.tokens_per_second,
        result.flops_per_second,
        f", MFU {util:.1%}" if util is not None else "",
    )
    return result
