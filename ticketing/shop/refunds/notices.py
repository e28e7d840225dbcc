"""Telling the customer each refund result (rules §REF-2: apply → review → process → report back).

Every state a refund reaches (created or auto-completed, approved, rejected, completed) owes
the customer one outbox message in their own language, in the conversation they last used.
Callers notify only after a real change, so an idempotent repeat never sends a second one.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.conversations import outbox
from ticketing.core.models import ChannelIdentity, Customer, OutboxMessage, RefundRequest
from ticketing.shop.refunds.rules import explain_refund

KIND = "refund_update"


def customer_channel(session: Session, *, customer_id: int) -> tuple[str, str | None]:
    """(language, conversation_id) to reach the customer: their most recent channel identity,
    else the customer's own language and no conversation (the gateway picks one)."""
    identity = session.scalars(
        select(ChannelIdentity)
        .where(ChannelIdentity.customer_id == customer_id)
        .order_by(ChannelIdentity.created_at.desc(), ChannelIdentity.id.desc())
        .limit(1)
    ).first()
    language = identity.language if identity is not None else None
    if not language:
        language = session.scalar(select(Customer.language).where(Customer.id == customer_id))
    return language or "zh", identity.conversation_id if identity is not None else None


def notify(
    session: Session, *, refund: RefundRequest, order_number: str, now: datetime
) -> OutboxMessage:
    """Queue the sentence explaining the refund's current state, with the facts as payload."""
    language, conversation_id = customer_channel(session, customer_id=refund.customer_id)
    return outbox.enqueue(
        session,
        customer_id=refund.customer_id,
        conversation_id=conversation_id,
        kind=KIND,
        text=explain_refund(refund).get(language),
        language=language,
        payload={"refund_id": refund.id, "order_number": order_number,
                 "state": refund.state.value, "amount_cents": refund.amount_cents},
        now=now,
    )
