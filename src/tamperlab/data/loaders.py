"""Loaders for the standard prompt files a user already has (AdvBench, HarmBench, JailbreakBench, XSTest,
generic JSON/JSONL/CSV) and for chat-format fine-tuning files.

Standard files carry no splits we can trust to be the same everywhere, so each prompt's split and id come from
a salted sha256 of its whitespace-normalised text: 60% train, 20% val, 20% test, the same on every machine and
unchanged when the file is reordered or rows are added. Prompts whose normalised text repeats are kept once.

Every failure is a :class:`DataError` naming the file and, where it applies, the line/item and column.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tamperlab.data.sets import GENERIC_FORMATS, KINDS, Prompt, PromptSet
from tamperlab.errors import ConfigError, DataError
from tamperlab.paths import expand_data_path

logger = logging.getLogger(__name__)

SPLIT_SALT = "tamperlab-split-v1"
"""Salt of the split hash; changing it reshuffles every standard file's splits, so it is versioned."""

TRAIN_PERCENT, VAL_PERCENT = 60, 20
"""Hash buckets 0-59 are train, 60-79 val, 80-99 test."""

DEFAULT_TEXT_COLUMNS: tuple[str, ...] = ("prompt", "text", "instruction", "goal")
"""Columns tried, in order, when a generic file is loaded without ``column``."""

LICENSES = {
    "advbench": "MIT",
    "harmbench": "MIT",
    "jailbreakbench": "MIT",
    "xstest": "CC BY 4.0",
}
"""Licences of the standard sets' prompts; generic files are ``"unknown"``."""

CHAT_ROLES = ("system", "user", "assistant")
_SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
}


# ---------------------------------------------------------------------------------------------------------
# Hash-based ids and splits


def normalize_text(text: str) -> str:
    """NFC-normalise and collapse whitespace: what the split hash and duplicate check see."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def text_digest(text: str) -> str:
    """Salted sha256 hex digest of the normalised text."""
    return hashlib.sha256(f"{SPLIT_SALT}\n{normalize_text(text)}".encode()).hexdigest()


def hashed_split(text: str) -> str:
    """The deterministic split of a standard file's prompt: ``"train"`` (60%), ``"val"`` or ``"test"``."""
    bucket = int(text_digest(text)[:8], 16) % 100
    if bucket < TRAIN_PERCENT:
        return "train"
    if bucket < TRAIN_PERCENT + VAL_PERCENT:
        return "val"
    return "test"


def hashed_id(name: str, text: str) -> str:
    """A stable id from the same hash as the split, e.g. ``"advbench-3fa2c1d9e07b"``."""
    return f"{name}-{text_digest(text)[:12]}"


# ---------------------------------------------------------------------------------------------------------
# Reading records


@dataclass(frozen=True)
class _Record:
    """One row of a file: where it is (``"line 4"``, ``"item 3"``) and its value (object or string)."""

    where: str
    value: Any


def _check_file(path: str | Path) -> Path:
    path = expand_data_path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    return path


def _read_text(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise DataError(f"{path}: file is empty")
    return text


def _file_version(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _read_json(path: Path) -> list[_Record]:
    text = _read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("prompts"), list):
        data = data["prompts"]  # tamperlab's own set format: {"name": ..., "prompts": [...]}
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of objects or strings, got {type(data).__name__}")
    if not data:
        raise DataError(f"{path}: file is empty (an empty list)")
    return [_Record(f"item {i + 1}", value) for i, value in enumerate(data)]


def _read_jsonl(path: Path) -> list[_Record]:
    records = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}: malformed JSON at line {number}, column {exc.colno}: {exc.msg}"
            ) from None
        records.append(_Record(f"line {number}", value))
    if not records:
        raise DataError(f"{path}: file is empty")
    return records


def _read_csv(path: Path) -> list[_Record]:
    text = _read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
        header = [h.strip() for h in header]
        if len(set(header)) != len(header) or not all(header):
            raise DataError(f"{path}: header line has empty or repeated column names: {header}")
        records = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{path}: malformed CSV at line {reader.line_num}: {len(row)} fields, "
                    f"header has {len(header)} ({', '.join(header)})"
                )
            records.append(_Record(f"line {reader.line_num}", dict(zip(header, row, strict=True))))
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV at line {reader.line_num}: {exc}") from None
    if not records:
        raise DataError(f"{path}: file has a header ({', '.join(header)}) but no rows")
    return records


