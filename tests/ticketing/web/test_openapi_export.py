"""The shop API's OpenAPI file in docs/ is what the app serves now (regenerate it with the
command in its module when this fails), and holds the shop's paths and nothing else."""

from __future__ import annotations

import io
import json
from pathlib import Path

from ticketing.shop.ingest import ENTITIES
from ticketing.web import openapi_export

COMMITTED = Path(__file__).resolve().parents[3] / "docs" / "shop-openapi.json"
COMMAND = "python -m ticketing.web.openapi_export --prefix /api/v1/shop/ > docs/shop-openapi.json"


def test_the_committed_shop_openapi_file_is_current() -> None:
    out = io.StringIO()
    assert openapi_export.run(["--prefix", "/api/v1/shop/"], out) == 0
    assert COMMITTED.read_text(encoding="utf-8") == out.getvalue(), f"stale: run {COMMAND}"


def test_it_holds_every_shop_path_and_the_components_they_use_only() -> None:
    document = json.loads(COMMITTED.read_text(encoding="utf-8"))
    paths = document["paths"]
    assert all(path.startswith("/api/v1/shop/") for path in paths)
    for kind in ENTITIES:
        assert {"post", "put"} <= set(paths[f"/api/v1/shop/{kind}"])
    assert "/api/v1/shop/orders/{number}" in paths
    refs = set(openapi_export._refs(document))
    defined = {f"#/components/{section}/{name}"
               for section, items in document.get("components", {}).items() for name in items}
    assert refs == defined  # every reference resolves from the root: no inline "#/$defs/"
    assert "OrderRow" in document["components"]["schemas"]
    desk_only = set(openapi_export.full_document()["components"]["schemas"]) - set(
        document["components"]["schemas"])
    assert "ErrorOut" in document["components"]["schemas"] and desk_only  # desk models stay out


def test_an_unknown_prefix_is_refused() -> None:
    assert openapi_export.run(["--prefix", "/api/v9/"], io.StringIO()) == 2
