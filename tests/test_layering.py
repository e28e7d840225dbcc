"""ticketing/ is the bottom layer: it must never import the bot, the actions or their frameworks."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"rasa", "rasa_sdk", "telegram", "bot", "actions"}


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


def test_detector_catches_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from rasa_sdk import Action\nimport telegram.ext\nfrom bot import gateway\n")
    assert _imported_roots(sample) & FORBIDDEN == {"rasa_sdk", "telegram", "bot"}