def _read_records(path: Path, file_format: str | None = None) -> list[_Record]:
    fmt = file_format or path.suffix.lower().lstrip(".")
    if fmt == "json":
        return _read_json(path)
    if fmt == "jsonl":
        return _read_jsonl(path)
    if fmt == "csv":
        return _read_csv(path)
    raise DataError(
        f"{path}: cannot tell the format from the suffix {path.suffix!r}; use .json, .jsonl or .csv"
    )


def _columns(records: list[_Record]) -> list[str]:
    """Column names in first-seen order (the union over all object rows)."""
    seen: dict[str, None] = {}
    for record in records:
        if isinstance(record.value, dict):
            seen.update(dict.fromkeys(record.value))
    return list(seen)


def _find_column(columns: Iterable[str], wanted: str) -> str | None:
    """``wanted`` itself, else a case-insensitive match (JailbreakBench's CSV says ``Goal``)."""
    columns = list(columns)
    if wanted in columns:
        return wanted
    lowered = {c.lower(): c for c in columns}
    return lowered.get(wanted.lower())


def _require_column(path: Path, columns: list[str], wanted: str, what: str = "column") -> str:
    found = _find_column(columns, wanted)
    if found is None:
        raise DataError(
            f"{path}: no {what} {wanted!r}; the file has columns: {', '.join(columns) or '(none)'}"
        )
    return found


def _cell(path: Path, record: _Record, column: str | None, *, required: bool) -> str | None:
    """The text in ``column`` of a record; a plain-string record is its own text."""
    if isinstance(record.value, str):
        return record.value if required else None
    if not isinstance(record.value, dict):
        raise DataError(
            f"{path}: {record.where} is {type(record.value).__name__}, expected an object or a string"
        )
    if column is None:
        return None
    value = record.value.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise DataError(f"{path}: {record.where}: column {column!r} is empty")
        return None
    if not isinstance(value, str):
        if required:
            raise DataError(f"{path}: {record.where}: column {column!r} is {type(value).__name__}, not text")
        return str(value)
    return value


def _build_set(
    path: Path,
    records: list[_Record],
    *,
    name: str,
    kind: str,
    license: str,
    description: str,
    text_column: str | None,
    category_column: str | None = None,
    reference_column: str | None = None,
    target_column: str | None = None,
    fixed_category: str = "",
) -> PromptSet:
    prompts: list[Prompt] = []
    seen: set[str] = set()
    duplicates = 0
    for record in records:
        text = _cell(path, record, text_column, required=True)
        assert text is not None
        key = normalize_text(text)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        category = _cell(path, record, category_column, required=False) or fixed_category
        prompts.append(
            Prompt(
                id=hashed_id(name, text),
                text=text.strip(),
                category=category.strip(),
                split=hashed_split(text),
                reference=_cell(path, record, reference_column, required=False),
                target=_cell(path, record, target_column, required=False),
            )
        )
    if duplicates:
        logger.warning("%s: %d repeated prompt(s) kept once", path, duplicates)
    return PromptSet(
        name=name,
        version=_file_version(path),
        kind=kind,
        license=license,
        source=str(path),
        prompts=tuple(prompts),
        description=description,
    )


# ---------------------------------------------------------------------------------------------------------
# Standard files


def load_advbench(path: str | Path) -> PromptSet:
    """AdvBench harmful behaviours (Zou et al. 2023): CSV with columns ``goal`` and ``target``.

    The affirmative ``target`` ("Sure, here is ...") is kept on each prompt; it holds no harmful content.
    """
    path = _check_file(path)
    records = _read_records(path, "csv" if path.suffix.lower() != ".json" else "json")
    columns = _columns(records)
    return _build_set(
        path,
        records,
        name="advbench",
        kind="harmful",
        license=LICENSES["advbench"],
        description="AdvBench harmful behaviours (Zou et al. 2023)",
        text_column=_require_column(path, columns, "goal"),
        target_column=_find_column(columns, "target"),
    )


def load_harmbench(path: str | Path) -> PromptSet:
    """HarmBench text behaviours (Mazeika et al. 2024).

    Reads the processed JSON list of ``{"instruction", "category"}`` (as in refusal_direction's
    ``harmbench_test.json``) or the official behaviours CSV (``Behavior``, ``SemanticCategory``,
    ``FunctionalCategory``); from the CSV only ``standard`` behaviours are kept, since contextual and
    copyright behaviours need their context string or a different judge.
    """
    path = _check_file(path)
    records = _read_records(path, "csv" if path.suffix.lower() == ".csv" else "json")
    columns = _columns(records)
    if _find_column(columns, "instruction") is None and _find_column(columns, "Behavior") is not None:
        functional = _find_column(columns, "FunctionalCategory")
        if functional is not None:
            kept = [
                r for r in records if str(r.value.get(functional, "")).strip().lower() in ("standard", "")
            ]
            if len(kept) < len(records):
                logger.info("%s: kept %d standard behaviours of %d", path, len(kept), len(records))
            if not kept:
                raise DataError(f"{path}: no rows with {functional} 'standard'")
            records = kept
        text_column = _require_column(path, columns, "Behavior")
        category_column = _find_column(columns, "SemanticCategory") or _find_column(columns, "category")
    else:
        text_column = _require_column(path, columns, "instruction")
        category_column = _find_column(columns, "category")
    return _build_set(
        path,
        records,
        name="harmbench",
        kind="harmful",
        license=LICENSES["harmbench"],
        description="HarmBench text behaviours, standard (Mazeika et al. 2024)",
        text_column=text_column,
        category_column=category_column,
    )


