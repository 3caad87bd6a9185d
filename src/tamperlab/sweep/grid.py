"""Grid specs: a base RunSpec plus axes, expanded into RunSpecs with deterministic ids (HELM's run expanders).

A grid file::

    name: lr-by-mode                    # optional, shown in listings
    base: {...}                         # a RunSpec mapping, or a RunSpec YAML path (relative to this file)
    axes:                               # a mapping is one product group ...
      attacks.0.args.learning_rate: [1.0e-4, 3.0e-4]
      attack-mode:                      # ... a key that is not a RunSpec path is a named axis: each value
        - {attacks.0.args.mode: full}   #     is a mapping of dotted overrides applied together
        - {attacks.0.args.mode: lora, attacks.0.args.learning_rate: 1.0e-3}
    resources: {num_cpus: 1, num_gpus: 0}   # what one run needs (the Ray executor declares it)
    max_retries: 2                      # Ray: bounded retries of a crashed task

``axes`` may instead be a list of groups, each ``{product: {...}}`` or ``{zip: {...}}``: a zip group pairs its
axes' values position by position (equal lengths required); groups are multiplied together in order.

Paths are dotted, with integer segments indexing lists (``attacks.0.args.mode``). They are applied to the
*resolved* base (defaults filled in), so ``eval.max_new_tokens`` changes only that field of the run's default
evaluation. Every expanded spec is validated at expansion time, component arguments included, so a typo fails
before anything runs or anything is written.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field

from tamperlab.config import RunSpec, Spec, spec_id, validate
from tamperlab.errors import ConfigError


class Resources(Spec):
    """What one run of the grid needs from a Ray cluster."""

    num_cpus: float = Field(
        default=1, ge=0, description="CPU cores reserved per run (sets its torch threads)."
    )
    num_gpus: float = Field(default=0, ge=0, description="GPUs reserved per run (fractions share a GPU).")


class GridSpec(Spec):
    """A declarative sweep: a base RunSpec and the axes that vary it."""

    name: str = Field(default="sweep", description="A label for listings.")
    base: dict[str, Any] | str = Field(
        default_factory=dict, description="The RunSpec every point starts from, or a path to a RunSpec YAML."
    )
    axes: dict[str, Any] | list[Any] = Field(
        default_factory=dict,
        description="One product group (a mapping), or a list of {product: {...}} / {zip: {...}} groups.",
    )
    resources: Resources = Field(default_factory=Resources, description="Per-run resource needs (Ray).")
    max_retries: int = Field(default=2, ge=0, description="Ray: retries of a task whose worker crashed.")


@dataclass(frozen=True)
class Axis:
    """One axis: either a RunSpec path (``key``) with plain values, or a named axis whose values are
    overrides."""

    key: str
    values: tuple[Any, ...]
    named: bool

    def overrides(self, i: int) -> dict[str, Any]:
        """The dotted overrides value ``i`` of this axis applies."""
        return dict(self.values[i]) if self.named else {self.key: self.values[i]}

    def paths(self) -> set[str]:
        if not self.named:
            return {self.key}
        return {p for value in self.values for p in value}


@dataclass(frozen=True)
class Group:
    kind: Literal["product", "zip"]
    axes: tuple[Axis, ...]

    def size(self) -> int:
        if self.kind == "zip":
            return len(self.axes[0].values)
        n = 1
        for axis in self.axes:
            n *= len(axis.values)
        return n

    def choices(self) -> list[tuple[tuple[Axis, int], ...]]:
        """Every combination this group contributes: tuples of (axis, value index)."""
        if self.kind == "zip":
            return [tuple((a, i) for a in self.axes) for i in range(len(self.axes[0].values))]
        ranges = [[(a, i) for i in range(len(a.values))] for a in self.axes]
        return list(itertools.product(*ranges))


@dataclass
class GridPoint:
    """One expanded run of a grid.

    Attributes:
        index: position in expansion order.
        label: the axis values that make it, e.g. ``attacks.0.args.learning_rate=0.0001 attack-mode=lora``.
        overrides: the dotted overrides applied to the base.
        spec: the validated RunSpec.
        spec_key: :func:`tamperlab.config.spec_id` of the spec (pure: depends only on the spec's content).
        run_id: the pipeline's run id (spec plus the model's file fingerprint), set by :func:`assign_run_ids`.
    """

    index: int
    label: str
    overrides: dict[str, Any]
    spec: RunSpec
    spec_key: str
    run_id: str | None = field(default=None)


@dataclass
class Grid:
    """A loaded grid: its spec, where it came from, the resolved base and the parsed groups."""

    spec: GridSpec
    source: str
    base: dict[str, Any]
    groups: list[Group]

    @property
    def size(self) -> int:
        n = 1
        for g in self.groups:
            n *= g.size()
        return n


# -- loading -------------------------------------------------------------------------------------------------


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"grid file not found: {path}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: malformed YAML{where}") from None


def load_grid(path: str | Path) -> Grid:
    """Load and check a grid YAML file (every point is validated by :func:`expand`)."""
    path = Path(path)
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: top level must be a mapping with base and axes, got {type(data).__name__}"
        )
    return parse_grid(data, source=str(path), root=path.parent)


def parse_grid(data: dict[str, Any], source: str = "grid", root: Path | None = None) -> Grid:
    """Build a :class:`Grid` from a mapping (as read from YAML)."""
    spec = validate(GridSpec, data, source)
    base_data = spec.base
    if isinstance(base_data, str):
        base_path = (root or Path(".")) / base_data
        loaded = _read_yaml(base_path)
        if not isinstance(loaded, dict):
            raise ConfigError(f"{base_path}: a RunSpec file must be a mapping")
        base_data = loaded
    base = validate(RunSpec, base_data, f"{source}: base").model_dump(mode="json")
    groups = _parse_groups(spec.axes, source)
    _check_axes(groups, base, source)
    return Grid(spec=spec, source=source, base=base, groups=groups)


def _parse_axis(key: str, values: Any, source: str) -> Axis:
    if not isinstance(key, str) or not key:
        raise ConfigError(f"{source}: axes: an axis name must be a non-empty string, got {key!r}")
    if not isinstance(values, list):
        raise ConfigError(f"{source}: axis {key!r}: values must be a list, got {type(values).__name__}")
    if not values:
        raise ConfigError(f"{source}: axis {key!r} is empty (give it at least one value)")
    named = key.split(".", 1)[0] not in RunSpec.model_fields
    if named:
        if not all(isinstance(v, dict) and v for v in values):
            close = difflib.get_close_matches(key.split(".", 1)[0], list(RunSpec.model_fields), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(
                f"{source}: unknown axis {key!r}: {key.split('.', 1)[0]!r} is not a RunSpec field{hint}; "
                "a named axis's values must be mappings of dotted overrides"
            )
        for value in values:
            for path in value:
                if not isinstance(path, str):
                    raise ConfigError(f"{source}: axis {key!r}: override key {path!r} is not a dotted path")
    return Axis(key=key, values=tuple(values), named=named)


def _parse_groups(axes: dict[str, Any] | list[Any], source: str) -> list[Group]:
    raw: list[tuple[str, Any]]
    if isinstance(axes, dict):
        raw = [("product", axes)] if axes else []
    else:
        raw = []
        for i, group in enumerate(axes):
            if not isinstance(group, dict) or len(group) != 1 or next(iter(group)) not in ("product", "zip"):
                raise ConfigError(
                    f"{source}: axes.{i}: a group is a mapping with one key, 'product' or 'zip'"
                )
            kind, members = next(iter(group.items()))
            if not isinstance(members, dict) or not members:
                raise ConfigError(f"{source}: axes.{i}.{kind}: a group needs at least one axis")
            raw.append((kind, members))
    groups = []
    for kind, members in raw:
        parsed = tuple(_parse_axis(k, v, source) for k, v in members.items())
        if kind == "zip" and len({len(a.values) for a in parsed}) > 1:
            lengths = ", ".join(f"{a.key}: {len(a.values)}" for a in parsed)
            raise ConfigError(f"{source}: a zip group's axes must have equal lengths ({lengths})")
        groups.append(Group(kind=kind, axes=parsed))
    return groups


# -- dotted paths --------------------------------------------------------------------------------------------


def _unwrap(annotation: Any) -> Any:
    """Strip Optional/Union-with-None and Annotated from a field annotation."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else annotation
    return annotation


