"""action_identify_customer: the language of each message, verified from the database, the
fallback counter, and a database outage that must not break the turn."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import select

from actions import runtime
from actions.identity import ActionIdentifyCustomer, language_of_text
from ticketing.shop import customers
from ticketing.core.models import ChannelIdentity
from tests.actions.harness import run, tracker


def identify(text, *, intent="greet", slots=None, sender_id="telegram:42", **kwargs):
    state = tracker(sender_id=sender_id, slots=slots, text=text, intent=intent, **kwargs)
    return run(ActionIdentifyCustomer(), state)


@pytest.mark.parametrize(("text", "language"), [
    ("你好", "zh"),
    ("where is my order", "en"),
    ("我的order还没到", "zh"),  # any ideograph makes it Chinese
    ("退款 refund 多久到账", "zh"),
    ("iphone13 case 有货吗", "zh"),
    ("hi客服", "zh"),
    ("2026 1125 0000 0123 4567", None),
    ("#6012345678901234567", None),
    ("👍👍", None),
    ("/affirm", None),
    ("", None),
    (None, None),
])
def test_language_of_text(text, language) -> None:
    assert language_of_text(text) == language


def test_each_message_sets_its_own_language(session, action_backend) -> None:
    english = identify("where is my parcel", intent="track_order", slots={"language": "zh"})
    assert english.slots()["language"] == "en"
    chinese = identify("我的快递到哪了", intent="track_order", slots={"language": "en"})
    assert chinese.slots()["language"] == "zh"
    mixed = identify("我的order还没到", intent="track_order", slots={"language": "en"})
    assert mixed.slots()["language"] == "zh"


def test_a_message_without_words_keeps_the_current_language(session, action_backend) -> None:
    for neutral in ("2026 1125 0000 0123 4567", "👍", '/rate{"csat_score": 5}'):
        result = identify(neutral, intent="track_order", slots={"language": "en"})
        assert "language" not in result.slots()


def test_first_neutral_message_takes_the_stored_language(make, session, action_backend) -> None:
    customers.identity_for(session, channel="telegram", external_id="42", language="en")
    session.commit()
    result = identify("6012 3456 7890 1234", intent="track_order", slots={"language": None})
    assert result.slots()["language"] == "en"
    default = identify("6012 3456 7890 1234", intent="track_order", slots={"language": None},
                       sender_id="widget:new-visitor")
    assert default.slots()["language"] == "zh"


def test_detected_language_is_remembered_for_outbox_messages(session, action_backend) -> None:
    customers.identity_for(session, channel="telegram", external_id="42", language="zh")
    session.commit()
    identify("thanks a lot", intent="thank", slots={"language": "zh"})
    session.expire_all()
    identity = session.scalars(select(ChannelIdentity)).one()
    assert identity.language == "en"


def test_verified_comes_from_the_database(make, session, action_backend) -> None:
    alice = make.customer()
    customers.link_identity(session, channel="telegram", external_id="42", customer_id=alice.id)
    customers.guest_customer(session, conversation_id="widget:guest-1")
    session.commit()
    assert identify("你好", slots={"verified": False}).slots()["verified"] is True
    assert "verified" not in identify("你好", slots={"verified": True}).slots()  # unchanged
    guest = identify("你好", slots={"verified": None}, sender_id="widget:guest-1")
    assert guest.slots()["verified"] is False  # a guest record owns tickets, not orders
    stranger = identify("你好", slots={"verified": True}, sender_id="widget:someone-else")
    assert stranger.slots()["verified"] is False  # a stale slot never outlives the database


def test_fallback_count_resets_on_an_understood_message(session, action_backend) -> None:
    understood = identify("where is my order", intent="track_order", slots={"fallback_count": 1.0})
    assert understood.slots()["fallback_count"] == 0.0
    missed = identify("asdf qwer", intent="nlu_fallback", slots={"fallback_count": 1.0})
    assert "fallback_count" not in missed.slots()
    already_zero = identify("hello", intent="greet", slots={"fallback_count": 0.0})
    assert "fallback_count" not in already_zero.slots()


class _BrokenBackend(runtime.Backend):
    @contextmanager
    def unit_of_work(self):
        raise ConnectionError("database is down")
        yield  # pragma: no cover


def test_database_down_keeps_what_was_known(cipher) -> None:
    runtime.configure(_BrokenBackend(None, cipher))  # type: ignore[arg-type]
    try:
        result = identify("where is my order", intent="track_order",
                          slots={"language": "zh", "verified": True, "fallback_count": 1.0})
    finally:
        runtime.configure(None)
    assert result.messages == []
    assert result.slots() == {"language": "en", "fallback_count": 0.0}  # verified untouched


def test_an_external_intent_keeps_the_language(session, action_backend) -> None:
    result = identify("EXTERNAL: EXTERNAL_csat_request", intent="EXTERNAL_csat_request",
                      slots={"language": "zh"},
                      entities=[{"entity": "ticket_number", "value": "T20261125000001"}])
    assert "language" not in result.slots()


def test_a_product_name_does_not_decide_the_language(session, action_backend) -> None:
    """A long English product name in a short Chinese question: the name is what NLU found,
    the rest of the sentence is Chinese (without the entity, five Latin words outweigh 有吗)."""
    text = "Smart Watch Ultra Pro Max 有吗"
    assert language_of_text(text) == "en"
    entities = [{"entity": "product", "start": 0, "end": 25, "value": "smart watch ultra"}]
    state = tracker(sender_id="telegram:42", slots={"language": "en"}, text=text,
                    intent="ask_stock", entities=entities)
    assert run(ActionIdentifyCustomer(), state).slots()["language"] == "zh"
