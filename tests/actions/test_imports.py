"""The action modules import each other one way: no cycle, counting imports inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

ACTIONS = Path(__file__).resolve().parents[2] / "actions"


def _imports(path: Path) -> set[str]:
    """The ``actions`` modules a file imports anywhere (top level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("actions.")}
        elif isinstance(node, ast.ImportFrom) and node.module == "actions":
            found |= {f"actions.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("actions."):
            found.add(node.module or "")
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {f"actions.{p.stem}": p for p in ACTIONS.glob("*.py") if p.stem != "__init__"}
    return {name: _imports(path) & modules.keys() for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import path that leads back to where it started (depth-first)."""
    found: list[list[str]] = []

    def walk(path: list[str]) -> None:
        for target in sorted(graph[path[-1]]):
            if target == path[0]:
                found.append([*path, target])
            elif target not in path and target > path[0]:  # each cycle once, from its least module
                walk([*path, target])

    for start in sorted(graph):
        walk([start])
    return found


def test_no_import_cycle_among_action_modules() -> None:
    graph = import_graph()
    assert "actions.base" in graph and "actions.failures" in graph["actions.base"]
    assert cycles(graph) == []


def test_the_cycle_finder_finds_function_level_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]
