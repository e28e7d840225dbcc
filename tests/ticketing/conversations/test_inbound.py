"""The inbound log: stored once per channel message id, routed once, recoverable."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from ticketing.conversations import inbound
from ticketing.core import errors
from tests.ticketing.desk_setup import NOW


def test_a_redelivered_message_is_stored_once(session) -> None:
    row, created = inbound.record(session, channel="telegram", conversation_id="telegram:1",
                                  dedupe_key="u100", text="你好", now=NOW)
    again, created_again = inbound.record(session, channel="telegram",
                                          conversation_id="telegram:1", dedupe_key="u100",
                                          text="你好", now=NOW)
    assert created and not created_again and again.id == row.id
    other, created_other = inbound.record(session, channel="widget", conversation_id="widget:v-1",
                                          dedupe_key="u100", text="hi", now=NOW)
    assert created_other and other.id != row.id  # keys are per channel
    with pytest.raises(IntegrityError):  # inserted without looking: the caller looks again
        inbound.record(session, channel="telegram", conversation_id="telegram:1",
                       dedupe_key="u100", text="你好", now=NOW, assume_new=True)


def test_routing_is_recorded_once_and_unhandled_rows_are_found(session) -> None:
    a, _ = inbound.record(session, channel="widget", conversation_id="widget:v-1",
                          dedupe_key="m-1", text="a", now=NOW)
    b, _ = inbound.record(session, channel="widget", conversation_id="widget:v-1",
                          dedupe_key="m-2", text="b", now=NOW)
    inbound.mark_handled(session, message_id=a.id, route="rasa", now=NOW)
    inbound.mark_handled(session, message_id=a.id, route="ticket", now=NOW)
    assert a.route == "rasa"
    assert inbound.unhandled(session, received_before=NOW + timedelta(seconds=1)) == [b]
    assert inbound.unhandled(session, received_before=NOW) == []


@pytest.mark.parametrize("kwargs", [{"dedupe_key": ""}, {"dedupe_key": "x" * 129},
                                    {"conversation_id": ""}])
def test_bad_input_is_refused(session, kwargs) -> None:
    args = {"channel": "widget", "conversation_id": "widget:v-1", "dedupe_key": "k", "text": "t"}
    with pytest.raises(errors.ValidationError):
        inbound.record(session, **{**args, **kwargs})
    with pytest.raises(errors.ValidationError):
        inbound.mark_handled(session, message_id=1, route="nowhere")


def test_overlong_text_is_cut_to_the_limit(session) -> None:
    row, _ = inbound.record(session, channel="widget", conversation_id="widget:v-1",
                            dedupe_key="long", text="字" * 5000, now=NOW)
    assert len(row.text) == inbound.MAX_TEXT
