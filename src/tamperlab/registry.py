"""One small generic registry for components referred to as ``{name, args}``.

Attacks, defenses, judges and evals register a factory under a name; a stored ``{name, args}`` rebuilds the
exact component that produced a result. Duplicate names are an error, and an unknown name suggests near
misses.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from tamperlab.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a component name to a factory and the pydantic model that validates its args."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, tuple[Callable[..., T], type[BaseModel] | None]] = {}

    def register(self, name: str, args_model: type[BaseModel] | None = None) -> Callable:
        """Decorator: register ``factory(args) -> T`` under ``name``.

        Args:
            name: the name users write in YAML (``attack: {name: lora-sft}``).
            args_model: pydantic model for the args; the factory receives an instance. Without one the
                factory receives the args as a plain dict.
        """

        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._factories[name] = (factory, args_model)
            return factory

        return decorate

    def names(self) -> list[str]:
        return sorted(self._factories)

    def arguments(self, name: str) -> list[dict[str, Any]]:
        """The args a component takes, each ``{name, type, default, required, description}``, in declaration
        order (empty for a component without an args model)."""
        self.check_name(name)
        _, model = self._factories[name]
        if model is None:
            return []
        described = []
        for field_name, info in model.model_fields.items():
            required = info.is_required()
            default = None if required else info.get_default(call_default_factory=True)
            if isinstance(default, BaseModel):
                default = default.model_dump(mode="json")
            described.append(
                {
                    "name": field_name,
                    "type": _type_name(info.annotation),
                    "default": default,
                    "required": required,
                    "description": info.description or "",
                }
            )
        return described

    def __contains__(self, name: str) -> bool:
        return name in self._factories

    def check_name(self, name: str) -> None:
        """Raise ConfigError naming near misses when ``name`` is not registered."""
        if name in self._factories:
            return
        close = difflib.get_close_matches(name, self.names(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(self.names())}"
        raise ConfigError(f"unknown {self.kind} {name!r}{hint}")

    def validate_args(self, name: str, args: dict[str, Any] | None) -> dict[str, Any]:
        """Return ``args`` with defaults filled in, or raise ConfigError naming the bad field."""
        self.check_name(name)
        _, model = self._factories[name]
        if model is None:
            return dict(args or {})
        try:
            return model(**(args or {})).model_dump(mode="json")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"{self.kind} {name!r}: args.{where}: {first['msg']}") from None

    def fingerprint_args(self, name: str, valid: dict[str, Any]) -> dict[str, Any]:
        """Validated args (from :meth:`validate_args`) as run ids hash them: a field left at None whose
        declaration carries ``json_schema_extra={"fingerprint_default": VALUE}`` hashes as ``VALUE``. Such a
        field once had that fixed default and now means "inspect the model" (e.g. ``lora_targets``), which
        gives ``VALUE`` on the models the old default was for, so existing specs keep their run ids."""
        self.check_name(name)
        valid = dict(valid)
        _, model = self._factories[name]
        if model is None:
            return valid
        for field_name, info in model.model_fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            if valid.get(field_name) is None and "fingerprint_default" in extra:
                valid[field_name] = extra["fingerprint_default"]
        return valid

    def build(self, name: str, args: dict[str, Any] | None = None, **context: Any) -> T:
        """Build the component; ``context`` passes run-time objects (model, tokenizer, ...) to the factory."""
        self.check_name(name)
        factory, model = self._factories[name]
        valid = self.validate_args(name, args)
        parsed = model(**valid) if model is not None else valid
        return factory(parsed, **context)


def _type_name(annotation: Any) -> str:
    """``int``, ``float | None``, ``Literal['full', 'lora']``: an annotation as a reader writes it."""
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")
