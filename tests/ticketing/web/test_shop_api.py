"""The shop API (``/api/v1/shop/``): scoped tokens, per-row results, audit rows without PII,
the per-token quota, masked reads, and a new order visible to its own customer only."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.ticketing.shop.ingest.shop_rows import (
    NOW,
    ORDER_NO,
    customer,
    order,
    product,
    refund,
    shipment,
)
from ticketing.core.errors import OrderNotFound
from ticketing.core.models import AuditLog, Customer
from ticketing.desk import accounts
from ticketing.shop import orders as shop_orders
from ticketing.shop.ingest.quota import QuotaPolicy, TokenBucket
from ticketing.web.routes.shop_api import QUOTA_KEY


@pytest.fixture
def shop(app, people, session_factory, clock) -> TestClient:
    """A client of the shop's integration, with a shop:read + shop:write token."""
    clock.now = NOW
    return _client(app, session_factory, people, ["shop:read", "shop:write"])


def _client(app, session_factory, people, scopes: list[str]) -> TestClient:
    with session_factory.begin() as s:
        _, secret = accounts.create_api_token(s, agent_id=people.admin.id, name="shop feed",
                                              scopes=scopes)
    return TestClient(app, base_url="http://desk.test",
                      headers={"Authorization": f"Bearer {secret}"})


def _audits(session_factory, action: str) -> list[AuditLog]:
    with session_factory() as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.action == action)
                              .order_by(AuditLog.id)))


def test_tokens_need_the_shop_scopes(app, people, session_factory, shop) -> None:
    anonymous = TestClient(app, base_url="http://desk.test")
    assert anonymous.post("/api/v1/shop/products", json={"rows": []}).status_code == 401
    forged = anonymous.post("/api/v1/shop/products", json={"rows": []},
                            headers={"Authorization": "Bearer kefu_forged"})
    assert forged.status_code == 401 and forged.json()["error"]["code"] == \
        "authentication_failed"
    desk_reader = _client(app, session_factory, people, ["desk:read", "desk:write"])
    refused = desk_reader.get(f"/api/v1/shop/orders/{ORDER_NO}")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    reader = _client(app, session_factory, people, ["shop:read"])
    assert reader.post("/api/v1/shop/products", json={"rows": [product()]}).status_code == 403
    assert reader.get("/api/v1/shop/products/P-1").status_code == 404
    assert shop.post("/api/v1/shop/products", json={"rows": [product()]}).status_code == 200
    assert reader.get("/api/v1/shop/products/P-1").json()["stock"] == 10


def test_batches_answer_per_row_and_are_audited_without_pii(shop, session_factory) -> None:
    answer = shop.post("/api/v1/shop/customers", json={"rows": [
        customer(), customer(external_id="C-2", phone="138-bad"),
        customer(external_id="C-3", phone="13900139000", shipping_notices_opt_out=True)]})
    assert answer.status_code == 200
    body = answer.json()
    assert body["counts"] == {"created": 2, "updated": 0, "unchanged": 0, "stale": 0, "error": 1}
    assert body["results"][1] == {"index": 1, "key": "C-2", "status": "error", "error": {
        "code": "invalid_phone", "message": "phone is not a phone number", "field": "phone"}}
    assert "138" not in answer.text and "世纪大道" not in answer.text
    # PUT is the same upsert: a replay changes nothing
    again = shop.put("/api/v1/shop/customers", json={"rows": [customer()]}).json()
    assert again["results"][0]["status"] == "unchanged"

    [first, second] = _audits(session_factory, "shop.batch")
    assert (first.target_type, first.target_id, first.actor_type) == \
        ("shop_batch", "customers", "agent")
    assert first.details["rows"] == 3 and first.details["created"] == 2
    assert first.details["errors"] == {"invalid_phone": 1} and first.details["method"] == "POST"
    assert second.details["unchanged"] == 1 and second.details["method"] == "PUT"
    logged = json.dumps([first.details, second.details], ensure_ascii=False)
    assert "13800138000" not in logged and "138-bad" not in logged and "世纪" not in logged


def test_the_whole_shop_flows_in_and_reads_back_masked(shop, session_factory) -> None:
    for kind, rows in (("products", [product()]), ("customers", [customer()]),
                       ("orders", [order(state="shipped", address="北京市海淀区中关村大街1号")]),
                       ("shipments", [shipment()]),
                       ("refunds", [refund(state="done", amount_cents=100)])):
        body = shop.post(f"/api/v1/shop/{kind}", json={"rows": rows}).json()
        assert body["results"][0]["status"] == "created", (kind, body)
    read = shop.get(f"/api/v1/shop/orders/{ORDER_NO}")
    assert read.status_code == 200
    view = read.json()
    assert (view["customer"], view["state"], view["address"]) == \
        ("C-1", "shipped", "北京市海淀区******")
    assert view["items"] == [{"product": "P-1", "quantity": 2, "unit_price_cents": 19900}]
    assert view["shipments"][0]["events"][0]["status"] == "picked_up"
    assert view["refunds"][0]["state"] == "done"
    person = shop.get("/api/v1/shop/customers/C-1").json()
    assert person["phone"] == "138****8000" and "13800138000" not in json.dumps(person)
    assert shop.get("/api/v1/shop/orders/2026113099999999").status_code == 404
    [audit] = _audits(session_factory, "shop.read")[:1]
    assert (audit.target_type, audit.target_id) == ("order", ORDER_NO)


