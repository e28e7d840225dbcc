"""Rows as a shop sends them (JSON-ready dicts) and a one-call batch runner for the tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.core.models import OutboxMessage
from ticketing.core.pii import PiiCipher
from ticketing.shop import ingest

NOW = datetime(2026, 11, 30, 4, 0, tzinfo=timezone.utc)
ORDER_NO = "2026113000000001"


def at(hours: float = 0) -> str:
    """An ISO time ``hours`` before NOW, in the shop's own zone (+08:00)."""
    return (NOW - timedelta(hours=hours)).astimezone(timezone(timedelta(hours=8))).isoformat()


def product(**over: Any) -> dict[str, Any]:
    row = {"external_id": "P-1", "name_zh": "无线蓝牙耳机", "name_en": "Wireless Earbuds",
           "aliases": ["豆子耳机"], "category": "electronics",
           "specs": {"zh": {"颜色": "白色"}, "en": {"colour": "white"}},
           "price_cents": 19900, "stock": 10, "no_reason_return_7d": True,
           "updated_at": at(5)}
    row.update(over)
    return row


def customer(**over: Any) -> dict[str, Any]:
    row = {"external_id": "C-1", "name": "张伟", "phone": "+86 138-0013-8000",
           "address": "上海市浦东新区世纪大道100号", "segment": "vip", "language": "en",
           "updated_at": at(5)}
    row.update(over)
    return row


def order(**over: Any) -> dict[str, Any]:
    row = {"number": ORDER_NO, "customer": "C-1", "state": "paid",
           "items": [{"product": "P-1", "quantity": 2, "unit_price_cents": 19900}],
           "paid_cents": 39800, "payment_method": "alipay", "created_at": at(6),
           "updated_at": at(5)}
    row.update(over)
    return row


def shipment(**over: Any) -> dict[str, Any]:
    row = {"external_id": "S-1", "order": ORDER_NO, "carrier": "SF",
           "tracking_number": "SF1234567890", "shipped_at": at(4),
           "events": [{"external_id": "E-1", "at": at(4), "status": "picked_up",
                       "location_zh": "深圳", "location_en": "Shenzhen"}],
           "updated_at": at(4)}
    row.update(over)
    return row


def refund(**over: Any) -> dict[str, Any]:
    row = {"external_id": "R-1", "order": ORDER_NO, "state": "under_review",
           "amount_cents": 19900, "reason": "wrong_size", "updated_at": at(3)}
    row.update(over)
    return row


def run(session: Session, cipher: PiiCipher, kind: str, *rows: dict[str, Any],
        now: datetime = NOW, notify: bool = True) -> ingest.BatchReport:
    return ingest.run_batch(session, entity_name=kind, rows=list(rows),
                            ctx=ingest.Context(cipher=cipher, now=now, notify=notify))


def one(session: Session, cipher: PiiCipher, kind: str, row: dict[str, Any], **kw: Any
        ) -> ingest.RowResult:
    [result] = run(session, cipher, kind, row, **kw).results
    return result


def statuses(report: ingest.BatchReport) -> list[str]:
    return [r.status.value if r.error is None else r.error.code for r in report.results]


def outbox(session: Session, kind: str | None = None) -> list[OutboxMessage]:
    query = select(OutboxMessage).order_by(OutboxMessage.id)
    if kind is not None:
        query = query.where(OutboxMessage.kind == kind)
    return list(session.scalars(query))


def seed(session: Session, cipher: PiiCipher, *, order_state: str = "paid",
         **order_over: Any) -> None:
    """A product, a customer and one of their orders, as a shop would send them first."""
    assert statuses(run(session, cipher, "products", product())) == ["created"]
    assert statuses(run(session, cipher, "customers", customer())) == ["created"]
    assert statuses(run(session, cipher, "orders",
                        order(state=order_state, **order_over))) == ["created"]
