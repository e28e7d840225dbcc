"""The four webhook events are captured in the transaction that causes them, for the endpoints
subscribed to them, and carry no personal data (ticketing.desk.webhooks.events)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sqlalchemy import func, select

from tests.ticketing.desk_setup import NOW, build_desk
from ticketing.core.models import (
    DeliveryStatus,
    OrderState,
    RefundKind,
    RefundMethod,
    RefundRequest,
    RefundState,
    WebhookDelivery,
    WebhookEvent,
)
from ticketing.desk import csat, ownership, tickets
from ticketing.desk.webhooks import endpoints, events
from ticketing.shop.refunds import flow as refunds

PHONE, ADDRESS, NAME = "13812345678", "上海市浦东新区世纪大道100号", "欧阳娜娜"
SUBJECT = "快递没到，电话13812345678"


def captured(session) -> list[WebhookEvent]:
    return list(session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))


def deliveries(session, event: WebhookEvent) -> list[tuple[int, DeliveryStatus]]:
    return list(session.execute(
        select(WebhookDelivery.endpoint_id, WebhookDelivery.status)
        .where(WebhookDelivery.event_id == event.id).order_by(WebhookDelivery.endpoint_id)))


def customer(make):
    return make.customer(name=NAME, phone=PHONE, address=ADDRESS)


def new_ticket(session, make, **kwargs):
    c = kwargs.pop("customer", None) or customer(make)
    return tickets.create_ticket(session, customer_id=c.id, subject=SUBJECT, channel="telegram",
                                 conversation_id=f"tg-{c.id}", now=NOW, **kwargs)


def test_ticket_created_is_written_with_its_delivery_in_the_same_commit(
        session, make, add_endpoint) -> None:
    endpoint, _ = add_endpoint()
    buyer = customer(make)
    order = make.order(customer=buyer, state=OrderState.DELIVERED)
    ticket = new_ticket(session, make, customer=buyer, order_id=order.id)
    session.flush()
    assert captured(session) == []  # written at the commit, with everything else
    session.commit()
    [event] = captured(session)
    assert event.type == "ticket.created" and event.source.startswith("ticket_event:")
    assert event.occurred_at == NOW
    data = event.payload["ticket"]
    assert data["id"] == ticket.id and data["number"] == ticket.number
    assert data["number"].startswith("T2026")  # the final number, not the temporary one
    assert (data["state"], data["category"], data["priority"]) == ("new", "logistics", "normal")
    assert data["order_number"] == order.number and data["customer_id"] == buyer.id
    assert deliveries(session, event) == [(endpoint.id, DeliveryStatus.PENDING)]
    body = events.envelope(event)
    assert body["id"] == event.uid and body["type"] == "ticket.created"
    assert body["created_at"] == "2026-03-02T02:00:00Z"


def test_a_rolled_back_change_sends_nothing(session, make, add_endpoint) -> None:
    add_endpoint()
    new_ticket(session, make)
    session.flush()
    session.rollback()
    assert session.scalar(select(func.count()).select_from(WebhookEvent)) == 0
    assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
    # and nothing noted before the rollback leaks into the next transaction
    session.commit()
    assert captured(session) == []


def test_a_rolled_back_savepoint_drops_only_its_own_event(session, make, add_endpoint) -> None:
    add_endpoint()
    kept = new_ticket(session, make)
    session.flush()
    savepoint = session.begin_nested()
    new_ticket(session, make)
    session.flush()
    savepoint.rollback()
    session.commit()
    [event] = captured(session)
    assert event.payload["ticket"]["id"] == kept.id


def test_only_active_subscribed_endpoints_get_deliveries(session, make, add_endpoint,
                                                         admin) -> None:
    new_ticket(session, make)
    session.commit()
    assert captured(session) == []  # nobody listening: nothing stored at all
    created, _ = add_endpoint(events=("ticket.created",))
    add_endpoint(events=("csat.received",))
    disabled, _ = add_endpoint(events=("all",))
    endpoints.set_active(session, endpoint_id=disabled.id, active=False, by_agent_id=admin.id)
    session.commit()
    new_ticket(session, make)
    session.commit()
    [event] = captured(session)
    assert deliveries(session, event) == [(created.id, DeliveryStatus.PENDING)]


def test_solved_and_rated_tickets_are_events_once(session, make, add_endpoint) -> None:
    endpoint, _ = add_endpoint(events=("ticket.solved", "csat.received"))
    desk = build_desk(make)
    ticket = new_ticket(session, make)
    ownership.claim(session, ticket_id=ticket.id, agent_id=desk.l1.id, now=NOW)
    session.commit()
    assert captured(session) == []  # created and claimed: not subscribed
    tickets.solve(session, ticket_id=ticket.id, agent_id=desk.l1.id,
                  resolution=f"已补发到{ADDRESS}", now=NOW)
    session.commit()
    csat.record_score(session, customer_id=ticket.customer_id, ticket_id=ticket.id, score="4",
                      comment="还行，有事打我 138-1234-5678，订单 2026112500000007", now=NOW)
    session.commit()
    solved, rated = captured(session)
    assert solved.type == "ticket.solved"
    assert solved.payload["ticket"]["state"] == "solved"
    assert solved.payload["ticket"]["solved_at"] == "2026-03-02T02:00:00Z"
    assert rated.type == "csat.received"
    survey = rated.payload["survey"]
    assert survey["score"] == 4
    assert survey["comment"] == "还行，有事打我 138****5678，订单 2026112500000007"
    assert rated.payload["ticket"] == {"id": ticket.id, "number": ticket.number}
    assert [d for e in (solved, rated) for d in deliveries(session, e)] == [
        (endpoint.id, DeliveryStatus.PENDING)] * 2


def test_a_later_comment_is_not_a_second_csat_event(session, make, add_endpoint) -> None:
    add_endpoint(events=("csat.received",))
    desk = build_desk(make)
    ticket = new_ticket(session, make)
    ownership.claim(session, ticket_id=ticket.id, agent_id=desk.l1.id, now=NOW)
    tickets.solve(session, ticket_id=ticket.id, agent_id=desk.l1.id, resolution="ok", now=NOW)
    csat.record_score(session, customer_id=ticket.customer_id, ticket_id=ticket.id, score=5,
                      now=NOW)
    session.commit()
    csat.record_comment(session, customer_id=ticket.customer_id, ticket_id=ticket.id,
                        comment="thanks", now=NOW)
    session.commit()
    [rated] = captured(session)
    assert rated.payload["survey"]["comment"] is None


def test_refund_request_is_an_event_without_the_free_text(session, make, add_endpoint) -> None:
    add_endpoint(events=("refund.requested",))
    buyer = customer(make)
    order = make.order(customer=buyer, state=OrderState.DELIVERED, delivered_at=NOW)
    refund = refunds.request_refund(
        session, customer_id=buyer.id, order_number=order.number, reason="other",
        reason_text=f"寄回{ADDRESS}", amount_cents=None, method="original",
        idempotency_key="k-1", now=NOW)
    session.commit()
    [event] = captured(session)
    data = event.payload["refund"]
    assert data == {
        "id": refund.id, "order_number": order.number, "state": "under_review",
        "kind": "return_and_refund", "reason": "other", "amount_cents": order.paid_cents,
        "currency": "CNY", "method": "original", "customer_id": buyer.id,
        "ticket_number": None, "created_at": "2026-03-02T02:00:00Z",
    }


def test_no_payload_carries_personal_data(session, make, add_endpoint) -> None:
    add_endpoint()
    desk = build_desk(make)
    buyer = customer(make)
    order = make.order(customer=buyer, state=OrderState.DELIVERED, delivered_at=NOW)
    ticket = new_ticket(session, make, customer=buyer, order_id=order.id)
    ownership.claim(session, ticket_id=ticket.id, agent_id=desk.l1.id, now=NOW)
    tickets.solve(session, ticket_id=ticket.id, agent_id=desk.l1.id,
                  resolution=f"联系 {PHONE}，地址 {ADDRESS}", now=NOW)
    csat.record_score(session, customer_id=buyer.id, ticket_id=ticket.id, score=1,
                      comment=f"call +86 {PHONE[:3]} {PHONE[3:7]} {PHONE[7:]}", now=NOW)
    refunds.request_refund(session, customer_id=buyer.id, order_number=order.number,
                           reason="other", reason_text=f"电话{PHONE}", amount_cents=100,
                           method="original", idempotency_key="k-2", now=NOW)
    session.commit()
    kinds = [e.type for e in captured(session)]
    assert sorted(kinds) == sorted(events.EVENT_TYPES)
    text = json.dumps([events.envelope(e) for e in captured(session)], ensure_ascii=False)
    for secret in (PHONE, PHONE[3:7] + " " + PHONE[7:], ADDRESS, ADDRESS[:6], NAME, SUBJECT,
                   "联系"):
        assert secret not in text


def test_a_refund_the_shop_imported_is_not_echoed_back(session, make, add_endpoint) -> None:
    add_endpoint(events=("refund.requested",))
    buyer = customer(make)
    order = make.order(customer=buyer, state=OrderState.DELIVERED, delivered_at=NOW)
    fields = dict(order_id=order.id, customer_id=buyer.id, kind=RefundKind.RETURN_AND_REFUND,
                  reason="other", amount_cents=100, method=RefundMethod.ORIGINAL, created_at=NOW)
    session.add(RefundRequest(idempotency_key="shop:r-1", external_id="r-1",
                              state=RefundState.DONE, **fields))
    session.commit()
    assert captured(session) == []
    session.add(RefundRequest(idempotency_key="kefu-1", state=RefundState.UNDER_REVIEW, **fields))
    session.commit()
    assert [e.type for e in captured(session)] == ["refund.requested"]


def shape(value: object) -> object:
    """The keys of nested objects, all the way down (values ignored)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    return None


