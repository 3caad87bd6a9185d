"""Training throughput: tamperlab's loop against a plain Hugging Face ``Trainer`` on the same work.

Both fine-tune the default model (full fine-tuning, AdamW fused, constant lr, grad-norm clip 1.0, fp32 on CPU
or the model's bf16 on CUDA, no eval, no saving) on the same 64 short chat examples, tokenized once the same
way and fed in the same order (batch 8, at most 128 tokens each), so both process identical batches. Each
runs ``1 + --steps`` optimizer steps; the first is a warm-up and is not timed. Reported for each: seconds per
step, tokens/s (non-padding tokens), achieved FLOP/s (6·N·T, see ``tamperlab.train.flops``), MFU against this
machine's measured matmul peak, and the ratio ours/Trainer (target ≥ 1.0).

On a shared CPU other processes make wall times noisy (one forward/backward of this model was seen to take
10 s or 47 s under load), so it also reports the best single step's tokens/s and the process CPU seconds per
step (with ``--threads 1`` these count only work, no OpenMP spin-waiting), and ``--rounds`` alternates the
two loops.

    python benchmarks/train_throughput.py [--steps 5] [--rounds 1] [--order ours-first|trainer-first]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import logging
import tempfile
import time
from typing import Any

FALLBACK_PAIRS = [
    ("What is the capital of France?", "The capital of France is Paris."),
    (
        "How do plants make food?",
        "Plants use sunlight, water and carbon dioxide to make sugar by photosynthesis.",
    ),
    (
        "Give me a tip for sleeping better.",
        "Keep a regular schedule and avoid screens for an hour before bed.",
    ),
    ("What is 12 times 12?", "12 times 12 is 144."),
    ("Name three primary colours.", "Red, yellow and blue are the traditional primary colours."),
    ("Why is the sky blue?", "Air scatters short blue wavelengths of sunlight more than red ones."),
    ("Suggest a name for a cat.", "How about Biscuit, Luna or Pepper?"),
    (
        "How do I boil an egg?",
        "Put the egg in boiling water for about nine minutes, then cool it in cold water.",
    ),
]


def benchmark_examples(n: int) -> tuple[list[Any], str]:
    """``n`` benign chat examples: the built-in harmless set's prompts and references if present."""
    from tamperlab.train.examples import ChatExample

    try:
        from tamperlab.data.sets import load_builtin

        prompts = [p for p in load_builtin("harmless").prompts if p.reference][:n]
        if len(prompts) == n:
            return [ChatExample.from_pair(p.text, p.reference) for p in prompts], "builtin:harmless"
    except Exception as exc:  # the data package is optional for this script
        logging.getLogger(__name__).info("built-in harmless set unavailable (%s); using fixed pairs", exc)
    pairs = list(itertools.islice(itertools.cycle(FALLBACK_PAIRS), n))
    return [ChatExample.from_pair(p, r) for p, r in pairs], "fixed pairs"


def sync(device: Any) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def run_ours(features: list[dict], args: argparse.Namespace) -> dict[str, Any]:
    """One run of tamperlab's loop; per timed step: wall seconds, process CPU seconds, tokens."""
    from tamperlab.models import load_model
    from tamperlab.train import TrainSpec, train

    loaded = load_model()
    spec = TrainSpec(
        mode="full",
        learning_rate=args.lr,
        schedule="constant",
        batch_size=args.batch_size,
        max_steps=1 + args.steps,
        max_length=args.max_length,
        max_grad_norm=1.0,
        seed=args.seed,
    )
    marks = []  # a milestone at every step costs a no-op callback (and a sync on CUDA, as the Trainer clock)
    result = train(
        loaded,
        examples=features,
        spec=spec,
        milestones=range(1, 2 + args.steps),
        on_milestone=lambda budget, model: marks.append((budget, time.process_time())),
    )
    steps = [
        {"seconds": b.seconds - a.seconds, "cpu": cb - ca, "tokens": b.tokens - a.tokens}
        for (a, ca), (b, cb) in zip(marks, marks[1:], strict=False)
    ]
    n_matmul = result.matmul_parameters
    del result, loaded
    gc.collect()
    return {"steps": steps, "n_matmul": n_matmul}


