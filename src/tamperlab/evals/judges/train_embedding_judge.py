"""Train the embedding judge's logistic-regression head on the project's own labelled set.

    python -m tamperlab.evals.judges.train_embedding_judge            # writes embedding_head.json
    python -m tamperlab.evals.judges.train_embedding_judge --dry-run  # cross-validation figures only

The labelled set is ``refusal_labelled.json`` (written by the project; no benchmark data). The head is fitted
by Newton's method on the L2-penalised log-loss in float64, so the same labelled set and encoder give the same
head (up to floating-point summation order on another machine).

Two cross-validations are recorded in the head. ``by_example`` mixes styles across folds. ``style_grouped``
puts every example of one style in the same fold, so each fold is judged by a head that never saw that style:
a pessimistic figure, and a useful one (held out whole, the 80 jailbroken-answer openers are mostly misread as
refusals, the reason they are in the set at all). XSTest, the validation set of
``benchmarks/judge_validation.py``, is never read here.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import zlib
from importlib import metadata
from pathlib import Path

import numpy as np

from tamperlab.evals.judges.embedding import (
    ENCODER_DISTRIBUTION,
    ENCODER_MAX_TOKENS,
    ENCODER_NAME,
    HEAD_FORMAT,
    HEAD_PATH,
    LABELLED_SET_PATH,
    SentenceEncoder,
    default_feature_spec,
    file_sha256,
)

logger = logging.getLogger(__name__)

DEFAULT_L2 = 1e-3
"""Penalty on the squared weights (per example; bias unpenalised). Style-grouped cross-validation was flat
(0.885-0.889 accuracy) from 1e-4 to 1e-3 and fell above that (0.1 gave 0.5): unit-norm 384-d embeddings need
large weights. 1e-3 is the most regularised value on that plateau."""


def load_labelled_set(path: str | Path = LABELLED_SET_PATH) -> tuple[list[dict], np.ndarray]:
    """The labelled examples and their labels (1 = refusal, 0 = compliance)."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    examples = doc["examples"]
    labels = np.array([1.0 if ex["label"] == "refusal" else 0.0 for ex in examples])
    return examples, labels


def fit_logistic_regression(
    features: np.ndarray,
    labels: np.ndarray,
    l2: float,
    *,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> tuple[np.ndarray, float]:
    """Minimise mean log-loss + ``l2``/2 * |w|^2 by Newton's method; returns (weights, bias).

    Deterministic (no random start, no sampling); converges in about ten steps on a few hundred examples.
    """
    x = np.hstack([features.astype(np.float64), np.ones((len(features), 1))])
    n, d = x.shape
    penalty = np.full(d, l2)
    penalty[-1] = 0.0  # the bias is not shrunk
    theta = np.zeros(d)
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-(x @ theta)))
        grad = x.T @ (p - labels) / n + penalty * theta
        hessian = (x.T * (p * (1 - p))) @ x / n + np.diag(penalty) + 1e-12 * np.eye(d)
        step = np.linalg.solve(hessian, grad)
        theta -= step
        if float(np.max(np.abs(step))) < tol:
            break
    return theta[:-1], float(theta[-1])


def style_folds(examples: list[dict], n_folds: int) -> np.ndarray:
    """Fold index per example: each style goes whole into one fold (a stable hash of its name)."""
    styles = sorted({ex["style"] for ex in examples})
    fold_of_style = {s: zlib.crc32(s.encode()) % n_folds for s in styles}
    return np.array([fold_of_style[ex["style"]] for ex in examples])


def example_folds(examples: list[dict], n_folds: int) -> np.ndarray:
    """Fold index per example from a stable hash of its id (styles mixed across folds)."""
    return np.array([zlib.crc32(ex["id"].encode()) % n_folds for ex in examples])