def test_a_new_order_is_visible_to_its_customer_only(shop, session_factory) -> None:
    shop.post("/api/v1/shop/products", json={"rows": [product()]})
    shop.post("/api/v1/shop/customers", json={"rows": [
        customer(), customer(external_id="C-2", phone="13900139000")]})
    shop.post("/api/v1/shop/orders", json={"rows": [order()]})
    with session_factory() as s:
        owner, other = (s.scalars(select(Customer.id).where(Customer.external_id == key)).one()
                        for key in ("C-1", "C-2"))
        assert shop_orders.get_order(s, customer_id=owner, number=ORDER_NO).paid_cents == 39800
        with pytest.raises(OrderNotFound):
            shop_orders.get_order(s, customer_id=other, number=ORDER_NO)


def test_bad_bodies_and_big_batches_are_refused_whole(shop, session_factory) -> None:
    assert shop.post("/api/v1/shop/products", json={"row": []}).status_code == 422
    assert shop.post("/api/v1/shop/products", content=b"{", headers={
        "content-type": "application/json"}).status_code == 422
    big = shop.post("/api/v1/shop/products",
                    json={"rows": [product(external_id=f"P-{i}") for i in range(1001)]})
    assert big.status_code == 422 and big.json()["error"]["code"] == "batch_too_large"
    assert _audits(session_factory, "shop.batch") == []


def test_each_token_has_a_quota(app, people, session_factory, shop, clock) -> None:
    app.state.desk.extras[QUOTA_KEY] = TokenBucket(QuotaPolicy(burst=2, per_second=0.25))
    other = _client(app, session_factory, people, ["shop:read"])
    for _ in range(2):
        assert shop.get("/api/v1/shop/products/P-1").status_code == 404
    limited = shop.get("/api/v1/shop/products/P-1")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "4"
    assert limited.json()["error"]["code"] == "rate_limited"
    assert other.get("/api/v1/shop/products/P-1").status_code == 404  # its own bucket
    clock.advance(seconds=4)
    assert shop.get("/api/v1/shop/products/P-1").status_code == 404


def test_the_shop_api_is_in_the_openapi_document(client) -> None:
    document = client.get("/api/v1/openapi.json").json()
    batch = document["paths"]["/api/v1/shop/orders"]["post"]
    schema = batch["requestBody"]["content"]["application/json"]["schema"]
    assert "rows" in schema["properties"] and "OrderRow" in json.dumps(schema)
    assert {"401", "403", "422", "429"} <= set(batch["responses"])
    assert "/api/v1/shop/customers/{external_id}" in document["paths"]


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _pointed(document: dict, ref: str) -> object:
    """What a local JSON reference (``#/a/b``) names, read from the document's root."""
    assert ref.startswith("#/"), ref
    node: object = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def test_every_reference_in_the_served_openapi_document_resolves(client) -> None:
    document = client.get("/api/v1/openapi.json").json()
    refs = sorted(set(_refs(document)))
    assert "#/components/schemas/OrderRow" in refs and "#/components/schemas/OrderItemRow" in refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert isinstance(_pointed(document, ref), dict), ref
    body = document["paths"]["/api/v1/shop/shipments"]["put"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert body["required"] and schema["title"] == "ShipmentsBatchIn"
    assert schema["properties"]["rows"]["items"] == {"$ref": "#/components/schemas/ShipmentRow"}
    assert "$defs" not in json.dumps(document)


def test_a_body_that_is_no_batch_is_refused_whole(app, shop, session_factory) -> None:
    # FastAPI hands the route the parsed JSON, unvalidated: the route says what is wrong
    anonymous = TestClient(app, base_url="http://desk.test")
    assert anonymous.post("/api/v1/shop/orders", content=b"rows",
                          headers={"content-type": "text/plain"}).status_code == 401
    for content, content_type, field in ((b"rows", "text/plain", "content-type"),
                                         (b"", "application/json", "body"),
                                         (b'{"rows": {}}', "application/json", "rows")):
        refused = shop.post("/api/v1/shop/orders", content=content,
                            headers={"content-type": content_type})
        assert refused.status_code == 422, content
        assert refused.json()["error"]["code"] == "invalid_input"
        assert field in refused.json()["error"]["message"]
    assert _audits(session_factory, "shop.batch") == []
