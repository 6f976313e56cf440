"""The package's layers point one way, and every module a stage runs is one of its DVC deps.

Both are read from the source with `ast` (every import, also those inside functions), so
nothing is imported and the checks take milliseconds.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "fashion_search"
NEVER_IMPORT_TRAINING = ("search", "evaluate")


def module_file(module: str) -> Path | None:
    """The source file of a fashion_search module (a package means its __init__.py)."""
    parts = module.split(".")[1:]
    path = PACKAGE.joinpath(*parts)
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


@cache
def imported_modules(path: Path) -> frozenset[str]:
    """The fashion_search modules a file imports, anywhere in it (`from a import b` counts b when it is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("fashion_search"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fashion_search"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if module_file(f"{node.module}.{alias.name}") is not None)
    return frozenset(module for module in found if module_file(module) is not None)


def folder_of(path: Path) -> str:
    """A top-level folder of the package (data, models, train, ...), or a module at its root (config.py, ...)."""
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def folder_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        source = folder_of(path)
        targets = {folder_of(module_file(module)) for module in imported_modules(path)}
        graph.setdefault(source, set()).update(targets - {source})
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path that ends where it starts, or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], _ = "open", stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        state[node], _ = "done", stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_find_cycle_finds_one_and_accepts_a_tree() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_cycle_between_the_package_folders() -> None:
    cycle = find_cycle(folder_graph())
    assert cycle is None, "import cycle between folders: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("folder", NEVER_IMPORT_TRAINING)
def test_search_and_evaluate_import_nothing_from_train(folder: str) -> None:
    offenders = sorted(f"{path.relative_to(PACKAGE)} imports {module}"
                       for path in (PACKAGE / folder).rglob("*.py") for module in imported_modules(path)
                       if module == "fashion_search.train" or module.startswith("fashion_search.train."))
    assert offenders == []


def transitive_files(script: Path) -> set[Path]:
    """Every fashion_search source file the script runs, following imports through the package."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        for module in imported_modules(todo.pop()):
            parts = module.split(".")
            # importing a.b.c runs a/__init__.py and a/b/__init__.py first
            for path in {module_file(".".join(parts[:n])) for n in range(2, len(parts) + 1)} - {None} - seen:
                seen.add(path)
                todo.append(path)
    return seen


def stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


@pytest.mark.parametrize("stage", sorted(stages()))
def test_every_module_a_stage_runs_is_one_of_its_deps(stage: str) -> None:
    spec = stages()[stage]
    script = ROOT / spec["cmd"].split()[1]
    deps = [ROOT / dep for dep in spec["deps"]]
    assert script in deps, f"{stage}: its script {script.relative_to(ROOT)} is not a dep"
    uncovered = sorted(str(path.relative_to(ROOT)) for path in transitive_files(script)
                       if path.stat().st_size and not any(path == dep or dep in path.parents for dep in deps))
    assert uncovered == [], f"{stage} runs these modules but does not list them in dvc.yaml deps"
