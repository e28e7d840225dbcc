"""Outbox wake-ups: after a commit that queued rows, each conversation is published once;
a rollback publishes nothing and a Redis outage never fails the commit."""

from __future__ import annotations

import logging
import time

import pytest

from ticketing.conversations import answers, outbox, wakeups


@pytest.fixture
def listening(redis_client):
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("test:outbox")
    yield pubsub
    pubsub.close()


def _messages(pubsub, wait: float = 0.5) -> list[str]:
    found, deadline = [], time.monotonic() + wait
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.05)
        if message is not None:
            found.append(message["data"])
    return found


def _queue(session_factory, *conversations: str) -> None:
    with session_factory.begin() as s:
        for conversation in conversations:
            outbox.enqueue(s, customer_id=None, conversation_id=conversation,
                           kind="agent_reply", text="您好")


def test_each_conversation_is_published_once_after_commit(session_factory, redis_client,
                                                          listening) -> None:
    uninstall = wakeups.install(session_factory, redis_client, channel="test:outbox")
    try:
        _queue(session_factory, "widget:v-1", "telegram:42", "widget:v-1")
        assert sorted(_messages(listening)) == ["telegram:42", "widget:v-1"]

        with pytest.raises(RuntimeError):
            with session_factory.begin() as s:
                outbox.enqueue(s, customer_id=None, conversation_id="widget:v-2",
                               kind="bot", text="x")
                s.flush()
                raise RuntimeError("rolled back")
        with session_factory.begin() as s:
            outbox.pending(s, conversation_id="widget:v-1")  # reads only
        assert _messages(listening) == []
        with session_factory.begin() as s:  # born leased: its gateway is sending it already
            answers.queue(s, conversation_id="widget:v-4", answers=[("答", {})],
                          language="zh", lease_seconds=30)
        assert _messages(listening) == []
    finally:
        uninstall()
    _queue(session_factory, "widget:v-3")
    assert _messages(listening) == []  # uninstalled


def test_redis_down_never_fails_the_commit(session_factory, caplog) -> None:
    import redis

    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    uninstall = wakeups.install(session_factory, dead)
    try:
        with caplog.at_level(logging.WARNING, logger="ticketing.conversations.wakeups"):
            _queue(session_factory, "widget:v-1")
    finally:
        uninstall()
    assert "not published" in caplog.text
    with session_factory() as s:
        assert len(outbox.pending(s, conversation_id="widget:v-1")) == 1
