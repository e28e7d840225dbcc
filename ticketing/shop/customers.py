"""Who is talking: channel identities, the customers behind them, and their personal data.

A Telegram user or widget visitor is a :class:`ChannelIdentity` first; it becomes a known
customer only when linked (for example after sharing a phone number that matches). Phone and
address are stored encrypted and only ever shown masked (rules §SEC-3, §SEC-4); linking is audited
(rules §SEC-6) because it grants access to the customer's orders.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ticketing.core import audit
from ticketing.core.clock import utcnow
from ticketing.core.errors import Conflict, CustomerNotFound, ValidationError
from ticketing.core.i18n import normalize_language
from ticketing.core.models import ChannelIdentity, Customer, Segment
from ticketing.core.pii import PiiCipher, mask_address, mask_phone, normalize_phone


def conversation_id_for(channel: str, external_id: str) -> str:
    """The Rasa sender id of a channel identity: ``"telegram:12345"``."""
    return f"{channel}:{external_id}"


def _check_identity(channel: str, external_id: str) -> tuple[str, str]:
    channel, external_id = (channel or "").strip().lower(), (external_id or "").strip()
    if not channel or ":" in channel or not external_id:
        raise ValidationError("channel and external_id are required (channel without ':')")
    return channel, external_id


def identity_for(
    session: Session, *, channel: str, external_id: str, language: str | None = None,
    now: datetime | None = None,
) -> ChannelIdentity:
    """Find or create the identity for (channel, external_id); safe against a racing create."""
    channel, external_id = _check_identity(channel, external_id)
    query = select(ChannelIdentity).where(
        ChannelIdentity.channel == channel, ChannelIdentity.external_id == external_id
    )
    found = session.scalars(query).one_or_none()
    if found is not None:
        return found
    identity = ChannelIdentity(
        channel=channel,
        external_id=external_id,
        conversation_id=conversation_id_for(channel, external_id),
        language=normalize_language(language) if language else None,
        created_at=now or utcnow(),
    )
    try:
        with session.begin_nested():
            session.add(identity)
    except IntegrityError:  # another process created it between our select and insert
        return session.scalars(query).one()
    return identity


class Speaker(NamedTuple):
    """What a message's turn needs of its channel identity (see :func:`speaker`)."""

    conversation_id: str
    language: str | None
    verified: bool
    handed_off_ticket_id: int | None


_SPEAKER = (select(ChannelIdentity.conversation_id, ChannelIdentity.language,
                   ChannelIdentity.verified_at, ChannelIdentity.handed_off_ticket_id)
            .where(ChannelIdentity.channel == bindparam("channel"),
                   ChannelIdentity.external_id == bindparam("external_id")))


def speaker(session: Session, *, channel: str, external_id: str,
            language: str | None = None) -> Speaker:
    """:func:`identity_for` as the facts one message's turn reads, by one statement on the
    connection for a known identity (every turn of the gateway asks; a new one is created
    through the ORM as :func:`identity_for` does)."""
    channel, external_id = _check_identity(channel, external_id)
    found = session.connection().execute(
        _SPEAKER, {"channel": channel, "external_id": external_id}).first()
    if found is None:
        identity = identity_for(session, channel=channel, external_id=external_id,
                                language=language)
        return Speaker(identity.conversation_id, identity.language,
                       identity.verified_at is not None, identity.handed_off_ticket_id)
    return Speaker(found.conversation_id, found.language, found.verified_at is not None,
                   found.handed_off_ticket_id)


def set_language(session: Session, *, channel: str, external_id: str, language: str) -> None:
    """Remember the language a customer writes in (one UPDATE; no object is loaded)."""
    channel, external_id = _check_identity(channel, external_id)
    session.flush()  # an identity created in this transaction is in the database first
    session.connection().execute(
        update(ChannelIdentity)
        .where(ChannelIdentity.channel == channel, ChannelIdentity.external_id == external_id)
        .values(language=normalize_language(language)))


def identity_by_conversation(session: Session, *, conversation_id: str) -> ChannelIdentity | None:
    return session.scalars(
        select(ChannelIdentity).where(ChannelIdentity.conversation_id == conversation_id)
    ).one_or_none()


def customer_for_conversation(session: Session, *, conversation_id: str) -> Customer | None:
    """The verified customer of a conversation, or None while it is anonymous.

    A guest record (see :func:`guest_customer`) does not count: it owns tickets, not orders.
    """
    identity = identity_by_conversation(session, conversation_id=conversation_id)
    if identity is None or identity.customer_id is None or identity.verified_at is None:
        return None
    return session.get(Customer, identity.customer_id)


