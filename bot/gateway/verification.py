"""Verifying a Telegram user by the phone number they share (rules §SEC-2).

Only the sender's own contact counts (``contact.user_id`` equals the sender): anyone can
forward someone else's contact card, and that must never open another customer's orders.
The link is audited by ``customers.link_identity``.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from bot.gateway import texts
from bot.gateway.core import Gateway
from bot.gateway.messages import Incoming
from ticketing.conversations import inbound
from ticketing.core import audit
from ticketing.shop import customers
from ticketing.core.errors import ValidationError
from ticketing.core.pii import PiiCipher


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
        customers.link_identity(session, channel=msg.channel, external_id=msg.external_id,
                                customer_id=customer.id, method="phone")
        return "verified", texts.VERIFIED.get(language, name=customer.name)

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
