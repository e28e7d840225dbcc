"""Telling the customer each refund result (rules §REF-2: apply → review → process → report back).

Every state a refund reaches (created or auto-completed, approved, rejected, completed) owes
the customer one outbox message in their own language, in the conversation they last used.
Callers notify only after a real change, so an idempotent repeat never sends a second one.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.conversations import addressing, outbox
from ticketing.core.models import ChannelIdentity, Customer, OutboxMessage, RefundRequest
from ticketing.shop.refunds.rules import explain_refund

KIND = "refund_update"


def customer_channel(session: Session, *, customer_id: int) -> tuple[str, str | None]:
    """(language, conversation_id) to reach the customer: their most recently used channel
    identity (``addressing.newest_conversation``), else the customer's own language and no
    conversation (the outbox routes the row when an identity appears)."""
    conversation_id = addressing.newest_conversation(session, customer_id=customer_id)
    language = session.scalar(select(ChannelIdentity.language).where(
        ChannelIdentity.conversation_id == conversation_id)) if conversation_id else None
    if not language:
        language = session.scalar(select(Customer.language).where(Customer.id == customer_id))
    return language or "zh", conversation_id


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