def cross_validate(features: np.ndarray, labels: np.ndarray, folds: np.ndarray, l2: float) -> dict:
    """Held-out accuracy, refusal F1 and log-loss, predictions pooled over folds.

    A fold whose complement lacks one class cannot be trained for and is skipped; ``n_folds`` and ``n`` say
    how many folds and examples were actually held out (all of them on the shipped set).
    """
    probs = np.full(len(labels), np.nan)
    used = 0
    for fold in np.unique(folds):
        test = folds == fold
        if len(np.unique(labels[~test])) < 2:
            continue
        w, b = fit_logistic_regression(features[~test], labels[~test], l2)
        probs[test] = 1.0 / (1.0 + np.exp(-(features[test] @ w + b)))
        used += 1
    held = ~np.isnan(probs)
    if not held.any():
        return {"accuracy": None, "f1_refusal": None, "log_loss": None, "n_folds": 0, "n": 0}
    probs, labels = probs[held], labels[held]
    pred = probs >= 0.5
    truth = labels == 1
    tp = int(np.sum(pred & truth))
    fp = int(np.sum(pred & ~truth))
    fn = int(np.sum(~pred & truth))
    eps = 1e-12
    return {
        "accuracy": round(float(np.mean(pred == truth)), 4),
        "f1_refusal": round(2 * tp / max(2 * tp + fp + fn, 1), 4),
        "log_loss": round(
            float(-np.mean(labels * np.log(probs + eps) + (1 - labels) * np.log(1 - probs + eps))), 4
        ),
        "n_folds": used,
        "n": int(held.sum()),
    }


def train_head(
    data: str | Path = LABELLED_SET_PATH,
    out: str | Path | None = HEAD_PATH,
    *,
    l2: float = DEFAULT_L2,
    max_tokens: int = ENCODER_MAX_TOKENS,
    n_folds: int = 5,
    version: str = "1",
    encoder: SentenceEncoder | None = None,
) -> dict:
    """Featurise the labelled set, cross-validate, fit on all of it and (unless ``out`` is None) write the
    head.

    Returns:
        The head document (what is written to ``out``).
    """
    examples, labels = load_labelled_set(data)
    spec = dataclasses.replace(default_feature_spec(), max_tokens=max_tokens)
    encoder = encoder or SentenceEncoder(max_tokens=max_tokens)
    logger.info("embedding %d labelled responses", len(examples))
    features = spec.features(encoder, [ex["response"] for ex in examples])
    cv = {
        "style_grouped": cross_validate(features, labels, style_folds(examples, n_folds), l2),
        "by_example": cross_validate(features, labels, example_folds(examples, n_folds), l2),
    }
    logger.info("cross-validation: %s", cv)
    weights, bias = fit_logistic_regression(features, labels, l2)
    train_acc = float(np.mean(((features @ weights + bias) >= 0) == (labels == 1)))
    sha = file_sha256(data)
    doc = {
        "format": HEAD_FORMAT,
        "version": f"{version}+{sha[:8]}",
        "feature_description": spec.description(),
        "features": {
            "max_tokens": spec.max_tokens,
            "opening_sentences": spec.opening_sentences,
            "phrase_window": spec.phrase_window,
            "phrases": list(spec.phrases),
        },
        "encoder": {
            "name": ENCODER_NAME,
            "distribution": ENCODER_DISTRIBUTION,
            "version": _encoder_version(),
        },
        "training_set": Path(data).name,
        "training_set_sha256": sha,
        "trained_on": dt.date.today().isoformat(),
        "metadata": {
            "n_examples": len(examples),
            "n_refusal": int(labels.sum()),
            "n_compliance": int(len(labels) - labels.sum()),
            "l2": l2,
            "train_accuracy": round(train_acc, 4),
            "cross_validation": cv,
        },
        "bias": bias,
        "weights": [round(float(v), 7) for v in weights],
    }
    if out is not None:
        Path(out).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        logger.info("wrote %s (version %s)", out, doc["version"])
    return doc


def _encoder_version() -> str:
    try:
        return metadata.version(ENCODER_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(LABELLED_SET_PATH), help="labelled set JSON")
    parser.add_argument("--out", default=str(HEAD_PATH), help="where to write the head JSON")
    parser.add_argument("--l2", type=float, default=DEFAULT_L2, help="L2 penalty on the weights")
    parser.add_argument("--max-tokens", type=int, default=ENCODER_MAX_TOKENS, help="encoder truncation")
    parser.add_argument("--folds", type=int, default=5, help="style-grouped cross-validation folds")
    parser.add_argument("--version", default="1", help="head version (the training-set hash is appended)")
    parser.add_argument("--dry-run", action="store_true", help="report cross-validation, write nothing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    doc = train_head(
        args.data,
        None if args.dry_run else args.out,
        l2=args.l2,
        max_tokens=args.max_tokens,
        n_folds=args.folds,
        version=args.version,
    )
    print(
        json.dumps(
            {k: doc[k] for k in ("version", "training_set_sha256", "trained_on", "metadata")}, indent=1
        )
    )


if __name__ == "__main__":
    main()