def check_path(path: str, model: type[BaseModel] = RunSpec) -> None:
    """Raise ConfigError unless ``path`` names a field of ``model`` (free-form mappings such as args accept
    any key)."""
    node: Any = model
    walked: list[str] = []
    for segment in path.split("."):
        if isinstance(node, type) and issubclass(node, BaseModel):
            if segment not in node.model_fields:
                close = difflib.get_close_matches(segment, list(node.model_fields), n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                where = ".".join(walked) or node.__name__
                raise ConfigError(f"unknown axis {path!r}: {segment!r} is not a field of {where}{hint}")
            node = _unwrap(node.model_fields[segment].annotation)
        elif typing.get_origin(node) is list:
            if not segment.isdigit():
                raise ConfigError(
                    f"unknown axis {path!r}: {'.'.join(walked)} is a list, index it with a number"
                )
            node = _unwrap(typing.get_args(node)[0])
        elif typing.get_origin(node) is dict or node is Any:
            node = Any  # free-form: the component validates its own args
        else:
            raise ConfigError(f"unknown axis {path!r}: {'.'.join(walked)} is a value, not a mapping")
        walked.append(segment)


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path in nested dicts/lists in place; missing mapping levels are created."""
    node: Any = data
    parts = path.split(".")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            index = int(part)
            if index >= len(node):
                where = ".".join(parts[:i]) or "(top level)"
                raise ConfigError(f"axis path {path!r}: {where} has only {len(node)} entries")
            if last:
                node[index] = copy.deepcopy(value)
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = copy.deepcopy(value)
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
        else:
            raise ConfigError(f"axis path {path!r}: {'.'.join(parts[:i])} is not a mapping or list")


def _check_axes(groups: list[Group], base: dict[str, Any], source: str) -> None:
    owner: dict[str, str] = {}
    for group in groups:
        for axis in group.axes:
            for path in axis.paths():
                try:
                    check_path(path)
                except ConfigError as exc:
                    prefix = f"axis {axis.key!r}: " if axis.named else ""
                    raise ConfigError(f"{source}: {prefix}{exc}") from None
                for other, other_axis in owner.items():
                    if other_axis != axis.key and (
                        other == path or other.startswith(path + ".") or path.startswith(other + ".")
                    ):
                        raise ConfigError(
                            f"{source}: axes {other_axis!r} and {axis.key!r} both set "
                            f"{min(other, path, key=len)!r}"
                        )
                owner[path] = axis.key


# -- expansion -----------------------------------------------------------------------------------------------


def validate_components(spec: RunSpec) -> None:
    """Validate every component's name and args (attacks, defenses, safeguard, judges) without building it."""
    from tamperlab.attacks.base import ATTACKS
    from tamperlab.defenses.base import DEFENSES
    from tamperlab.evals.judges.base import JUDGES

    checks = [(ATTACKS, ref, f"attacks.{i}") for i, ref in enumerate(spec.attacks)]
    checks += [(DEFENSES, ref, f"defenses.{i}") for i, ref in enumerate(spec.defenses)]
    if spec.safeguard is not None:
        checks.append((DEFENSES, spec.safeguard, "safeguard"))
    checks += [(JUDGES, ref, f"eval.judges.{i}") for i, ref in enumerate(spec.eval.judges)]
    for registry, ref, where in checks:
        try:
            registry.validate_args(ref.name, ref.args)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None


def _format_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


def expand(grid: Grid, check_components: bool = True) -> list[GridPoint]:
    """Every point of the grid as a validated RunSpec, in expansion order.

    Two points whose resolved specs are equal are one run: the later one is dropped, so a run is never listed
    (or executed) twice.
    """
    points: list[GridPoint] = []
    seen: set[str] = set()
    combos = itertools.product(*(g.choices() for g in grid.groups)) if grid.groups else [()]
    for combo in combos:
        overrides: dict[str, Any] = {}
        labels = []
        for group_choice in combo:
            for axis, i in group_choice:
                overrides.update(axis.overrides(i))
                if axis.named:
                    shown = " ".join(f"{k}={_format_value(v)}" for k, v in axis.values[i].items())
                    labels.append(f"{axis.key}[{shown}]")
                else:
                    labels.append(f"{axis.key}={_format_value(axis.values[i])}")
        data = copy.deepcopy(grid.base)
        for path, value in overrides.items():
            try:
                set_path(data, path, value)
            except ConfigError as exc:
                raise ConfigError(f"{grid.source}: {exc}") from None
        label = " ".join(labels) or "(base)"
        spec = validate(RunSpec, data, f"{grid.source}: point {label}")
        if check_components:
            try:
                validate_components(spec)
            except ConfigError as exc:
                raise ConfigError(f"{grid.source}: point {label}: {exc}") from None
        key = spec_id(spec, prefix="spec-")
        if key in seen:
            continue
        seen.add(key)
        points.append(GridPoint(index=len(points), label=label, overrides=overrides, spec=spec, spec_key=key))
    return points


def assign_run_ids(points: list[GridPoint]) -> list[GridPoint]:
    """Set each point's ``run_id`` to the id the pipeline gives it (spec plus the model's file
    fingerprint)."""
    from tamperlab.pipeline import run_id_for

    for point in points:
        point.run_id = run_id_for(point.spec)
    return points
