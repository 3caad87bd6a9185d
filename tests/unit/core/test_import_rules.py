"""The "never" import pairs of docs/design.md ("Which package may import which"), checked on every module.

Every import is read with ``ast`` from the source, at module level and inside functions alike, so a lazy
import cannot slip past. The rule table below is the doc's list, one entry per bullet; a new forbidden import
fails the test naming the module, the line and the rule.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import tamperlab

ROOT = Path(tamperlab.__file__).parent
HEAVY = ("torch", "transformers", "peft", "accelerate")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. tamperlab.report.page
    path: str  # its path under src/tamperlab, e.g. report/page.py
    target: str  # the imported module, e.g. tamperlab.store.store or torch.nn
    line: int
    in_function: bool


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:]) if "." in name else Path()
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def _imports_of(path: Path) -> list[Import]:
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    origin = ".".join(base + ([child.module] if child.module else []))
                else:
                    origin = child.module or ""
                targets = [origin]
                if _is(origin, "tamperlab"):  # ``from tamperlab.x import y``: y may be a module itself
                    modules = [f"{origin}.{a.name}" for a in child.names if _is_module(f"{origin}.{a.name}")]
                    names_only = len(modules) < len(child.names)
                    targets = ([origin] if names_only else []) + modules
            rel = str(path.relative_to(ROOT))
            found.extend(Import(module, rel, t, child.lineno, in_function) for t in targets)
            visit(child, inner)

    visit(tree, False)
    return found


def _package(module: str) -> str:
    """``tamperlab.report.page`` -> ``report``; ``tamperlab.config`` -> ``config``; ``tamperlab`` -> ``""``
    (the root package)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _is(target: str, name: str) -> bool:
    return target == name or target.startswith(name + ".")


def _third_party(imp: Import, names: tuple[str, ...]) -> bool:
    return any(_is(imp.target, n) for n in names)


def _tamperlab_package(imp: Import) -> str | None:
    return _package(imp.target) if _is(imp.target, "tamperlab") else None


ALL_IMPORTS = [imp for path in sorted(ROOT.rglob("*.py")) for imp in _imports_of(path)]


@dataclass(frozen=True)
class Rule:
    """``importers`` (tamperlab packages) never import ``forbidden`` (a predicate on the import)."""

    text: str
    importers: tuple[str, ...]
    forbidden: object  # Callable[[Import], bool]


def _only_tamperlab(*allowed: str):
    def forbidden(imp: Import) -> bool:
        pkg = _tamperlab_package(imp)
        return pkg is not None and pkg != _package(imp.module) and pkg not in allowed

    return forbidden


def _packages(*names: str):
    return lambda imp: _tamperlab_package(imp) in names


RULES = [
    Rule(
        "report never imports torch, transformers, peft or accelerate",
        ("report",),
        lambda i: _third_party(i, HEAVY),
    ),
    # Exception (in the doc too): the root package, for ``tamperlab.__version__`` in the page footer;
    # importing it loads nothing else (its public API is imported lazily).
    Rule(
        "report imports no tamperlab package but store and errors",
        ("report",),
        _only_tamperlab("store", "errors", ""),
    ),
    Rule("store never imports torch", ("store",), lambda i: _third_party(i, ("torch",))),
    # Exception (in the doc too): ``paths``, a leaf like ``errors``, for the default store's location.
    Rule(
        "store imports no tamperlab package but errors and paths",
        ("store",),
        _only_tamperlab("errors", "paths"),
    ),
    Rule(
        "scorecard never imports torch, pipeline, evals or report",
        ("scorecard",),
        lambda i: _third_party(i, ("torch",)) or _packages("pipeline", "evals", "report")(i),
    ),
    Rule(
        "attacks and defenses never import store or pipeline",
        ("attacks", "defenses"),
        _packages("store", "pipeline"),
    ),
    Rule(
        "train, models and data never import attacks, defenses, evals, pipeline or store",
        ("train", "models", "data"),
        _packages("attacks", "defenses", "evals", "pipeline", "store"),
    ),
    Rule(
        "config, registry, errors and paths import no other tamperlab package but errors",
        ("config", "registry", "errors", "paths"),
        _only_tamperlab("errors"),
    ),
]

# Third-party imports allowed in one module only, and there only inside a function.
CONFINED = {"psycopg": "store/postgres.py", "ray": "sweep/ray_executor.py", "optuna": "search/run.py"}
CONFINED_AT_MODULE_LEVEL_OK = {"psycopg"}  # the doc confines psycopg to its module, not to a function

# The command layers beside the CLI, the only importers of tamperlab.cli outside it.
CLI_IMPORTERS = {"search/cli.py", "sweep/__main__.py", "__main__.py"}


def test_the_imports_are_found():
    """The scan sees module-level, relative and in-function imports (so an empty result is not a pass)."""
    targets = {(i.path, i.target, i.in_function) for i in ALL_IMPORTS}
    assert ("report/page.py", "tamperlab.store", False) in targets or any(
        p.startswith("report/") and t.startswith("tamperlab.store") for p, t, _ in targets
    )
    assert any(p == "sweep/ray_executor.py" and t == "ray" and f for p, t, f in targets)


def test_the_never_pairs_hold():
    broken = [
        f"{imp.path}:{imp.line} imports {imp.target}: {rule.text}"
        for rule in RULES
        for imp in ALL_IMPORTS
        if _package(imp.module) in rule.importers and rule.forbidden(imp)
    ]
    assert not broken, "\n".join(broken)


def test_confined_third_party_imports():
    broken = []
    for imp in ALL_IMPORTS:
        for name, home in CONFINED.items():
            if not _is(imp.target, name):
                continue
            if imp.path != home:
                broken.append(f"{imp.path}:{imp.line} imports {name}: only {home} may")
            elif not imp.in_function and name not in CONFINED_AT_MODULE_LEVEL_OK:
                broken.append(f"{imp.path}:{imp.line} imports {name} at module level: only inside a function")
    assert not broken, "\n".join(broken)


def test_only_the_command_layers_import_the_cli():
    broken = [
        f"{imp.path}:{imp.line} imports {imp.target}"
        for imp in ALL_IMPORTS
        if _is(imp.target, "tamperlab.cli")
        and _package(imp.module) != "cli"
        and imp.path not in CLI_IMPORTERS
    ]
    assert not broken, "\n".join(broken)