def split_conversation_id(conversation_id: str) -> tuple[str, str]:
    """``"telegram:123"`` → ``("telegram", "123")``; an id without a channel is a widget visitor."""
    channel, sep, external_id = (conversation_id or "").partition(":")
    if not sep:
        return "widget", conversation_id
    return channel, external_id


def guest_customer(
    session: Session, *, conversation_id: str, language: str = "zh", now: datetime | None = None,
) -> Customer:
    """The customer record that carries an anonymous visitor's tickets.

    An unverified visitor who asks for a person still gets a ticket (rules §REC-1: every
    consultation is recorded), so the identity gets a customer of its own, but stays
    unverified: :func:`customer_for_conversation` keeps returning None and no order is shown.
    A verified identity returns its real customer.
    """
    now = now or utcnow()
    channel, external_id = split_conversation_id(conversation_id)
    identity = identity_for(session, channel=channel, external_id=external_id,
                            language=language, now=now)
    if identity.customer_id is not None:
        customer = session.get(Customer, identity.customer_id)
        if customer is not None:
            return customer
    customer = Customer(name=f"guest {identity.conversation_id}"[:120],
                        language=normalize_language(language), created_at=now)
    session.add(customer)
    session.flush()
    identity.customer_id = customer.id  # verified_at stays None: a guest, not a login
    session.flush()
    return customer


def link_identity(
    session: Session, *, channel: str, external_id: str, customer_id: int,
    actor_type: str = "system", actor_id: int | None = None, method: str = "phone",
    now: datetime | None = None,
) -> ChannelIdentity:
    """Link a channel identity to a customer (created if new), recorded in the audit log.

    ``method`` says how the customer was verified (``phone``, ``agent``, ``demo``...).
    """
    now = now or utcnow()
    channel, external_id = _check_identity(channel, external_id)
    if session.get(Customer, customer_id) is None:
        raise CustomerNotFound()
    identity = identity_for(session, channel=channel, external_id=external_id, now=now)
    previous = identity.customer_id
    if previous == customer_id:
        return identity
    identity.customer_id = customer_id
    identity.verified_at = now
    audit.record(
        session,
        action="identity.linked",
        actor_type=actor_type,
        actor_id=actor_id,
        target_type="channel_identity",
        target_id=identity.conversation_id,
        details={"customer_id": customer_id, "previous_customer_id": previous, "method": method},
        now=now,
    )
    session.flush()
    return identity


def find_by_phone(session: Session, *, cipher: PiiCipher, phone: str) -> Customer | None:
    """The customer with this phone (any common spelling), via its keyed lookup hash."""
    return session.scalars(
        select(Customer).where(Customer.phone_lookup == cipher.lookup_hash(phone))
        .order_by(Customer.id).limit(1)
    ).first()


def create_customer(
    session: Session, *, cipher: PiiCipher, name: str, phone: str | None = None,
    address: str | None = None, language: str = "zh", segment: Segment = Segment.REGULAR,
    now: datetime | None = None,
) -> Customer:
    """A new customer with phone and address encrypted; a phone may belong to one customer."""
    name = (name or "").strip()
    if not name:
        raise ValidationError("a customer needs a name")
    phone_norm = normalize_phone(phone) if phone else None
    if phone_norm is not None and find_by_phone(session, cipher=cipher, phone=phone_norm):
        raise Conflict("a customer with this phone already exists")
    customer = Customer(
        name=name,
        language=normalize_language(language),
        segment=segment,
        phone_enc=cipher.encrypt(phone_norm, field="phone") if phone_norm else None,
        phone_lookup=cipher.lookup_hash(phone_norm) if phone_norm else None,
        address_enc=cipher.encrypt(address.strip(), field="address") if address else None,
        created_at=now or utcnow(),
    )
    session.add(customer)
    session.flush()
    return customer


def masked_phone(customer: Customer, *, cipher: PiiCipher) -> str | None:
    """'138****5678' for display; the full number never leaves this module."""
    if customer.phone_enc is None:
        return None
    return mask_phone(cipher.decrypt(customer.phone_enc, field="phone"))


def masked_address(customer: Customer, *, cipher: PiiCipher) -> str | None:
    """Region only, street hidden."""
    if customer.address_enc is None:
        return None
    return mask_address(cipher.decrypt(customer.address_enc, field="address"))
