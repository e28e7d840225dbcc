"""Part of the desk's OpenAPI document as a file, for a shop's developers who never run Kefu:

    python -m ticketing.web.openapi_export --prefix /api/v1/shop/ > docs/shop-openapi.json

The document is the one the desk serves at ``/api/v1/openapi.json``, built from the app itself
(``create_app`` over a throwaway in-memory SQLite database: building the document reads no
data), keeping the paths under ``--prefix`` and the components they use; every reference in
the served document already points into ``components`` (a test checks that each resolves).
A test compares the committed ``docs/shop-openapi.json`` with this command's output, so the
file never goes stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from ticketing.core.db import make_engine, make_session_factory
from ticketing.core.settings import Settings
from ticketing.web.app import create_app

REF = "$ref"
COMPONENTS = "#/components/"
TITLES = {"/api/v1/shop/": ("Kefu shop API", "How a shop puts its products, customers, "
                                              "orders, shipments and refunds into Kefu and "
                                              "reads them back. See docs/integration.md.")}


def full_document() -> dict[str, Any]:
    """The desk's whole OpenAPI document, from an app that never touches its database."""
    settings = Settings(database_url="sqlite://", redis_url=None, pii_key=bytes(32))
    engine = make_engine(settings.database_url)
    try:
        app = create_app(settings=settings, session_factory=make_session_factory(engine))
        return app.openapi()
    finally:
        engine.dispose()


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node[REF]} if isinstance(node.get(REF), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node)) if node else set()
    return set()


def _component(document: dict[str, Any], ref: str) -> tuple[str, str, Any]:
    section, name = ref.removeprefix(COMPONENTS).split("/", 1)
    return section, name, document.get("components", {}).get(section, {}).get(name)


def extract(document: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The paths under ``prefix`` and every component they reach, nothing else."""
    paths = {path: item for path, item in document["paths"].items() if path.startswith(prefix)}
    wanted: dict[str, dict[str, Any]] = {}
    todo = sorted(ref for ref in _refs(paths) if ref.startswith(COMPONENTS))
    while todo:
        section, name, value = _component(document, todo.pop())
        if value is None or name in wanted.get(section, {}):
            continue
        wanted.setdefault(section, {})[name] = value
        todo += sorted(ref for ref in _refs(value) if ref.startswith(COMPONENTS))
    title, description = TITLES.get(prefix, (document["info"]["title"], ""))
    info = {**document["info"], "title": title}
    if description:
        info["description"] = description
    part: dict[str, Any] = {"openapi": document["openapi"], "info": info, "paths": paths}
    if wanted:
        part["components"] = {section: dict(sorted(items.items()))
                              for section, items in sorted(wanted.items())}
    return part


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def run(argv: Sequence[str], out: TextIO) -> int:
    parser = argparse.ArgumentParser(prog="python -m ticketing.web.openapi_export",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--prefix", default="/api/v1/",
                        help="keep the paths that start with this (default: the whole API)")
    args = parser.parse_args(argv)
    part = extract(full_document(), args.prefix)
    if not part["paths"]:
        sys.stderr.write(f"error: no path starts with {args.prefix}\n")
        return 2
    out.write(render(part))
    return 0


if __name__ == "__main__":
    raise SystemExit(run(sys.argv[1:], sys.stdout))
