"""Reading the scorecard's YAML inputs: one clear :class:`ConfigError` naming the file and the place.

Every error message has the form ``FILE: PLACE: what is wrong``, where PLACE is a path such as
``categories[1].criteria[0].weight``, so a reader can go straight to the line that needs fixing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from tamperlab.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

# Names pydantic puts into an error location for the chosen member of a tagged union; they say nothing to a
# reader of the YAML file, so they are dropped from the place.
_UNION_TAGS = frozenset({"measured", "committed", "claimed"})


def place(loc: Sequence[Any]) -> str:
    """Format a location as ``a[1].b.c[0]`` (integers become indices, strings become dotted keys)."""
    text = ""
    previous: Any = None
    for i, part in enumerate(loc):
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(previous, int) and part in _UNION_TAGS and i >= 2 and loc[i - 2] == "award":
            continue
        else:
            text += f".{part}" if text else str(part)
        previous = part
    return text or "(top level)"


def fail(source: str | Path, loc: Sequence[Any], message: str) -> ConfigError:
    """The one error for a bad place in an input file (return it; the caller raises)."""
    return ConfigError(f"{Path(source).name}: {place(loc)}: {message}")


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Load a YAML file whose top level must be a mapping; ConfigError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(top level)"
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise ConfigError(f"{path.name}: {where}: malformed YAML ({problem})") from None
    if not isinstance(loaded, dict):
        kind = "empty" if loaded is None else f"a {type(loaded).__name__}"
        raise ConfigError(f"{path.name}: (top level): must be a mapping, the file is {kind}")
    return loaded


def validate_file(model: type[M], data: dict[str, Any], source: str | Path) -> M:
    """Validate ``data`` into ``model``; the first error names its place in the file."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        raise fail(source, first["loc"], message) from None
