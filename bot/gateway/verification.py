"""Verifying who is writing: a Telegram user by the phone number they share (rules §SEC-2),
a widget page by the shop's signed token (``signed_in``, called by the widget's handshake).

Only the sender's own contact counts (``contact.user_id`` equals the sender): anyone can
forward someone else's contact card, and that must never open another customer's orders.
The link is audited by ``customers.link_identity``.

What verifying changes besides the link, in the same transaction: a guest's tickets become the
customer's and follow them into the chat they now use (``ticketing.desk.guest_claim``, issue
13); what was owed to the customer while no chat of theirs was known goes to their newest one
(``addressing.route_customer``); and what is still owed in this chat to a customer it belonged to
before goes to that customer instead (``addressing.readdress``), so nobody reads another's messages.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.orm import Session

from bot.gateway import texts
from bot.gateway.core import Gateway
from bot.gateway.messages import Incoming
from ticketing.conversations import addressing, inbound, outbox
from ticketing.core import audit
from ticketing.core.errors import ValidationError
from ticketing.core.i18n import Text
from ticketing.core.pii import PiiCipher
from ticketing.desk import guest_claim
from ticketing.shop import customers

log = logging.getLogger("kefu.gateway.verification")

TICKETS_FOLLOW = Text(
    "您以访客身份咨询的问题（工单 {numbers}）已归入您的账户，后续回复会发到这里。",
    "What you asked us as a visitor (ticket {numbers}) is now on your account; replies will "
    "come here.",
)


def tickets_follow(adoption: guest_claim.Adoption, language: str) -> str:
    """The sentence telling a verified customer their guest tickets came along."""
    joiner = "、" if language == "zh" else ", "
    return TICKETS_FOLLOW.get(language, numbers=joiner.join(adoption.ticket_numbers))


async def verify_phone(gateway: Gateway, msg: Incoming, *, phone: str | None, own: bool) -> str:
    """Link the sender to the customer with this phone; returns the result code."""
    cipher = PiiCipher(gateway.pii_key)
    conversation = msg.conversation_id

    def work(session: Session) -> tuple[str, str] | None:
        identity = customers.identity_for(session, channel=msg.channel,
                                          external_id=msg.external_id, language=msg.language)
        row, created = inbound.record(session, channel=msg.channel, conversation_id=conversation,
                                      dedupe_key=msg.dedupe_key, text=msg.text,
                                      payload={"contact": "own" if own else "foreign"})
        if not created:
            return None
        inbound.mark_handled(session, message_id=row.id, route="verification")
        language = identity.language or (msg.language or "zh")
        if not own:
            audit.record(session, action="identity.foreign_contact_refused",
                         actor_type="customer", target_type="channel_identity",
                         target_id=conversation[:64])
            return "foreign", texts.NOT_OWN_CONTACT.get(language)
        try:
            customer = customers.find_by_phone(session, cipher=cipher, phone=phone or "")
        except ValidationError:  # not a phone number at all
            customer = None
        if customer is None:
            return "unknown", texts.NO_CUSTOMER.get(language)
        adoption = guest_claim.adopt_guest(session, guest_conversation_id=conversation,
                                           customer_id=customer.id, method="phone")
        customers.link_identity(session, channel=msg.channel, external_id=msg.external_id,
                                customer_id=customer.id, method="phone")
        addressing.readdress(session, conversation_id=conversation, customer_id=customer.id)
        addressing.route_customer(session, customer_id=customer.id)
        text = texts.VERIFIED.get(language, name=customer.name)
        if adoption.ticket_numbers:
            text = f"{text}\n{tickets_follow(adoption, language)}"
        return "verified", text

    try:
        result = await gateway.db(work)
    except Exception:
        gateway.metrics.errors.labels("verification").inc()
        raise
    if result is None:
        gateway.metrics.duplicates.labels(msg.channel).inc()
        return "duplicate"
    code, text = result
    gateway.metrics.messages_in.labels(msg.channel, f"verification_{code}").inc()
    await gateway.say(msg.channel, msg.external_id, text,
                      kind="verified" if code == "verified" else "notice")
    return code


async def signed_in(gateway: Gateway, *, customer_id: int, visitor: str | None,
                    language: str = "zh") -> guest_claim.Adoption:
    """A widget page signed in as ``customer_id`` (``widget:c-<id>``, linked by the widget).

    If the page was a guest before (``visitor``, the id the browser keeps), the guest's
    tickets, handoff and undelivered messages move to the customer's conversation, with a
    notice; what waited for a channel of this customer goes out. Never fails the sign-in:
    an error is logged and counted, and the next sign-in tries again (nothing half-done).
    """
    home = customers.conversation_id_for("widget", f"c-{customer_id}")

    def work(session: Session) -> guest_claim.Adoption:
        adoption = guest_claim.NOTHING
        guest = customers.conversation_id_for("widget", visitor) if visitor else None
        if guest is not None and guest != home:
            adoption = guest_claim.adopt_guest(
                session, guest_conversation_id=guest, customer_id=customer_id,
                conversation_id=home, method="widget_token")
        if adoption.ticket_numbers:
            outbox.enqueue(session, customer_id=customer_id, conversation_id=home, kind="notice",
                           text=tickets_follow(adoption, language), language=language)
        addressing.route_customer(session, customer_id=customer_id)
        return adoption

    try:
        adoption: guest_claim.Adoption = await gateway.db(work)
    except Exception:
        log.exception("signing in %s: the guest's tickets stay for the next sign-in", home)
        gateway.metrics.errors.labels("guest_adoption").inc()
        return guest_claim.NOTHING
    if adoption.released is not None:  # its Rasa conversation was paused for the ticket
        try:
            await asyncio.wait_for(gateway.rasa.resume(adoption.released),
                                   timeout=gateway.settings.rasa_timeout)
        except Exception as exc:  # the next message there meets a paused assistant: a ticket
            log.warning("cannot resume %s after its ticket moved (%r)", adoption.released, exc)
            gateway.metrics.errors.labels("rasa_resume").inc()
    return adoption
