"""Registries fill themselves: built-ins imported on the first lookup, plugins loaded from entry points."""

from __future__ import annotations

import importlib.metadata
import sys
import types

import pytest
from pydantic import BaseModel

from tamperlab.errors import ConfigError
from tamperlab.registry import Registry

BUILTINS = "tamperlab_fake_builtins_for_registry_test"


class Args(BaseModel):
    rank: int = 8


def _fake_builtins(monkeypatch, reg: Registry) -> list[str]:
    """A module that registers ``built-in`` when imported; returns a log of its imports."""
    imported: list[str] = []

    class Finder:
        def find_spec(self, name, path=None, target=None):
            if name != BUILTINS:
                return None
            import importlib.util

            return importlib.util.spec_from_loader(name, self)

        def create_module(self, spec):
            return None

        def exec_module(self, module):
            imported.append(module.__name__)
            reg.register("built-in", args_model=Args)(lambda args: ("built-in", args.rank))

    monkeypatch.setattr(sys, "meta_path", [Finder(), *sys.meta_path])
    monkeypatch.delitem(sys.modules, BUILTINS, raising=False)
    return imported


class FakeEntryPoint:
    def __init__(self, name: str, value: str, load) -> None:
        self.name, self.value, self._load = name, value, load

    def load(self):
        return self._load()


def _fake_entry_points(monkeypatch, by_group: dict[str, list[FakeEntryPoint]]) -> list[str]:
    asked: list[str] = []

    def entry_points(*, group: str):
        asked.append(group)
        return by_group.get(group, [])

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    return asked


def test_builtins_are_imported_on_the_first_lookup_only(monkeypatch):
    reg: Registry[tuple] = Registry("widget", builtins=BUILTINS)
    imported = _fake_builtins(monkeypatch, reg)
    assert imported == []  # creating the registry imports nothing
    assert reg.names() == ["built-in"]
    assert reg.build("built-in", {"rank": 2}) == ("built-in", 2)
    assert reg.describe("built-in")["args"][0]["name"] == "rank"
    assert "built-in" in reg and reg.get("built-in")[1] is Args
    assert imported == [BUILTINS]  # once


@pytest.mark.parametrize("lookup", ["get", "names", "describe", "build", "validate_args", "contains"])
def test_every_lookup_loads_the_builtins(monkeypatch, lookup):
    reg: Registry[tuple] = Registry("widget", builtins=BUILTINS)
    imported = _fake_builtins(monkeypatch, reg)
    calls = {
        "get": lambda: reg.get("built-in"),
        "names": reg.names,
        "describe": lambda: reg.describe("built-in"),
        "build": lambda: reg.build("built-in"),
        "validate_args": lambda: reg.validate_args("built-in", None),
        "contains": lambda: "built-in" in reg,
    }
    calls[lookup]()
    assert imported == [BUILTINS]


def test_entry_point_plugins_register_on_the_first_lookup(monkeypatch):
    reg: Registry[tuple] = Registry("widget", entry_points="tamperlab.widgets")

    def load():
        module = types.ModuleType("widget_plugin")
        reg.register("plugged", args_model=Args)(lambda args: ("plugged", args.rank))
        return module

    asked = _fake_entry_points(
        monkeypatch, {"tamperlab.widgets": [FakeEntryPoint("plugged", "widget_plugin", load)]}
    )
    assert asked == []
    assert reg.build("plugged") == ("plugged", 8)
    assert reg.names() == ["plugged"]
    assert asked == ["tamperlab.widgets"]  # loaded once


def test_a_broken_plugin_is_one_clear_error_naming_the_entry_point(monkeypatch):
    reg: Registry[tuple] = Registry("widget", entry_points="tamperlab.widgets")

    def load():
        raise ImportError("No module named 'widget_plugin'")

    _fake_entry_points(
        monkeypatch, {"tamperlab.widgets": [FakeEntryPoint("broken", "widget_plugin:x", load)]}
    )
    with pytest.raises(ConfigError) as info:
        reg.names()
    message = str(info.value)
    assert "\n" not in message
    assert "'broken'" in message and "widget_plugin:x" in message and "tamperlab.widgets" in message
    assert "No module named 'widget_plugin'" in message


@pytest.mark.parametrize(
    ("module", "registry", "group"),
    [
        ("tamperlab.attacks.base", "ATTACKS", "tamperlab.attacks"),
        ("tamperlab.defenses.base", "DEFENSES", "tamperlab.defenses"),
        ("tamperlab.evals.judges.base", "JUDGES", "tamperlab.judges"),
    ],
)
def test_each_kind_has_its_builtins_and_entry_point_group(module, registry, group):
    import importlib

    reg = getattr(importlib.import_module(module), registry)
    assert reg.entry_point_group == group
    assert reg.builtins == module.rsplit(".", 1)[0] + ".builtin"
    importlib.import_module(reg.builtins)  # the module exists
