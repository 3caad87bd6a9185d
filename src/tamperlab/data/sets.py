"""Prompt sets: the built-in sets shipped with tamperlab, and resolving a :class:`DataRef` to a set.

A :class:`PromptSet` is an immutable, named, versioned list of :class:`Prompt` with a fixed split per prompt.
Built-in sets store their splits in the file (about 60/20/20, balanced across categories); standard files the
user has are split by hashing each prompt's text (see :mod:`tamperlab.data.loaders`), so a split never depends
on the order of the file.

Source syntax understood by :func:`load_prompt_set`::

    builtin:harmful
    advbench:/data/advbench.csv
    xstest-safe:~/xstest/xstest_prompts.csv
    jsonl:prompts.jsonl?column=question&kind=harmless
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

from tamperlab.config import DataRef
from tamperlab.errors import ConfigError, DataError

SPLITS: tuple[str, ...] = ("train", "val", "test")
"""The fixed splits every prompt belongs to."""

KINDS: tuple[str, ...] = ("harmful", "harmless", "overrefusal", "unsafe-contrast")
"""What a set measures: harmful requests, plain harmless instructions, safe prompts that look unsafe, and the
unsafe contrast prompts of XSTest."""

FILE_FORMATS: tuple[str, ...] = (
    "advbench",
    "harmbench",
    "jailbreakbench",
    "xstest-safe",
    "xstest-unsafe",
    "json",
    "jsonl",
    "csv",
)
"""Formats accepted as ``FORMAT:PATH`` in a data source."""

GENERIC_FORMATS: tuple[str, ...] = ("json", "jsonl", "csv")
"""Formats that take ``?column=NAME`` and the other query options."""

GENERIC_OPTIONS: tuple[str, ...] = ("column", "kind", "category", "reference", "target")
"""Query options of the generic formats: the text column, the set's kind, and optional columns."""


@dataclass(frozen=True)
class Prompt:
    """One user request with its fixed split.

    Attributes:
        id: stable id, e.g. ``"harmful-0042"``; for standard files ``"NAME-"`` plus a hash of the text.
        text: the user request.
        category: e.g. ``"cybercrime"``; ``""`` when unknown.
        split: ``"train"``, ``"val"`` or ``"test"``.
        reference: a benign reference response (built-in harmless set), used for capability NLL.
        target: an affirmative target prefix, e.g. AdvBench's ``"Sure, here is ..."`` (no harmful content).
    """

    id: str
    text: str
    category: str
    split: str
    reference: str | None = None
    target: str | None = None


@dataclass(frozen=True)
class PromptSet:
    """A named, versioned, immutable set of prompts with licence and provenance.

    Attributes:
        name: e.g. ``"harmful"`` or ``"advbench"``.
        version: ``"1.0"`` for built-in sets; ``"sha256:…"`` of the file's bytes for files.
        kind: one of :data:`KINDS`.
        license: the licence of the prompts.
        source: ``"builtin"`` or the file path.
        prompts: the prompts, in file order.
        description: one line saying what the set is.
    """

    name: str
    version: str
    kind: str
    license: str
    source: str
    prompts: tuple[Prompt, ...]
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.prompts, tuple):
            object.__setattr__(self, "prompts", tuple(self.prompts))
        if self.kind not in KINDS:
            raise DataError(
                f"{self.source}: set {self.name!r} has kind {self.kind!r}; expected one of {KINDS}"
            )
        seen: set[str] = set()
        for prompt in self.prompts:
            if prompt.split not in SPLITS:
                raise DataError(
                    f"{self.source}: prompt {prompt.id!r} has split {prompt.split!r}; "
                    f"expected one of {SPLITS}"
                )
            if prompt.id in seen:
                raise DataError(f"{self.source}: prompt id {prompt.id!r} appears twice")
            seen.add(prompt.id)

    def select(self, split: str = "test", limit: int | None = None) -> PromptSet:
        """The prompts of one split (``"all"`` keeps every split), then the first ``limit`` of them.

        Raises:
            ConfigError: ``split`` is not train/val/test/all, or ``limit`` is below 1.
        """
        if split != "all" and split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; expected one of train, val, test, all")
        if limit is not None and limit < 1:
            raise ConfigError(f"limit must be at least 1, got {limit}")
        chosen = self.prompts if split == "all" else tuple(p for p in self.prompts if p.split == split)
        if limit is not None:
            chosen = chosen[:limit]
        return dataclasses.replace(self, prompts=chosen)

    def __len__(self) -> int:
        return len(self.prompts)

    def __iter__(self) -> Iterator[Prompt]:
        return iter(self.prompts)

    def texts(self) -> list[str]:
        """The prompt texts, in order."""
        return [p.text for p in self.prompts]

    def categories(self) -> dict[str, int]:
        """Number of prompts per category, sorted by category name (``""`` is the unknown category)."""
        counts = Counter(p.category for p in self.prompts)
        return dict(sorted(counts.items()))

    def fingerprint(self) -> str:
        """sha256 of every field of every prompt, in order: equal fingerprints mean the same prompts."""
        rows = [dataclasses.astuple(p) for p in self.prompts]
        return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        """Provenance record: name, kind, version, licence, source, sizes per split and per category.

        The ``fingerprint`` lets a stored result show exactly which prompts it was measured on.
        """
        splits = Counter(p.split for p in self.prompts)
        return {
            "name": self.name,
            "kind": self.kind,
            "version": self.version,
            "license": self.license,
            "source": self.source,
            "description": self.description,
            "size": len(self.prompts),
            "sizes": {s: splits.get(s, 0) for s in SPLITS},
            "categories": self.categories(),
            "fingerprint": self.fingerprint(),
        }


