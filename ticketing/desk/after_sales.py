"""The "outside the rules" route of rules §REF-5: when a refund is not for the rules to decide, a
human does, so the customer's request becomes an after-sales ticket."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy.orm import Session

from ticketing.desk import tickets
from ticketing.shop import orders
from ticketing.shop.refunds import flow as refunds
from ticketing.core.clock import utcnow
from ticketing.core.errors import DirectRefundAvailable
from ticketing.core.i18n import Text
from ticketing.core.models import Category, Channel, Ticket
from ticketing.shop.refunds.rules import (
    RefundReason,
    Route,
    check_reason_text,
    parse_reason,
    reason_label,
)

AFTER_SALES_SUBJECT = Text(
    "售后申请：订单 {number}（{reason}）", "After-sales request: order {number} ({reason})"
)


def open_after_sales_ticket(
    session: Session,
    *,
    customer_id: int,
    order_number: str,
    reason: RefundReason | str,
    description: str = "",
    channel: Channel | str,
    conversation_id: str | None = None,
    language: str = "zh",
    transcript: Iterable[Mapping[str, object]] = (),
    now: datetime | None = None,
) -> Ticket:
    """The "outside the rules" route of rules §REF-5: a human decides, so open a ticket for them.

    Eligibility is checked again here (the bot's earlier answer may be stale): an order that can
    be refunded directly is refused with ``DirectRefundAvailable`` (``context['route']`` says how), one with
    nothing to refund or a refund under way with the same errors ``request_refund`` raises.
    Asking twice returns the same live ticket (the new contact is appended to it).
    """
    now = now or utcnow()
    parsed = parse_reason(reason)
    description = check_reason_text(parsed, description)
    order = orders.get_order(session, customer_id=customer_id, number=order_number)
    eligibility = refunds.assess_order(session, order, parsed, now, None)
    if eligibility.can_request:
        raise DirectRefundAvailable(
            "the order can be refunded directly; request a refund instead",
            route=eligibility.route.value, order_number=order.number,
            explanation=eligibility.explanation,
        )
    if eligibility.route is not Route.AFTER_SALES_TICKET:
        refunds.refuse(eligibility, order)
    turns = list(transcript)
    if description:
        turns.append({"author_type": "customer", "body": description, "at": now})
    subject = AFTER_SALES_SUBJECT.get(language, number=order.number,
                                      reason=reason_label(parsed.value, language))
    return tickets.create_ticket(
        session, customer_id=customer_id, subject=subject, channel=channel, language=language,
        category=Category(eligibility.ticket_category or Category.REFUND.value),
        conversation_id=conversation_id, order_id=order.id, transcript=turns,
        text=f"{subject} {description}".strip(), dedupe=True, now=now,
    )

