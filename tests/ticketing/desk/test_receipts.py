"""No silence after a handoff (ticketing.desk.receipts): the first message into a handed-off
conversation, and the first after a quiet spell, get one receipt naming the ticket, its owner
and the reply time; a live exchange gets none."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from ticketing.core.models import OutboxMessage
from ticketing.desk import ownership, receipts, tickets
from tests.ticketing.desk_setup import NOW, build_desk, new_ticket


def _write(session, ticket, body, *, at, language="zh"):
    tickets.add_customer_message(session, ticket_id=ticket.id, body=body, now=at)
    return receipts.acknowledge(session, ticket=ticket, conversation_id=ticket.conversation_id,
                                language=language, now=at)


def _receipts(session, ticket) -> list[OutboxMessage]:
    return list(session.scalars(select(OutboxMessage).where(
        OutboxMessage.ticket_id == ticket.id, OutboxMessage.kind == receipts.KIND)))


def test_first_message_then_quiet_spell(session, make) -> None:
    build_desk(make)
    ticket = new_ticket(session, make)
    first = _write(session, ticket, "还在吗", at=NOW + timedelta(minutes=1))
    assert first is not None and ticket.number in first.text and "前回复您" in first.text
    # a burst of messages: one receipt, not one each
    assert _write(session, ticket, "快点", at=NOW + timedelta(minutes=3)) is None
    assert _write(session, ticket, "？？", at=NOW + timedelta(minutes=30)) is None
    # quiet for more than half an hour since the receipt: told again
    again = _write(session, ticket, "有人吗", at=NOW + timedelta(minutes=32))
    assert again is not None
    assert len(_receipts(session, ticket)) == 2


def test_names_the_owner_in_the_customer_language(session, make) -> None:
    desk = build_desk(make)
    ticket = new_ticket(session, make, language="en")
    ownership.claim(session, ticket_id=ticket.id, agent_id=desk.l1.id, now=NOW)
    receipt = _write(session, ticket, "any news?", at=NOW + timedelta(minutes=5), language="en")
    assert receipt is not None and receipt.language == "en"
    assert "Li" in receipt.text and ticket.number in receipt.text and "reply by" in receipt.text


def test_no_receipt_in_a_live_exchange(session, make) -> None:
    desk = build_desk(make)
    ticket = new_ticket(session, make)
    ownership.claim(session, ticket_id=ticket.id, agent_id=desk.l1.id, now=NOW)
    tickets.agent_reply(session, ticket_id=ticket.id, agent_id=desk.l1.id, body="您好，我在查",
                        now=NOW + timedelta(minutes=2))
    assert _write(session, ticket, "好的谢谢", at=NOW + timedelta(minutes=10)) is None
    # an internal note is not an answer the customer saw
    tickets.agent_reply(session, ticket_id=ticket.id, agent_id=desk.l1.id, body="查物流",
                        internal=True, now=NOW + timedelta(minutes=50))
    assert _write(session, ticket, "怎么样了", at=NOW + timedelta(minutes=55)) is not None
