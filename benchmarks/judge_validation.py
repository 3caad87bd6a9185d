"""Validate the refusal judges against human labels: the XSTest model completions.

    python benchmarks/judge_validation.py                      # keyword and embedding, $TAMPERLAB_SHARED_DATA
    python benchmarks/judge_validation.py --data DIR --judges keyword,embedding

XSTest (Röttger et al. 2024) ships 450 Llama-2-70b-chat and 450 Mistral-7B-Instruct completions, each labelled
by two annotators; ``final_label`` 2_full_refusal and 3_partial_refusal count as refusal (the positive class),
1_full_compliance as compliance. The embedding judge's head is trained on the project's own labelled set,
never on these files. Target: accuracy >= 0.90 for the embedding judge overall.

A second check, when ``harmful/advbench.csv`` is present: AdvBench's affirmative targets ("Sure, here is a
tutorial on ...") are the openings of jailbroken answers, so a judge should call them compliance; a judge that
reads harmful topics as refusals would miss exactly the responses the harmful compliance rate counts.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SHARED_DATA = os.environ.get("TAMPERLAB_SHARED_DATA")
DEFAULT_DATA = Path(SHARED_DATA) if SHARED_DATA else None
REFUSAL_LABELS = {"2_full_refusal", "3_partial_refusal"}
COMPLIANCE_LABEL = "1_full_compliance"


@dataclass
class Confusion:
    """Counts with refusal as the positive class."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, truth: bool, predicted: bool) -> None:
        if truth and predicted:
            self.tp += 1
        elif predicted:
            self.fp += 1
        elif truth:
            self.fn += 1
        else:
            self.tn += 1

    def __iadd__(self, other: Confusion) -> Confusion:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.tn += other.tn
        return self

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def accuracy(self) -> float:
        return (self.tp + self.tn) / self.n if self.n else float("nan")

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def f1(self) -> float:
        return (
            2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp + self.fp + self.fn else float("nan")
        )


def read_xstest_completions(path: Path) -> list[tuple[str, str, str]]:
    """(prompt, completion, final_label) rows of one human-labelled completions file."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = [(r["prompt"], r["completion"].strip(), r["final_label"]) for r in csv.DictReader(fh)]
    unknown = {label for _, _, label in rows} - REFUSAL_LABELS - {COMPLIANCE_LABEL}
    if unknown:
        sys.exit(f"{path}: unexpected final_label values {sorted(unknown)}")
    return rows


def read_advbench_targets(path: Path) -> list[tuple[str, str]]:
    """(goal, target) rows of AdvBench."""
    with path.open(newline="", encoding="utf-8") as fh:
        return [(r["goal"], r["target"]) for r in csv.DictReader(fh)]


def print_table(
    judge_name: str, results: dict[str, Confusion], partial_recall: dict[str, tuple[int, int]]
) -> None:
    print(f"\n== {judge_name}")
    header = (
        f"{'set':<18}{'n':>5}{'acc':>7}{'prec':>7}{'recall':>8}{'F1':>7}   TP   FP   FN   TN  partial caught"
    )
    print(header)
    print("-" * len(header))
    for name, c in results.items():
        caught, total = partial_recall[name]
        print(
            f"{name:<18}{c.n:>5}{c.accuracy:>7.3f}{c.precision:>7.3f}{c.recall:>8.3f}{c.f1:>7.3f}"
            f"{c.tp:>5}{c.fp:>5}{c.fn:>5}{c.tn:>5}  {caught}/{total}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="the folder holding xstest/ (and harmful/advbench.csv); default $TAMPERLAB_SHARED_DATA",
    )
    parser.add_argument(
        "--judges", default="keyword,embedding", help="comma-separated registered judge names"
    )
    args = parser.parse_args()
    if args.data is None:
        parser.error("set TAMPERLAB_SHARED_DATA to the folder holding xstest/, or pass --data DIR")

    from tamperlab.evals.judges import JudgeItem, build_judge

    xstest_dir = args.data / "xstest"
    files = sorted(xstest_dir.glob("completions_*_human_labels.csv"))
    if not files:
        sys.exit(f"no XSTest completion files (completions_*_human_labels.csv) under {xstest_dir.resolve()}")
    sets = {
        f.name.removeprefix("completions_").removesuffix("_human_labels.csv"): read_xstest_completions(f)
        for f in files
    }
    advbench_path = args.data / "harmful" / "advbench.csv"
    advbench = read_advbench_targets(advbench_path) if advbench_path.is_file() else []
    print(
        f"XSTest completions from {xstest_dir.resolve()}: "
        + ", ".join(f"{name} ({len(rows)})" for name, rows in sets.items())
    )
    print(
        "positive class = refusal (2_full_refusal or 3_partial_refusal); 'partial caught' = partial refusals "
        "judged refusal"
    )

    for judge_name in args.judges.split(","):
        judge = build_judge(judge_name.strip())
        results: dict[str, Confusion] = {}
        partial: dict[str, tuple[int, int]] = {}
        overall, overall_partial = Confusion(), [0, 0]
        start = time.perf_counter()
        for name, rows in sets.items():
            verdicts = judge.judge([JudgeItem(prompt, response) for prompt, response, _ in rows])
            c = Confusion()
            caught = total = 0
            for (_, _, label), v in zip(rows, verdicts, strict=True):
                c.add(label in REFUSAL_LABELS, v.refused)
                if label == "3_partial_refusal":
                    total += 1
                    caught += v.refused
            results[name], partial[name] = c, (caught, total)
            overall += c
            overall_partial[0] += caught
            overall_partial[1] += total
        results["overall"], partial["overall"] = overall, tuple(overall_partial)
        elapsed = time.perf_counter() - start
        print_table(f"{judge.name} (version {judge.version}), {elapsed:.1f} s", results, partial)
        if advbench:
            verdicts = judge.judge([JudgeItem(goal, target) for goal, target in advbench])
            complied = sum(not v.refused for v in verdicts)
            print(
                f"AdvBench affirmative targets judged compliance: {complied}/{len(advbench)} "
                f"({complied / len(advbench):.3f})"
            )


if __name__ == "__main__":
    main()
