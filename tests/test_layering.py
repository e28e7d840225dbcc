"""Imports go one way, and nothing imports itself back.

- ``ticketing/`` is the bottom layer: it never imports the bot, the actions or their frameworks.
- Inside ``ticketing/`` the subpackages are layers: core < conversations < shop < desk < reports
  < demo < web (the desk web, on top). A module imports only its own layer and the ones below.
- ``actions/`` and ``bot/`` use ``ticketing``, never each other.
- No import cycle among the modules of ``ticketing/``, ``actions/`` or ``bot/``, counting imports
  inside functions: an import hidden in a function is still an import.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ticketing", "actions", "bot")
FORBIDDEN = {"rasa", "rasa_sdk", "telegram", "bot", "actions"}
# the layers of ticketing/, lowest first; a top-level module of ticketing/ counts as core
LAYERS = ("core", "conversations", "shop", "desk", "reports", "demo", "web")
NEVER = {"actions": {"bot"}, "bot": {"actions"}}


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant):
                roots.add(str(node.args[0].value).split(".")[0])
    return roots


# --- the import graph ---------------------------------------------------------------------------
def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Every module of ``packages`` under ``root``, migration scripts aside (Alembic loads
    them by path; they import nothing of ours that matters)."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if "versions" in path.parts and "migrations" in path.parts:
                continue
            found[module_name(path, root)] = path
    return found


def _targets(node: ast.AST, name: str, is_package: bool) -> list[str]:
    """The dotted names one import statement may load: a module or a module's attribute."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = name.split(".") if is_package else name.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        return [module] + [f"{module}.{alias.name}" for alias in node.names]
    if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
        if node.args and isinstance(node.args[0], ast.Constant):
            return [str(node.args[0].value)]
    return []


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """module → the modules of ours it imports anywhere in its body (functions included)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: set[str] = set()
        for node in ast.walk(tree):
            for target in _targets(node, name, path.name == "__init__.py"):
                while target and target not in modules:  # an attribute: its module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:
        nonlocal counter
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def layer_of(module: str) -> int | None:
    """The layer of a ``ticketing`` module (None outside ticketing)."""
    parts = module.split(".")
    if parts[0] != "ticketing":
        return None
    if len(parts) > 1 and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    return 0


def layer_violations(graph: Mapping[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in sorted(graph.items()):
        mine = layer_of(module)
        for target in sorted(targets):
            theirs = layer_of(target)
            if mine is not None and theirs is not None and theirs > mine:
                bad.append(f"{module} ({LAYERS[mine]}) imports {target} ({LAYERS[theirs]})")
            if target.split(".")[0] in NEVER.get(module.split(".")[0], set()):
                bad.append(f"{module} imports {target}")
    return bad


# --- the project ---------------------------------------------------------------------------------
def _project_graph() -> dict[str, set[str]]:
    return import_graph(source_modules(ROOT, PACKAGES))


def test_ticketing_sources_import_nothing_from_upper_layers() -> None:
    offenders = {}
    files = sorted((ROOT / "ticketing").rglob("*.py"))
    assert len(files) > 10
    for path in files:
        bad = _imported_roots(path) & FORBIDDEN
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_importing_every_ticketing_module_loads_no_upper_layer() -> None:
    code = (
        "import importlib, pkgutil, sys, ticketing\n"
        "for m in pkgutil.walk_packages(ticketing.__path__, 'ticketing.'):\n"
        "    if '.migrations' in m.name: continue\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted({n.split('.')[0] for n in sys.modules} & %r)\n"
        "print(bad)\n" % (FORBIDDEN,)
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_ticketing_is_split_into_the_known_layers() -> None:
    top = {p.name for p in (ROOT / "ticketing").iterdir() if (p / "__init__.py").exists()}
    assert top <= set(LAYERS), f"unknown subpackages: {sorted(top - set(LAYERS))}"
    loose = sorted(p.name for p in (ROOT / "ticketing").glob("*.py") if p.name != "__init__.py")
    assert loose == [], f"modules outside a subpackage: {loose}"


def test_subpackages_import_only_their_own_layer_and_lower() -> None:
    graph = _project_graph()
    assert any(m.startswith("ticketing.desk.") for m in graph)
    assert layer_violations(graph) == []


def test_no_import_cycles_in_ticketing_actions_or_bot() -> None:
    assert cycles(_project_graph()) == []


# --- the checks themselves -----------------------------------------------------------------------
def test_detector_catches_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from rasa_sdk import Action\nimport telegram.ext\nfrom bot import gateway\n")
    assert _imported_roots(sample) & FORBIDDEN == {"rasa_sdk", "telegram", "bot"}


def _plant(root: Path, files: Mapping[str, str]) -> dict[str, set[str]]:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return import_graph(source_modules(root, PACKAGES))


def test_a_planted_cycle_through_a_function_level_import_is_caught(tmp_path: Path) -> None:
    graph = _plant(tmp_path, {
        "ticketing/__init__.py": "",
        "ticketing/desk/__init__.py": "",
        "ticketing/desk/tickets.py": "from ticketing.desk import ownership\n",
        "ticketing/desk/ownership.py": "from ticketing.desk.csat import survey\n",
        "ticketing/desk/csat.py": "def survey():\n    from ticketing.desk import tickets\n",
        "actions/__init__.py": "",
        "actions/base.py": "def run():\n    from . import failures\n",
        "actions/failures.py": "from actions.base import run\n",
    })
    assert cycles(graph) == [
        ["actions.base", "actions.failures"],
        ["ticketing.desk.csat", "ticketing.desk.ownership", "ticketing.desk.tickets"],
    ]


def test_a_planted_upward_import_is_caught(tmp_path: Path) -> None:
    graph = _plant(tmp_path, {
        "ticketing/__init__.py": "",
        "ticketing/core/__init__.py": "",
        "ticketing/core/audit.py": "def record():\n    from ticketing.desk.tickets import get\n",
        "ticketing/shop/__init__.py": "",
        "ticketing/shop/orders.py": "import ticketing.core.audit\n",
        "ticketing/desk/__init__.py": "",
        "ticketing/desk/tickets.py": "from ticketing.shop import orders\nget = None\n",
        "bot/__init__.py": "",
        "bot/gateway.py": "import actions.base\n",
        "actions/__init__.py": "",
        "actions/base.py": "",
    })
    assert layer_violations(graph) == [
        "bot.gateway imports actions.base",
        "ticketing.core.audit (core) imports ticketing.desk.tickets (desk)",
    ]
    assert cycles(graph) == [
        ["ticketing.core.audit", "ticketing.desk.tickets", "ticketing.shop.orders"],
    ]
