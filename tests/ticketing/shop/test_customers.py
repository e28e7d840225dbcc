"""Channel identities, linking (audited), phone lookup and masked personal data."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ticketing.shop import customers
from ticketing.core.errors import Conflict, CustomerNotFound, ValidationError
from ticketing.core.models import AuditLog, ChannelIdentity, Segment


def test_identity_for_creates_once(session) -> None:
    first = customers.identity_for(session, channel="telegram", external_id="12345", language="zh-CN")
    again = customers.identity_for(session, channel="telegram", external_id="12345")
    assert first is again
    assert first.conversation_id == "telegram:12345" and first.language == "zh"
    assert first.customer_id is None
    assert session.scalar(select(ChannelIdentity.id).where(
        ChannelIdentity.conversation_id == "telegram:12345")) == first.id


def test_identity_for_rejects_bad_input(session) -> None:
    for channel, external_id in (("", "1"), ("widget", " "), ("a:b", "1")):
        with pytest.raises(ValidationError):
            customers.identity_for(session, channel=channel, external_id=external_id)


def test_link_identity_is_audited(make, session) -> None:
    alice = make.customer()
    identity = customers.link_identity(session, channel="telegram", external_id="777",
                                       customer_id=alice.id, method="phone")
    assert identity.customer_id == alice.id and identity.verified_at is not None
    assert customers.customer_for_conversation(session, conversation_id="telegram:777") is alice
    entry = session.scalars(select(AuditLog).where(AuditLog.action == "identity.linked")).one()
    assert entry.target_id == "telegram:777"
    assert entry.details["customer_id"] == alice.id and entry.details["method"] == "phone"


def test_relinking_records_previous_customer_and_same_link_is_a_no_op(make, session) -> None:
    alice, bob = make.customer(), make.customer()
    customers.link_identity(session, channel="widget", external_id="v1", customer_id=alice.id)
    customers.link_identity(session, channel="widget", external_id="v1", customer_id=alice.id)
    customers.link_identity(session, channel="widget", external_id="v1", customer_id=bob.id)
    entries = session.scalars(select(AuditLog).order_by(AuditLog.id)).all()
    assert [e.details["previous_customer_id"] for e in entries] == [None, alice.id]


def test_link_to_unknown_customer_writes_nothing(session) -> None:
    with pytest.raises(CustomerNotFound):
        customers.link_identity(session, channel="widget", external_id="v2", customer_id=999)
    assert session.scalars(select(ChannelIdentity)).all() == []
    assert session.scalars(select(AuditLog)).all() == []


def test_anonymous_conversation_has_no_customer(session) -> None:
    customers.identity_for(session, channel="widget", external_id="anon")
    assert customers.customer_for_conversation(session, conversation_id="widget:anon") is None
    assert customers.customer_for_conversation(session, conversation_id="widget:nobody") is None


def test_find_by_phone_matches_any_spelling(make, session, cipher) -> None:
    alice = make.customer(phone="13812345678")
    make.customer(phone="13900000000")
    for spelling in ("13812345678", "+86 138-1234-5678", "0086 138 1234 5678"):
        assert customers.find_by_phone(session, cipher=cipher, phone=spelling) is alice
    assert customers.find_by_phone(session, cipher=cipher, phone="13700000000") is None
    with pytest.raises(ValidationError):
        customers.find_by_phone(session, cipher=cipher, phone="not a phone")


def test_create_customer_encrypts_and_masks(session, cipher) -> None:
    c = customers.create_customer(session, cipher=cipher, name="王芳", phone="+86 139 8765 4321",
                                  address="北京市朝阳区建国路88号3栋1201室", segment=Segment.VIP)
    assert b"13987654321" not in c.phone_enc and "北京".encode() not in c.address_enc
    assert customers.masked_phone(c, cipher=cipher) == "139****4321"
    assert customers.masked_address(c, cipher=cipher) == "北京市朝阳区******"
    assert customers.find_by_phone(session, cipher=cipher, phone="13987654321") is c


def test_create_customer_refuses_duplicate_phone_and_blank_name(session, cipher) -> None:
    customers.create_customer(session, cipher=cipher, name="A", phone="13800000001")
    with pytest.raises(Conflict):
        customers.create_customer(session, cipher=cipher, name="B", phone="138 0000 0001")
    with pytest.raises(ValidationError):
        customers.create_customer(session, cipher=cipher, name=" ")


def test_customer_without_pii_masks_to_none(session, cipher) -> None:
    c = customers.create_customer(session, cipher=cipher, name="Visitor", language="en-GB")
    assert c.language == "en"
    assert customers.masked_phone(c, cipher=cipher) is None
    assert customers.masked_address(c, cipher=cipher) is None


def test_guest_customer_carries_tickets_but_is_not_verified(session) -> None:
    guest = customers.guest_customer(session, conversation_id="widget:visitor-9", language="en")
    again = customers.guest_customer(session, conversation_id="widget:visitor-9")
    assert again.id == guest.id and guest.language == "en"
    identity = customers.identity_by_conversation(session, conversation_id="widget:visitor-9")
    assert identity.customer_id == guest.id and identity.verified_at is None
    assert customers.customer_for_conversation(session, conversation_id="widget:visitor-9") is None


def test_guest_customer_of_a_verified_identity_is_the_real_customer(make, session) -> None:
    alice = make.customer()
    customers.link_identity(session, channel="telegram", external_id="55", customer_id=alice.id)
    assert customers.guest_customer(session, conversation_id="telegram:55").id == alice.id


def test_a_guest_who_verifies_becomes_the_real_customer(make, session) -> None:
    alice = make.customer()
    customers.guest_customer(session, conversation_id="telegram:56")
    customers.link_identity(session, channel="telegram", external_id="56", customer_id=alice.id)
    assert customers.customer_for_conversation(session, conversation_id="telegram:56") is alice


def test_split_conversation_id() -> None:
    assert customers.split_conversation_id("telegram:123") == ("telegram", "123")
    assert customers.split_conversation_id("widget:a:b") == ("widget", "a:b")
    assert customers.split_conversation_id("default") == ("widget", "default")


def test_the_speaker_of_a_turn_is_read_in_one_statement_or_created(session, make) -> None:
    fresh = customers.speaker(session, channel="Widget", external_id=" v-1 ", language="en-US")
    assert fresh == customers.Speaker("widget:v-1", "en", False, None)  # created, like identity_for
    customer = make.customer()
    customers.link_identity(session, channel="widget", external_id="v-1",
                            customer_id=customer.id, method="widget_token")
    customers.set_language(session, channel="widget", external_id="v-1", language="zh-CN")
    session.expire_all()
    assert customers.speaker(session, channel="widget", external_id="v-1") == customers.Speaker(
        "widget:v-1", "zh", True, None)
    assert session.scalar(select(ChannelIdentity.language).where(
        ChannelIdentity.conversation_id == "widget:v-1")) == "zh"
    with pytest.raises(ValidationError):
        customers.speaker(session, channel="a:b", external_id="1")
    assert len(session.scalars(select(ChannelIdentity)).all()) == 1
