"""Agents' notifications (ticketing.desk.notifications)."""

from __future__ import annotations

import pytest

from ticketing.core import errors
from ticketing.desk import notifications
from ticketing.core.i18n import Text
from tests.ticketing.desk_setup import NOW, snapshot

HELLO = Text(zh="工单 {number} 有新消息", en="Ticket {number} has a new message")


def test_notify_stores_both_languages_filled_in(session, make) -> None:
    agent = make.agent()
    note = notifications.notify(session, agent_id=agent.id, kind="customer_message", text=HELLO,
                                values={"number": "T1"}, now=NOW)
    assert (note.text_zh, note.text_en) == ("工单 T1 有新消息", "Ticket T1 has a new message")
    assert note.created_at == NOW and note.read_at is None


def test_unread_newest_first_and_mark_read_is_idempotent(session, make) -> None:
    agent, other = make.agent(), make.agent()
    first = notifications.notify(session, agent_id=agent.id, kind="a", text=HELLO,
                                 values={"number": "1"}, now=NOW)
    second = notifications.notify(session, agent_id=agent.id, kind="b", text=HELLO,
                                  values={"number": "2"}, now=NOW)
    notifications.notify(session, agent_id=other.id, kind="c", text=HELLO, values={"number": "3"},
                         now=NOW)
    assert [n.id for n in notifications.unread(session, agent_id=agent.id)] == [second.id, first.id]
    notifications.mark_read(session, notification_id=first.id, agent_id=agent.id, now=NOW)
    notifications.mark_read(session, notification_id=first.id, agent_id=agent.id, now=None)
    assert first.read_at == NOW
    assert [n.id for n in notifications.unread(session, agent_id=agent.id)] == [second.id]


def test_refusals_write_nothing(session, make) -> None:
    agent, other = make.agent(), make.agent()
    note = notifications.notify(session, agent_id=agent.id, kind="a", text=HELLO,
                                values={"number": "1"}, now=NOW)
    before = snapshot(session)
    with pytest.raises(errors.AgentNotFound):
        notifications.notify(session, agent_id=999999, kind="a", text=HELLO, values={"number": 1})
    with pytest.raises(errors.ValidationError):
        notifications.notify(session, agent_id=agent.id, kind="", text=HELLO, values={"number": 1})
    with pytest.raises(errors.PermissionDenied):
        notifications.mark_read(session, notification_id=note.id, agent_id=other.id)
    with pytest.raises(errors.NotFound):
        notifications.mark_read(session, notification_id=999999, agent_id=agent.id)
    assert snapshot(session) == before
    assert note.read_at is None