# ---------------------------------------------------------------------------------------------------------
# Built-in sets


def _builtin_dir() -> Any:
    return resources.files("tamperlab.data") / "builtin"


def builtin_names() -> list[str]:
    """Names of the built-in sets shipped in the package (``harmful``, ``harmless``, ``overrefusal``)."""
    return sorted(
        entry.name.removesuffix(".json") for entry in _builtin_dir().iterdir() if entry.name.endswith(".json")
    )


def _suggest(name: str, known: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    return f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(known)}"


def load_builtin(name: str) -> PromptSet:
    """Load a built-in set by name (all splits; use :meth:`PromptSet.select` to pick one).

    Raises:
        ConfigError: no built-in set has that name (the message suggests near misses).
        DataError: the shipped file is malformed (a packaging bug).
    """
    names = builtin_names()
    if name not in names:
        raise ConfigError(f"unknown built-in data set {name!r}{_suggest(name, names)}")
    return _load_builtin_cached(name)


@functools.cache
def _load_builtin_cached(name: str) -> PromptSet:
    entry = _builtin_dir() / f"{name}.json"
    where = f"builtin:{name} ({entry})"
    try:
        data = json.loads(entry.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: malformed JSON at line {exc.lineno}, column {exc.colno}") from None
    if not isinstance(data, dict):
        raise DataError(f"{where}: top level must be an object")
    missing = [k for k in ("name", "version", "kind", "license", "prompts") if k not in data]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)}")
    prompts = []
    for index, item in enumerate(data["prompts"]):
        if not isinstance(item, dict):
            raise DataError(f"{where}: prompts[{index}] is not an object")
        lacking = [k for k in ("id", "text", "category", "split") if k not in item]
        if lacking:
            raise DataError(f"{where}: prompts[{index}] lacks {', '.join(lacking)}")
        if not isinstance(item["text"], str) or not item["text"].strip():
            raise DataError(f"{where}: prompts[{index}] ({item['id']}) has empty text")
        prompts.append(
            Prompt(
                id=item["id"],
                text=item["text"],
                category=item["category"],
                split=item["split"],
                reference=item.get("reference"),
                target=item.get("target"),
            )
        )
    return PromptSet(
        name=data["name"],
        version=data["version"],
        kind=data["kind"],
        license=data["license"],
        source="builtin",
        prompts=tuple(prompts),
        description=data.get("description", ""),
    )


def describe_builtin_sets() -> list[dict[str, Any]]:
    """:meth:`PromptSet.describe` of every built-in set, for ``tamperlab data``."""
    return [load_builtin(name).describe() for name in builtin_names()]


