"""The one training loop (full and LoRA), budget milestones, FLOP/token/time accounting."""

from tamperlab.train.examples import ChatExample, batch_stream, collate, tokenize_chat
from tamperlab.train.flops import forward_flops, matmul_parameter_count, training_flops
from tamperlab.train.loop import (
    Budget,
    LossOutput,
    StepMetrics,
    TrainResult,
    TrainSpec,
    causal_lm_loss,
    learning_rate_at,
    train,
)

__all__ = [
    "Budget",
    "ChatExample",
    "LossOutput",
    "StepMetrics",
    "TrainResult",
    "TrainSpec",
    "batch_stream",
    "causal_lm_loss",
    "collate",
    "forward_flops",
    "learning_rate_at",
    "matmul_parameter_count",
    "tokenize_chat",
    "train",
    "training_flops",
]
