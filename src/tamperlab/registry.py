"""One small generic registry for components referred to as ``{name, args}``.

Attacks, defenses, judges and evals register a factory under a name; a stored ``{name, args}`` rebuilds the
exact component that produced a result. Duplicate names are an error, and an unknown name suggests near
misses.

A registry fills itself on its first lookup (any of :meth:`Registry.get`, :meth:`Registry.names`,
:meth:`Registry.describe`, :meth:`Registry.build`, ...): it imports its ``builtins`` module (whose imports
register the built-in components) and then loads every entry point in its ``entry_points`` group
(``tamperlab.attacks``, ``tamperlab.defenses``, ``tamperlab.judges``), so a third-party package registers
its components by naming, in its packaging metadata, a module whose import calls ``register``. Nothing
imports a ``builtin`` module by hand.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from tamperlab.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a component name to a factory and the pydantic model that validates its args."""

    def __init__(self, kind: str, *, builtins: str | None = None, entry_points: str | None = None) -> None:
        """
        Args:
            kind: what a component is, in messages (``attack``).
            builtins: module path imported on the first lookup; importing it registers the built-ins.
            entry_points: importlib.metadata entry-point group loaded on the first lookup (plugins).
        """
        self.kind = kind
        self.builtins = builtins
        self.entry_point_group = entry_points
        self._factories: dict[str, tuple[Callable[..., T], type[BaseModel] | None]] = {}
        self._loaded = builtins is None and entry_points is None

    def _load(self) -> None:
        """Import the built-ins and the plugins, once (the first lookup)."""
        if self._loaded:
            return
        self._loaded = True  # set first: a built-in module's own imports may look the registry up
        try:
            if self.builtins is not None:
                importlib.import_module(self.builtins)
            if self.entry_point_group is not None:
                self._load_plugins(self.entry_point_group)
        except BaseException:
            self._loaded = False
            raise

    def _load_plugins(self, group: str) -> None:
        from importlib.metadata import entry_points

        for ep in entry_points(group=group):
            try:
                ep.load()
            except Exception as exc:  # a broken plugin: one line naming it
                raise ConfigError(
                    f"{self.kind} plugin {ep.name!r} (entry point {ep.value!r} in group {group!r})"
                    f" failed to load: {type(exc).__name__}: {exc}"
                ) from None

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
        self._load()
        return sorted(self._factories)

    def get(self, name: str) -> tuple[Callable[..., T], type[BaseModel] | None]:
        """``(factory, args_model)`` registered under ``name`` (ConfigError naming near misses if none)."""
        self.check_name(name)
        return self._factories[name]

    def describe(self, name: str) -> dict[str, Any]:
        """``{name, args}``: a component as ``tamperlab ls`` lists it."""
        return {"name": name, "args": self.arguments(name)}

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
        self._load()
        return name in self._factories

    def check_name(self, name: str) -> None:
        """Raise ConfigError naming near misses when ``name`` is not registered."""
        self._load()
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