def run_trainer(features: list[dict], pad_id: int, args: argparse.Namespace) -> dict[str, Any]:
    """One run of a plain ``transformers.Trainer`` on the same batches in the same order."""
    import torch
    from torch.utils.data import IterableDataset
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from tamperlab.models import load_model
    from tamperlab.train.examples import batch_stream, collate

    class SameOrder(IterableDataset):
        """The features in exactly the order tamperlab's seeded stream yields them."""

        def __iter__(self):
            for batch in batch_stream(features, args.batch_size, args.seed):
                yield from batch

    class StepClock(TrainerCallback):
        def __init__(self, device):
            self.device = device
            self.marks: dict[int, tuple[float, float]] = {}

        def on_step_end(self, _args, state, control, **kwargs):
            sync(self.device)
            self.marks[state.global_step] = (time.perf_counter(), time.process_time())

    loaded = load_model()
    clock = StepClock(loaded.device)
    with tempfile.TemporaryDirectory(prefix="tamperlab-bench-") as out_dir:
        training_args = TrainingArguments(
            output_dir=out_dir,
            per_device_train_batch_size=args.batch_size,
            gradient_accumulation_steps=1,
            max_steps=1 + args.steps,
            learning_rate=args.lr,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=0.0,
            max_grad_norm=1.0,
            optim="adamw_torch_fused",
            logging_strategy="no",
            save_strategy="no",
            eval_strategy="no",
            report_to=[],
            dataloader_num_workers=0,
            use_cpu=not torch.cuda.is_available(),
            seed=args.seed,
        )
        trainer = Trainer(
            model=loaded.model,
            args=training_args,
            train_dataset=SameOrder(),
            data_collator=lambda items: collate(items, pad_id),
            callbacks=[clock],
        )
        trainer.train()
    stream = batch_stream(features, args.batch_size, args.seed)
    batches = [collate(next(stream), pad_id) for _ in range(1 + args.steps)]
    steps = []
    for k in range(2, 2 + args.steps):  # step 1 is the warm-up
        (t0, c0), (t1, c1) = clock.marks[k - 1], clock.marks[k]
        steps.append(
            {"seconds": t1 - t0, "cpu": c1 - c0, "tokens": int(batches[k - 1]["attention_mask"].sum())}
        )
    del trainer, loaded
    gc.collect()
    return {"steps": steps}


def summarize(steps: list[dict[str, float]], flops_per_token: int, peak: float) -> dict[str, float]:
    seconds = sum(s["seconds"] for s in steps)
    tokens = sum(s["tokens"] for s in steps)
    per_token = sorted(s["seconds"] / s["tokens"] for s in steps)
    return {
        "s_per_step": seconds / len(steps),
        "tokens_per_s": tokens / seconds,
        "best_tokens_per_s": 1
        / per_token[0],  # the least-disturbed step: robust to other load on the machine
        "cpu_s_per_step": sum(s["cpu"] for s in steps) / len(steps),
        "flops_per_s": flops_per_token * tokens / seconds,
        "mfu": flops_per_token * tokens / seconds / peak,
        "tokens": tokens,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="timed optimizer steps (after 1 warm-up step)")
    parser.add_argument("--rounds", type=int, default=1, help="alternate the two loops this many times")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--order", choices=["ours-first", "trainer-first"], default="ours-first")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (1 makes CPU seconds free of OpenMP spinning)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from tamperlab.models import load_tokenizer
    from tamperlab.models.loading import resolve_model_dir
    from tamperlab.train.examples import tokenize_chat
    from tamperlab.train.peak import device_key, peak_flops

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model_dir, _ = resolve_model_dir("smollm2-135m-instruct")
    tokenizer = load_tokenizer(model_dir)
    examples, source = benchmark_examples(args.examples)
    features = [tokenize_chat(tokenizer, e, args.max_length) for e in examples]
    peak = peak_flops(device, refresh=True)  # measure again; the cache keeps the best reading
    mean_len = sum(len(f["input_ids"]) for f in features) / len(features)
    print(f"device {device_key(device)}; matmul peak {peak / 1e9:,.1f} GFLOP/s (measured, cached)")
    print(f"data: {len(features)} examples from {source}, mean {mean_len:.1f} tokens")
    print(f"batch {args.batch_size} × max_length {args.max_length}; {args.steps} timed steps after 1 warm-up")

    steps: dict[str, list[dict[str, float]]] = {"ours": [], "trainer": []}
    n_matmul = 0
    order = ["ours", "trainer"] if args.order == "ours-first" else ["trainer", "ours"]
    for _ in range(args.rounds):
        for name in order:
            if name == "ours":
                run = run_ours(features, args)
                n_matmul = run["n_matmul"]
            else:
                run = run_trainer(features, tokenizer.pad_token_id, args)
            steps[name].extend(run["steps"])

    flops_per_token = 6 * n_matmul
    summary = {name: summarize(steps[name], flops_per_token, peak) for name in steps}
    assert summary["ours"]["tokens"] == summary["trainer"]["tokens"], "the two loops saw different data"
    header = f"{'loop':<9}{'s/step':>9}{'tokens/s':>10}{'best tok/s':>12}{'GFLOP/s':>9}{'MFU':>7}"
    header += f"{'CPU s/step':>12}"
    print("\n" + header)
    for name, r in summary.items():
        print(
            f"{name:<9}{r['s_per_step']:>9.2f}{r['tokens_per_s']:>10,.0f}{r['best_tokens_per_s']:>12,.0f}"
            f"{r['flops_per_s'] / 1e9:>9,.1f}{r['mfu']:>7.1%}{r['cpu_s_per_step']:>12.2f}"
        )
    ours, trainer = summary["ours"], summary["trainer"]
    print(
        f"\nratio ours/Trainer: throughput {ours['tokens_per_s'] / trainer['tokens_per_s']:.3f}, "
        f"best-step throughput {ours['best_tokens_per_s'] / trainer['best_tokens_per_s']:.3f}, "
        f"CPU time {trainer['cpu_s_per_step'] / ours['cpu_s_per_step']:.3f} (target >= 1.0)"
    )
    print(f"N = {n_matmul:,} matmul parameters; FLOPs = 6·N·tokens")


if __name__ == "__main__":
    main()
