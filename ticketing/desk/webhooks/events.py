"""Capture the shop's webhook events in the same transaction as the change that causes them.

Four events: a ticket created, a ticket solved, a refund requested, a survey scored. The
listeners sit on SQLAlchemy's ``Session`` class (as :mod:`ticketing.desk.facts` does), so no
code path and no process can forget them: after each flush they note the rows that matter,
and just before the commit they write one :class:`~ticketing.core.models.WebhookEvent` plus
one pending :class:`~ticketing.core.models.WebhookDelivery` per active endpoint subscribed to
its type. A rollback writes nothing; an event nobody subscribed to is not stored at all.

Refunds the shop imported itself (``external_id`` set, :mod:`ticketing.shop.ingest`) are not
echoed back. Payloads carry ids, numbers, codes, amounts and the survey's score and comment
(phone-like numbers masked); never a phone, an address, a name, a ticket subject or a
resolution text.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from itertools import chain
from typing import Any

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session, SessionTransaction

from ticketing.core.clock import aware, utcnow
from ticketing.core.errors import ValidationError
from ticketing.core.models import (
    DeliveryStatus,
    Order,
    RefundRequest,
    Survey,
    Ticket,
    TicketEvent,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from ticketing.core.pii import mask_phone

TICKET_CREATED = "ticket.created"
TICKET_SOLVED = "ticket.solved"
REFUND_REQUESTED = "refund.requested"
CSAT_RECEIVED = "csat.received"
EVENT_TYPES = (TICKET_CREATED, TICKET_SOLVED, REFUND_REQUESTED, CSAT_RECEIVED)
CURRENCY = "CNY"  # amounts are integer fen (ticketing.core.money)

_NOTED = "kefu.webhooks.noted"  # Session.info: [(kind, id)] seen by flushes, not yet captured
_TICKET_EVENT, _REFUND, _SURVEY = "ticket_event", "refund", "survey"
# a run of 7-15 digits with the separators people type: what a phone number looks like
_PHONE_LIKE = re.compile(r"(?<![\d+])\+?\d[\d\s\-()]{5,22}\d(?!\d)")


# --- noticing ------------------------------------------------------------------------------
def _noted(session: Session, flush_context: Any) -> None:
    """After each flush: remember the rows that may become events (ids are known now)."""
    noted: list[tuple[str, int]] = session.info.setdefault(_NOTED, [])
    for obj in chain(session.new, session.dirty):
        if isinstance(obj, TicketEvent) and obj in session.new:
            if obj.kind == "created" or obj.to_value == "solved":
                noted.append((_TICKET_EVENT, obj.id))
        elif isinstance(obj, RefundRequest) and obj in session.new and not _from_shop(obj):
            noted.append((_REFUND, obj.id))
        elif isinstance(obj, Survey) and _just_scored(obj):
            noted.append((_SURVEY, obj.id))
    if not noted:
        session.info.pop(_NOTED, None)


def _just_scored(survey: Survey) -> bool:
    """The flush gave the survey its score (it had none before)."""
    history = inspect(survey).attrs.score.history
    if not history.added or history.added[0] is None:
        return False
    return not history.deleted or history.deleted[0] is None


def _from_shop(refund: RefundRequest) -> bool:
    """A refund the shop loaded itself (it has the shop's external id): echoing it back as
    "requested" would tell the shop what it told us, and could loop through its handler."""
    return getattr(refund, "external_id", None) is not None


def _before_commit(session: Session) -> None:
    """Write the noted events; capturing flushes, so loop until nothing new is noted."""
    for _ in range(3):
        session.flush()
        noted = session.info.pop(_NOTED, None)
        if not noted:
            return
        capture(session, noted)
    session.flush()


def _forget(session: Session, transaction: SessionTransaction) -> None:
    """The outermost transaction ended (commit or rollback): nothing noted may outlive it.

    Not ``after_rollback``: that fires for a savepoint too, and would drop what the rest of
    the transaction noted. A row a rolled-back savepoint noted is simply not found later.
    """
    if transaction.parent is None:
        session.info.pop(_NOTED, None)


event.listen(Session, "after_flush", _noted)
event.listen(Session, "before_commit", _before_commit)
event.listen(Session, "after_transaction_end", _forget)


# --- capturing -----------------------------------------------------------------------------
def capture(session: Session, noted: Iterable[tuple[str, int]]) -> list[WebhookEvent]:
    """Turn noted rows into events and deliveries for the endpoints subscribed to them."""
    endpoints = list(session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.active.is_(True))
        .order_by(WebhookEndpoint.id)))
    if not endpoints:
        return []
    wanted = {kind for endpoint in endpoints for kind in endpoint.events}
    by_kind: dict[str, set[int]] = {}
    for kind, row_id in noted:
        by_kind.setdefault(kind, set()).add(row_id)
    found: list[tuple[str, str, datetime, dict[str, object]]] = []
    found += _ticket_events(session, sorted(by_kind.get(_TICKET_EVENT, ())), wanted)
    if REFUND_REQUESTED in wanted:
        found += _refunds(session, sorted(by_kind.get(_REFUND, ())))
    if CSAT_RECEIVED in wanted:
        found += _surveys(session, sorted(by_kind.get(_SURVEY, ())))
    if not found:
        return []
    existing = set(session.execute(
        select(WebhookEvent.type, WebhookEvent.source)
        .where(WebhookEvent.source.in_(sorted({source for _, source, _, _ in found}))))
        .tuples())
    now = utcnow()
    written: list[WebhookEvent] = []
    for kind, source, occurred_at, payload in found:
        if (kind, source) in existing:
            continue
        existing.add((kind, source))
        subscribers = [e for e in endpoints if kind in e.events]
        row = WebhookEvent(uid=str(uuid.uuid4()), type=kind, source=source,
                           occurred_at=occurred_at, payload=payload, created_at=now)
        session.add(row)
        session.flush()
        session.add_all([
            WebhookDelivery(event_id=row.id, endpoint_id=endpoint.id,
                            status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=now,
                            created_at=now)
            for endpoint in subscribers])
        written.append(row)
    return written


def _ticket_events(session: Session, ids: Sequence[int], wanted: set[str]
                   ) -> list[tuple[str, str, datetime, dict[str, object]]]:
    if not ids or not wanted & {TICKET_CREATED, TICKET_SOLVED}:
        return []
    rows = session.execute(
        select(TicketEvent, Ticket, Order.number)
        .join(Ticket, Ticket.id == TicketEvent.ticket_id)
        .outerjoin(Order, Order.id == Ticket.order_id)
        .where(TicketEvent.id.in_(ids)).order_by(TicketEvent.id)).tuples()
    found = []
    for ticket_event, ticket, order_number in rows:
        kind = TICKET_CREATED if ticket_event.kind == "created" else TICKET_SOLVED
        if kind in wanted:
            found.append((kind, f"{_TICKET_EVENT}:{ticket_event.id}", aware(ticket_event.at),
                          {"ticket": ticket_data(ticket, order_number)}))
    return found


def _refunds(session: Session, ids: Sequence[int]
             ) -> list[tuple[str, str, datetime, dict[str, object]]]:
    if not ids:
        return []
    rows = session.execute(
        select(RefundRequest, Order.number, Ticket.number)
        .join(Order, Order.id == RefundRequest.order_id)
        .outerjoin(Ticket, Ticket.id == RefundRequest.ticket_id)
        .where(RefundRequest.id.in_(ids)).order_by(RefundRequest.id)).tuples()
    return [(REFUND_REQUESTED, f"{_REFUND}:{refund.id}", aware(refund.created_at),
             {"refund": refund_data(refund, order_number, ticket_number)})
            for refund, order_number, ticket_number in rows]


def _surveys(session: Session, ids: Sequence[int]
             ) -> list[tuple[str, str, datetime, dict[str, object]]]:
    if not ids:
        return []
    rows = session.execute(
        select(Survey, Ticket.number).join(Ticket, Ticket.id == Survey.ticket_id)
        .where(Survey.id.in_(ids), Survey.score.is_not(None)).order_by(Survey.id)).tuples()
    return [(CSAT_RECEIVED, f"{_SURVEY}:{survey.id}",
             aware(survey.answered_at or utcnow()), survey_data(survey, ticket_number))
            for survey, ticket_number in rows]


# --- payloads ------------------------------------------------------------------------------
def ticket_data(ticket: Ticket, order_number: str | None) -> dict[str, object]:
    """What a shop may know of a ticket: ids, number, classification, state, order number."""
    return {
        "id": ticket.id,
        "number": ticket.number,
        "state": _value(ticket.state),
        "category": _value(ticket.category),
        "priority": _value(ticket.priority),
        "tier": ticket.tier,
        "channel": _value(ticket.channel),
        "language": ticket.language,
        "flags": list(ticket.flags or []),
        "customer_id": ticket.customer_id,
        "order_number": order_number,
        "owner_id": ticket.owner_id,
        "team_id": ticket.team_id,
        "created_at": iso(ticket.created_at),
        "solved_at": iso(ticket.solved_at),
        "reopen_count": ticket.reopen_count or 0,
    }


def refund_data(refund: RefundRequest, order_number: str,
                ticket_number: str | None) -> dict[str, object]:
    """The refund by its codes and amount; the customer's free-text reason stays inside."""
    return {
        "id": refund.id,
        "order_number": order_number,
        "state": _value(refund.state),
        "kind": _value(refund.kind),
        "reason": refund.reason,
        "amount_cents": refund.amount_cents,
        "currency": CURRENCY,
        "method": _value(refund.method),
        "customer_id": refund.customer_id,
        "ticket_number": ticket_number,
        "created_at": iso(refund.created_at),
    }


def survey_data(survey: Survey, ticket_number: str) -> dict[str, object]:
    return {
        "survey": {
            "id": survey.id,
            "score": survey.score,
            "comment": redact_phones(survey.comment),
            "category": survey.category,
            "channel": survey.channel,
            "agent_id": survey.agent_id,
            "team_id": survey.team_id,
            "sent_at": iso(survey.sent_at),
            "answered_at": iso(survey.answered_at),
        },
        "ticket": {"id": survey.ticket_id, "number": ticket_number},
    }


def envelope(row: WebhookEvent) -> dict[str, object]:
    """The JSON body sent for ``row``: the same for every endpoint and every attempt."""
    return {"id": row.uid, "type": row.type, "created_at": iso(row.occurred_at),
            "data": row.payload}


def redact_phones(text: str | None) -> str | None:
    """Mask anything in a customer's free text that parses as a phone number (rules §SEC-4);
    longer digit runs (order numbers have 16-19 digits) are left alone."""
    if text is None:
        return None

    def mask(match: re.Match[str]) -> str:
        try:
            return mask_phone(match.group(0))
        except ValidationError:
            return match.group(0)

    return _PHONE_LIKE.sub(mask, text)


def iso(value: datetime | None) -> str | None:
    """UTC ISO 8601 with a ``Z``: one unambiguous spelling for receivers."""
    if value is None:
        return None
    return aware(value).astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _value(value: object) -> str:
    return str(getattr(value, "value", value))