# ---------------------------------------------------------------------------------------------------------
# Resolving a source string


@dataclass(frozen=True)
class ParsedSource:
    """A data source string split into its parts: ``FORMAT:PATH?key=value&...``."""

    format: str
    target: str
    options: dict[str, str]


def parse_source(source: str) -> ParsedSource:
    """Split ``builtin:NAME`` or ``FORMAT:PATH[?column=NAME&...]`` into its parts.

    Raises:
        ConfigError: no ``FORMAT:`` prefix, an unknown format (with near misses), an unknown or malformed
            option, or options on a format that takes none.
    """
    fmt, sep, rest = source.partition(":")
    fmt = fmt.strip()
    if not sep or not rest:
        hint = ""
        if source in builtin_names():
            hint = f"; did you mean builtin:{source}?"
        raise ConfigError(
            f"data source {source!r} is not of the form builtin:NAME or FORMAT:PATH "
            f"(FORMAT one of {', '.join(FILE_FORMATS)}){hint}"
        )
    known = ("builtin", *FILE_FORMATS)
    if fmt not in known:
        raise ConfigError(f"unknown data format {fmt!r} in {source!r}{_suggest(fmt, known)}")
    target, options = rest, {}
    head, qmark, query = rest.rpartition("?")
    if qmark and query and all("=" in part for part in query.split("&")):
        target = head
        for part in query.split("&"):
            key, value = part.split("=", 1)
            key = key.strip()
            if key not in GENERIC_OPTIONS:
                raise ConfigError(
                    f"unknown option {key!r} in data source {source!r}{_suggest(key, GENERIC_OPTIONS)}"
                )
            if not value:
                raise ConfigError(f"option {key!r} in data source {source!r} has no value")
            options[key] = value
        if fmt not in GENERIC_FORMATS:
            raise ConfigError(
                f"data source {source!r}: options like ?{query} only apply to {', '.join(GENERIC_FORMATS)}"
            )
    if "kind" in options and options["kind"] not in KINDS:
        raise ConfigError(
            f"data source {source!r}: kind {options['kind']!r} is not one of {', '.join(KINDS)}"
        )
    return ParsedSource(format=fmt, target=target, options=options)


def load_source(source: str) -> PromptSet:
    """Load the whole set named by a source string (all splits)."""
    from tamperlab.data import loaders  # loaders import this module; resolve the cycle at call time

    parsed = parse_source(source)
    fmt, path, opts = parsed.format, parsed.target, parsed.options
    if fmt == "builtin":
        return load_builtin(path)
    if fmt == "advbench":
        return loaders.load_advbench(path)
    if fmt == "harmbench":
        return loaders.load_harmbench(path)
    if fmt == "jailbreakbench":
        return loaders.load_jailbreakbench(path)
    if fmt in ("xstest-safe", "xstest-unsafe"):
        return loaders.load_xstest(path, which=fmt.removeprefix("xstest-"))
    return loaders.load_generic(
        path,
        column=opts.get("column"),
        kind=opts.get("kind", "harmful"),
        category_column=opts.get("category"),
        reference_column=opts.get("reference"),
        target_column=opts.get("target"),
        file_format=fmt,
    )


def load_prompt_set(ref: DataRef) -> PromptSet:
    """Resolve ``ref.source`` to a set, then keep ``ref.split`` and the first ``ref.limit`` prompts.

    Raises:
        ConfigError: the source string is malformed or names an unknown format or built-in set.
        DataError: the file is missing, empty or malformed (the message names the file and row/column).
    """
    return load_source(ref.source).select(ref.split, ref.limit)


def data_fingerprints(value: Any) -> list[str]:
    """The content fingerprint of every prompt set named in ``value`` (a dumped spec or a component's args),
    in a fixed order. Run ids and defense cache keys include them, so a changed data file or a new version of
    a built-in set gives a new run and a new defended model, never results measured on the old prompts."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if set(node) == set(DataRef.model_fields):
                found.append(load_prompt_set(DataRef(**node)).fingerprint())
                return
            for key in sorted(node):
                walk(node[key])
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(value)
    return found