def load_jailbreakbench(path: str | Path) -> PromptSet:
    """JailbreakBench behaviours (Chao et al. 2024).

    Reads the processed JSON list of ``{"instruction", "category"}`` or the official CSV (``Goal``,
    ``Target``, ``Category``); a ``Target`` column is kept as each prompt's affirmative target.
    """
    path = _check_file(path)
    records = _read_records(path, "csv" if path.suffix.lower() == ".csv" else "json")
    columns = _columns(records)
    if _find_column(columns, "instruction") is None and _find_column(columns, "goal") is not None:
        text_column = _require_column(path, columns, "goal")
    else:
        text_column = _require_column(path, columns, "instruction")
    return _build_set(
        path,
        records,
        name="jailbreakbench",
        kind="harmful",
        license=LICENSES["jailbreakbench"],
        description="JailbreakBench behaviours (Chao et al. 2024)",
        text_column=text_column,
        category_column=_find_column(columns, "category"),
        target_column=_find_column(columns, "target"),
    )


def load_xstest(path: str | Path, which: str = "safe") -> PromptSet:
    """XSTest prompts (Röttger et al. 2024): CSV with ``prompt`` and ``type`` columns.

    Args:
        path: ``xstest_prompts.csv`` (the human-labelled completion files have the same columns, and work).
        which: ``"safe"``: the 250 safe prompts that look unsafe (kind ``overrefusal``); ``"unsafe"``: the 200
            contrast prompts, whose ``type`` starts with ``contrast_`` (kind ``unsafe-contrast``).

    The prompt's category is its XSTest ``type`` (``homonyms``, ``contrast_homonyms``, ...).
    """
    if which not in ("safe", "unsafe"):
        raise ConfigError(f"XSTest subset must be 'safe' or 'unsafe', got {which!r}")
    path = _check_file(path)
    records = _read_records(path, "csv")
    columns = _columns(records)
    text_column = _require_column(path, columns, "prompt")
    type_column = _require_column(path, columns, "type")
    wanted_contrast = which == "unsafe"
    chosen = [
        r for r in records if str(r.value.get(type_column, "")).startswith("contrast_") == wanted_contrast
    ]
    if not chosen:
        raise DataError(f"{path}: no {which} prompts (column {type_column!r} never matched)")
    return _build_set(
        path,
        chosen,
        name=f"xstest-{which}",
        kind="unsafe-contrast" if wanted_contrast else "overrefusal",
        license=LICENSES["xstest"],
        description=(
            "XSTest unsafe contrast prompts (Röttger et al. 2024)"
            if wanted_contrast
            else "XSTest safe prompts that look unsafe (Röttger et al. 2024)"
        ),
        text_column=text_column,
        category_column=type_column,
    )


