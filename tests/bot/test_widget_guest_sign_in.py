"""Issue 13: a widget guest who signs in (the page now carries the shop's token, the browser
still its visitor id) finds the ticket they opened as a guest on their account, in one chat."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot import widget_token
from ticketing.core.models import AuditLog, Ticket
from ticketing.desk import guest_claim, handoffs
from tests.bot.test_widget_handshake import SECRET, VISITOR, _run
from tests.ticketing.desk_setup import build_desk


async def _sign_in(client: TestClient, token: str) -> list[dict[str, Any]]:
    """Hello as the signed-in page; the welcome and the first message delivered after it."""
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "hello", "visitor": VISITOR, "token": token, "language": "en"})
    frames = [await ws.receive_json(timeout=10)]
    while frames[-1]["type"] != "message":
        frames.append(await ws.receive_json(timeout=10))
    await ws.close()
    return frames


def test_the_guests_ticket_follows_the_page_that_signs_in(make, session,
                                                          session_factory) -> None:
    build_desk(make)
    customer = make.customer(language="en")
    ticket = handoffs.open_for_conversation(session, conversation_id=f"widget:{VISITOR}",
                                            text="I want a person", language="en")
    session.commit()
    token = widget_token.sign(customer.id, secret=SECRET)

    welcome, *_, notice = _run(session_factory, lambda client: _sign_in(client, token))
    assert welcome["verified"] is True and welcome["conversation"] == f"widget:c-{customer.id}"
    assert ticket.number in notice["text"] and "your account" in notice["text"]
    with session_factory() as s:
        moved = s.get(Ticket, ticket.id)
        assert moved.customer_id == customer.id
        assert moved.conversation_id == f"widget:c-{customer.id}"
        assert handoffs.active_ticket(s, conversation_id=f"widget:c-{customer.id}").id == ticket.id
        assert s.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == guest_claim.AUDIT_ACTION)) == 1