def test_the_documented_examples_have_the_real_shape(session, make, add_endpoint) -> None:
    add_endpoint()
    desk = build_desk(make)
    buyer = customer(make)
    order = make.order(customer=buyer, state=OrderState.DELIVERED, delivered_at=NOW)
    ticket = new_ticket(session, make, customer=buyer, order_id=order.id)
    ownership.claim(session, ticket_id=ticket.id, agent_id=desk.l1.id, now=NOW)
    tickets.solve(session, ticket_id=ticket.id, agent_id=desk.l1.id, resolution="ok", now=NOW)
    csat.record_score(session, customer_id=buyer.id, ticket_id=ticket.id, score=5, now=NOW)
    refunds.request_refund(session, customer_id=buyer.id, order_number=order.number,
                           reason="quality", amount_cents=100, method="original",
                           idempotency_key="k-3", now=NOW)
    session.commit()
    real = {e.type: shape(events.envelope(e)) for e in captured(session)}
    doc = (Path(__file__).resolve().parents[4] / "docs" / "webhooks.md").read_text()
    examples = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", doc, re.S)]
    assert {example["type"] for example in examples} == {
        "ticket.created", "refund.requested", "csat.received"}
    for example in examples:
        assert shape(example) == real[example["type"]], example["type"]
    assert real["ticket.solved"] == real["ticket.created"]  # "the same shape", as documented