def load_generic(
    path: str | Path,
    column: str | None = None,
    kind: str = "harmful",
    *,
    category_column: str | None = None,
    reference_column: str | None = None,
    target_column: str | None = None,
    file_format: str | None = None,
) -> PromptSet:
    """Any ``.json`` (a list of objects or strings), ``.jsonl`` or ``.csv`` file of prompts.

    Args:
        path: the file; its suffix picks the format unless ``file_format`` is given.
        column: the text column; ``None`` tries ``prompt``, ``text``, ``instruction``, ``goal`` in that order.
        kind: what the set measures, one of ``harmful``, ``harmless``, ``overrefusal``, ``unsafe-contrast``.
        category_column: defaults to ``category`` when the file has it.
        reference_column: benign reference responses (capability NLL); defaults to ``reference`` if present.
        target_column: affirmative targets; defaults to ``target`` if present.
        file_format: ``json``, ``jsonl`` or ``csv``, overriding the suffix.
    """
    if kind not in KINDS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if file_format is not None and file_format not in GENERIC_FORMATS:
        raise ConfigError(f"file format must be one of {', '.join(GENERIC_FORMATS)}, got {file_format!r}")
    path = _check_file(path)
    records = _read_records(path, file_format)
    columns = _columns(records)
    strings = isinstance(records[0].value, str)
    odd = next((r for r in records if isinstance(r.value, str) != strings), None)
    if odd is not None:
        raise DataError(f"{path}: mixes strings and objects ({odd.where} differs from the first row)")
    if strings:
        if column is not None:
            raise DataError(f"{path}: holds plain strings, not objects with a column {column!r}")
        text_column = None
    elif column is not None:
        text_column = _require_column(path, columns, column)
    else:
        found = [c for c in (_find_column(columns, name) for name in DEFAULT_TEXT_COLUMNS) if c]
        if not found:
            raise DataError(
                f"{path}: no text column found (tried {', '.join(DEFAULT_TEXT_COLUMNS)}); "
                f"the file has columns: {', '.join(columns) or '(none)'}; name one with ?column=NAME"
            )
        text_column = found[0]

    def optional(explicit: str | None, default: str) -> str | None:
        if explicit is not None:
            return _require_column(path, columns, explicit)
        return _find_column(columns, default)

    return _build_set(
        path,
        records,
        name=path.stem,
        kind=kind,
        license="unknown",
        description=f"prompts from {path.name}" + (f", column {text_column!r}" if text_column else ""),
        text_column=text_column,
        category_column=optional(category_column, "category"),
        reference_column=optional(reference_column, "reference"),
        target_column=optional(target_column, "target"),
    )


# ---------------------------------------------------------------------------------------------------------
# Chat-format fine-tuning files


def _chat_messages(path: Path, record: _Record) -> list[dict[str, str]]:
    value = record.value
    if isinstance(value, dict) and "messages" in value:
        raw, role_key, content_key, role_map = value["messages"], "role", "content", None
    elif isinstance(value, dict) and "conversations" in value:  # ShareGPT: {"from": "human", "value": ...}
        raw, role_key, content_key, role_map = value["conversations"], "from", "value", _SHAREGPT_ROLES
    elif isinstance(value, dict) and "prompt" in value and ("completion" in value or "response" in value):
        answer = value.get("completion", value.get("response"))
        raw = [{"role": "user", "content": value["prompt"]}, {"role": "assistant", "content": answer}]
        role_key, content_key, role_map = "role", "content", None
    elif isinstance(value, list):
        raw, role_key, content_key, role_map = value, "role", "content", None
    else:
        keys = ", ".join(value) if isinstance(value, dict) else type(value).__name__
        raise DataError(f"{path}: {record.where}: expected {{'messages': [...]}}, got {keys}")
    if not isinstance(raw, list) or not raw:
        raise DataError(f"{path}: {record.where}: messages must be a non-empty list")
    messages = []
    for index, message in enumerate(raw):
        where = f"{path}: {record.where}, message {index + 1}"
        if not isinstance(message, dict) or role_key not in message or content_key not in message:
            raise DataError(f"{where}: expected an object with {role_key!r} and {content_key!r}")
        role = message[role_key]
        role = role_map.get(role, role) if role_map else role
        if role not in CHAT_ROLES:
            raise DataError(f"{where}: role {message[role_key]!r} is not one of {', '.join(CHAT_ROLES)}")
        content = message[content_key]
        if not isinstance(content, str):
            raise DataError(f"{where}: content is {type(content).__name__}, not text")
        if role != "system" and not content.strip():
            raise DataError(f"{where}: {role} message is empty")
        messages.append({"role": role, "content": content})
    roles = {m["role"] for m in messages}
    if "user" not in roles or "assistant" not in roles:
        raise DataError(f"{path}: {record.where}: a conversation needs a user and an assistant message")
    return messages


def load_chat_jsonl(path: str | Path) -> list[list[dict[str, str]]]:
    """Chat-format fine-tuning examples, one conversation per line.

    Each line is ``{"messages": [{"role", "content"}, ...]}`` (OpenAI fine-tuning format, as in the
    identity-shift set of Qi et al. 2023); ShareGPT ``{"conversations": [{"from", "value"}]}``,
    ``{"prompt", "completion"}`` pairs and bare message lists are accepted too, as is a ``.json`` file holding
    a list of such objects. Message contents are kept exactly (a system prompt's leading newline included).

    Returns:
        One list of ``{"role": ..., "content": ...}`` dicts per conversation, roles system/user/assistant.
    """
    path = _check_file(path)
    records = _read_json(path) if path.suffix.lower() == ".json" else _read_jsonl(path)
    return [_chat_messages(path, record) for record in records]
