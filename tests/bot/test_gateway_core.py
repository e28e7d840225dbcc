"""The gateway's routing and delivery rules, on SQLite and PostgreSQL, with a scripted assistant.

The assistant here is a test double (the live tests use the real Rasa); everything else is
real: the gateway, its delivery loop, the ticketing services and the database.
"""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from bot import widget_token
from bot.gateway.core import Gateway
from bot.gateway.messages import Incoming, Outcome, rasa_rows
from bot.gateway.delivery import Delivery
from bot.gateway.metrics import GatewayMetrics
from bot.gateway.ratelimit import RateLimiter
from bot.gateway.replay import replay_unhandled
from bot.gateway.settings import GatewaySettings
from bot.gateway.telegram import callback_data, keyboard
from ticketing.conversations import answers, outbox
from ticketing.shop import customers
from ticketing.desk import handoffs, ownership, tickets
from ticketing.conversations.chat_history import HIDDEN, Entry
from ticketing.core.clock import utcnow
from ticketing.core.errors import ConfigurationError
from ticketing.core.models import InboundMessage, OutboxMessage, Ticket, TicketMessage
from tests.conftest import TEST_KEY
from tests.ticketing.desk_setup import build_desk


class ScriptedRasa:
    """Answers "echo: <text>"; can be slow, down, or hand off."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.speakers: list[dict[str, Any]] = []  # what the gateway said of the speaker
        self.resumed: list[str] = []
        self.triggered: list[tuple[str, str, dict[str, Any]]] = []
        self.delay = 0.0
        self.jitter = 0.0
        self.down = False
        self.trigger_down = False

    async def send(self, sender: str, message: str, **speaker: Any) -> list[dict[str, Any]]:
        if self.down:
            raise httpx.ConnectError("connection refused")
        await asyncio.sleep(self.delay + random.random() * self.jitter)
        self.sent.append((sender, message))
        self.speakers.append(speaker)
        return [{"recipient_id": sender, "text": f"echo: {message}",
                 "buttons": [{"title": "好", "payload": "/affirm"}]}]

    async def resume(self, sender: str) -> None:
        if self.down:
            raise httpx.ConnectError("connection refused")
        self.resumed.append(sender)

    async def trigger(self, sender: str, intent: str,
                      entities: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        if self.down or self.trigger_down:
            raise httpx.ConnectError("connection refused")
        self.triggered.append((sender, intent, dict(entities or {})))
        return [{"text": "请为本次服务打分", "buttons": [
            {"title": str(n), "payload": f'/rate{{"csat_score": {n}}}'} for n in range(1, 6)]}]


class RecordingChannel:
    name = "widget"

    def __init__(self) -> None:
        self.delivered: list[tuple[str, Entry]] = []
        self.fail_next = 0

    async def deliver(self, external_id: str, entry: Entry) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("socket closed")
        self.delivered.append((external_id, entry))

    async def typing(self, external_id: str, on: bool) -> None:
        return None

    def texts(self, external_id: str) -> list[str]:
        return [e.text for who, e in self.delivered if who == external_id]


def build_rig(session_factory, rasa: Any = None, **settings: Any
              ) -> tuple[Gateway, Any, RecordingChannel]:
    """A gateway over ``session_factory`` with a fake Rasa and a recording widget channel."""
    rasa = rasa if rasa is not None else ScriptedRasa()
    gateway = Gateway(settings=GatewaySettings(**{"rate_limit": 100, **settings}),
                      session_factory=session_factory, rasa=rasa,
                      limiter=RateLimiter(limit=100, window=60), metrics=GatewayMetrics(),
                      pii_key=TEST_KEY)
    channel = RecordingChannel()
    gateway.register(channel)
    Delivery(gateway)
    return recorded_turns(gateway), rasa, channel


def recorded_turns(gateway: Gateway) -> Gateway:
    """The rig's turns end once their answers' delivery is recorded.

    Production records it beside the turn (``Delivery._record_aside``); each step here runs in
    its own ``asyncio.run``, which would cancel a record still under way when the step ends.
    """
    receive = gateway.receive

    async def receive_and_record(*args: Any, **kwargs: Any) -> Outcome:
        outcome = await receive(*args, **kwargs)
        await gateway.settle_deliveries(None)
        return outcome

    gateway.receive = receive_and_record  # type: ignore[method-assign]
    return gateway


@pytest.fixture
def rig(session_factory):
    return build_rig(session_factory, rasa_timeout=0.3)


def msg(text: str, key: str, visitor: str = "v-11111111", **kw: Any) -> Incoming:
    return Incoming(channel="widget", external_id=visitor, dedupe_key=f"{visitor}:{key}",
                    text=text, **kw)


def test_answers_are_delivered_in_order_and_duplicates_are_ignored(rig) -> None:
    gateway, rasa, channel = rig

    async def scenario() -> None:
        first = await gateway.receive(msg("你好", "m1"))
        again = await gateway.receive(msg("你好", "m1"))
        assert first.route == "rasa" and again.status == "duplicate"
    asyncio.run(scenario())
    assert rasa.sent == [("widget:v-11111111", "你好")]
    assert channel.texts("v-11111111") == ["echo: 你好"]
    assert channel.delivered[0][1].buttons == [{"title": "好", "payload": "/affirm"}]


def test_rasa_is_told_who_is_speaking(rig, make, session) -> None:
    """Verified or not and, for a message without words of its own, the stored language: the
    metadata Rasa's TurnFacts reads instead of an action call per turn (bot/nlu/speaker.py)."""
    gateway, rasa, _channel = rig
    customer = make.customer()
    customers.link_identity(session, channel="widget", external_id="v-verified",
                            customer_id=customer.id)
    session.commit()
    asyncio.run(gateway.receive(msg("where is my parcel", "m1")))
    asyncio.run(gateway.receive(msg("6012 3456 7890 1234", "m2")))
    asyncio.run(gateway.receive(msg("我的快递呢", "m3", visitor="v-verified")))
    assert rasa.speakers == [{"verified": False, "language": None},
                             {"verified": False, "language": "en"},
                             {"verified": True, "language": None}]


def test_one_conversation_in_order_many_in_parallel(rig) -> None:
    gateway, rasa, channel = rig
    rasa.jitter = 0.02

    async def scenario() -> None:
        await asyncio.gather(*(gateway.receive(msg(f"{v}-{n}", f"m{n}", visitor=f"v-0000000{v}"))
                               for n in range(8) for v in range(4)))
    asyncio.run(scenario())
    for v in range(4):
        assert channel.texts(f"v-0000000{v}") == [f"echo: {v}-{n}" for n in range(8)]


def test_slow_or_down_assistant_means_apology_ticket_and_handoff(rig, session_factory,
                                                                  make, session) -> None:
    build_desk(make)
    session.commit()
    gateway, rasa, channel = rig
    rasa.delay = 1.0  # over the 0.3 s budget

    async def scenario() -> None:
        slow = await gateway.receive(msg("我的包裹丢了", "m1"))
        assert slow.route == "fallback_ticket"
        rasa.delay, rasa.down = 0.0, True
        after = await gateway.receive(msg("快点处理", "m2"))
        assert after.route == "ticket"  # handed off: straight to the ticket, Rasa not asked
    asyncio.run(scenario())
    assert "T" in channel.texts("v-11111111")[0] and "抱歉" in channel.texts("v-11111111")[0]
    with session_factory() as s:
        ticket = handoffs.active_ticket(s, conversation_id="widget:v-11111111")
        bodies = [m.body for m in s.scalars(select(TicketMessage).where(
            TicketMessage.ticket_id == ticket.id))]
        routes = [m.route for m in s.scalars(select(InboundMessage).order_by(InboundMessage.id))]
    assert "我的包裹丢了" in bodies and "快点处理" in bodies
    assert routes == ["fallback_ticket", "ticket"]
    # never silence: the message into the handed-off conversation got a receipt
    receipt = channel.texts("v-11111111")[-1]
    assert receipt.startswith("收到") and ticket.number in receipt


def test_a_solved_ticket_hands_the_conversation_back_and_runs_the_survey(
        rig, session_factory, make, session) -> None:
    desk = build_desk(make)
    session.commit()
    gateway, rasa, channel = rig
    rasa.down = True
    asyncio.run(gateway.receive(msg("人呢", "m1")))
    rasa.down = False
    with session_factory.begin() as s:
        ticket = handoffs.active_ticket(s, conversation_id="widget:v-11111111")
        ownership.claim(s, ticket_id=ticket.id, agent_id=desk.l1.id)
        tickets.agent_reply(s, ticket_id=ticket.id, agent_id=desk.l1.id, body="我来处理")
        tickets.solve(s, ticket_id=ticket.id, agent_id=desk.l1.id, resolution="已解决")
        ticket_id, number = ticket.id, ticket.number

    asyncio.run(gateway.deliver_now("widget:v-11111111"))  # what the poller does
    texts = channel.texts("v-11111111")
    assert texts[1] == "我来处理" and number in texts[2] and texts[3] == "请为本次服务打分"
    assert rasa.resumed == ["widget:v-11111111"]
    assert rasa.triggered == [("widget:v-11111111", "EXTERNAL_csat_request",
                               {"ticket_number": number})]
    with session_factory() as s:
        assert handoffs.handed_off_ticket(s, conversation_id="widget:v-11111111") is None
        survey_row = s.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "csat_request")).one()
        assert survey_row.payload[HIDDEN] and survey_row.delivered_at is not None
    asyncio.run(gateway.receive(msg("5", "m2", payload='/rate{"csat_score": 5}')))
    assert rasa.sent[-1] == ("widget:v-11111111", '/rate{"csat_score": 5}')
    assert ticket_id


def test_survey_is_shown_plainly_when_the_assistant_cannot_run_it(
        rig, session_factory, make, session) -> None:
    desk = build_desk(make)
    customer = make.customer()
    session.commit()
    gateway, rasa, channel = rig
    rasa.trigger_down = True
    with session_factory.begin() as s:
        ticket = tickets.create_ticket(s, customer_id=customer.id, subject="退款", channel="widget",
                                       conversation_id="widget:v-22222222")
        ownership.claim(s, ticket_id=ticket.id, agent_id=desk.l1.id)
        tickets.solve(s, ticket_id=ticket.id, agent_id=desk.l1.id, resolution="已退款")
    asyncio.run(gateway.deliver_now("widget:v-22222222"))
    delivered = [e for who, e in channel.delivered if who == "v-22222222"]
    assert [e.kind for e in delivered] == ["notice", "csat_request"]
    assert len(delivered[1].buttons) == 5


def test_a_failing_delivery_holds_back_later_messages_until_it_lands(
        rig, session_factory) -> None:
    gateway, rasa, channel = rig
    channel.fail_next = 2
    with session_factory.begin() as s:
        for text in ("一", "二", "三"):
            outbox.enqueue(s, customer_id=None, conversation_id="widget:v-33333333", kind="bot",
                           text=text)

    def due_again() -> None:
        with session_factory.begin() as s:
            for row in s.scalars(select(OutboxMessage).where(OutboxMessage.delivered_at.is_(None))):
                row.next_attempt_at = utcnow() - timedelta(seconds=1)

    for _attempt in range(3):
        asyncio.run(gateway.deliver_now("widget:v-33333333"))
        due_again()
    assert channel.texts("v-33333333") == ["一", "二", "三"]
    with session_factory() as s:
        first = s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).first()
        assert first.attempts == 2 and first.delivered_at is not None


def test_too_long_and_rate_limited_messages(session_factory) -> None:
    gateway = Gateway(settings=GatewaySettings(rate_limit=2), session_factory=session_factory,
                      rasa=ScriptedRasa(), limiter=RateLimiter(limit=2, window=60),  # type: ignore[arg-type]
                      metrics=GatewayMetrics(), pii_key=TEST_KEY)
    gateway.register(RecordingChannel())
    Delivery(gateway)

    async def scenario() -> list[str]:
        too_long = await gateway.receive(msg("x" * 4001, "long"))
        assert too_long.status == "too_long" and "4000" in (too_long.reply or "")
        outcomes = [await gateway.receive(msg(f"hello {n}", f"m{n}")) for n in range(4)]
        return [o.status for o in outcomes]
    assert asyncio.run(scenario()) == ["routed", "routed", "rate_limited", "rate_limited"]
    with session_factory() as s:
        assert len(s.scalars(select(InboundMessage)).all()) == 4  # the long one is not stored


def test_rasa_rows_drop_the_handoff_marker_and_keep_buttons() -> None:
    rows = rasa_rows([{"text": "好的"}, {"custom": {"kefu": {"handoff": True}}},
                      {"text": "", "buttons": [{"title": "是", "payload": "/affirm"}]},
                      {"text": "看图", "image": "https://shop.example/a.png"}])
    assert rows == [("好的", {}), ("是", {"buttons": [{"title": "是", "payload": "/affirm"}]}),
                    ("看图\nhttps://shop.example/a.png", {})]


def test_rate_limiter_counts_in_redis_and_survives_its_loss(redis_client) -> None:
    import redis.asyncio as aredis

    from tests.conftest import REDIS_URL

    async def scenario() -> None:
        client = aredis.Redis.from_url(REDIS_URL)
        limiter = RateLimiter(limit=2, window=60, redis=client)
        verdicts = [await limiter.check("widget:v-1") for _ in range(4)]
        assert [v.allowed for v in verdicts] == [True, True, False, False]
        assert [v.first_refusal for v in verdicts] == [False, False, True, False]
        await client.aclose()
        broken = RateLimiter(limit=2, window=60,
                             redis=aredis.Redis.from_url("redis://127.0.0.1:1/0",
                                                         socket_connect_timeout=0.2))
        assert (await broken.check("widget:v-1")).allowed  # falls back to memory
    asyncio.run(scenario())
    assert redis_client.keys("kefu:rate:*")


def test_widget_tokens() -> None:
    token = widget_token.sign(7, secret="s3cret", ttl=60)
    assert widget_token.verify(token, secret="s3cret") == 7
    assert widget_token.verify(token, secret="other") is None
    assert widget_token.verify(token.replace("7.", "8.", 1), secret="s3cret") is None
    expired = widget_token.sign(7, secret="s3cret", expires_at=1000)
    assert widget_token.verify(expired, secret="s3cret") is None
    for bad in (None, "", "7", "a.b.c", "7.x.y", "7." * 200):
        assert widget_token.verify(bad, secret="s3cret") is None
    assert widget_token.verify(token, secret=None) is None


def test_settings_refuse_a_webhook_without_a_secret() -> None:
    with pytest.raises(ConfigurationError):
        GatewaySettings.from_environ({"KEFU_TELEGRAM_WEBHOOK_URL": "https://x/telegram/webhook"})
    with pytest.raises(ConfigurationError):
        GatewaySettings.from_environ({"KEFU_TELEGRAM_WEBHOOK_URL": "https://x",
                                      "KEFU_TELEGRAM_WEBHOOK_SECRET": "has space"})
    with pytest.raises(ConfigurationError):
        GatewaySettings.from_environ({"KEFU_RASA_TIMEOUT": "soon"})
    settings = GatewaySettings.from_environ({"KEFU_RASA_PORT": "5999"})
    assert settings.rasa_url == "http://127.0.0.1:5999" and settings.rate_limit == 20


def test_long_button_payloads_are_hashed_for_telegram() -> None:
    long = '/choose_product{"product": "无线降噪蓝牙耳机旗舰版二代黑色限量款"}'
    assert len(long.encode()) > 64
    assert callback_data("/affirm") == "/affirm"
    hashed = callback_data(long)
    assert hashed.startswith("h:") and len(hashed.encode()) <= 64
    rows = keyboard([{"title": str(n), "payload": f"/rate{n}"} for n in range(1, 6)]).inline_keyboard
    assert len(rows) == 1 and len(rows[0]) == 5
    rows = keyboard([{"title": "11月20日 不锈钢保温杯", "payload": long}]).inline_keyboard
    assert rows[0][0].callback_data == hashed


def test_messages_stored_but_never_routed_are_answered_after_a_restart(rig, session_factory) -> None:
    gateway, rasa, channel = rig
    from ticketing.conversations import inbound
    with session_factory.begin() as s:
        inbound.record(s, channel="widget", conversation_id="widget:v-44444444",
                       dedupe_key="v-44444444:m1", text="还在吗",
                       now=utcnow() - timedelta(minutes=1))
    assert asyncio.run(replay_unhandled(gateway)) == 1
    assert rasa.sent == [("widget:v-44444444", "还在吗")]
    assert channel.texts("v-44444444") == ["echo: 还在吗"]
    assert asyncio.run(replay_unhandled(gateway)) == 0


def _actions_without_database(rasa: ScriptedRasa) -> None:
    """Rasa answers the way actions/failures.py does when even the ticket could not be opened."""
    async def send(sender: str, message: str, **speaker: Any) -> list[dict[str, Any]]:
        rasa.sent.append((sender, message))
        return [{"text": "抱歉，系统刚才出了点问题，没能完成您的请求。"},
                {"text": "我们的系统暂时不可用，请几分钟后再试一次；您的消息我们已记录。"},
                {"custom": handoffs.unavailable_marker(failed_action="action_track_order",
                                                       language="zh")}]
    rasa.send = send  # type: ignore[method-assign]


def test_actions_without_a_database_mean_a_ticket_from_the_gateway(
        rig, session_factory, make, session) -> None:
    build_desk(make)
    session.commit()
    gateway, rasa, channel = rig
    _actions_without_database(rasa)
    outcome = asyncio.run(gateway.receive(msg("我的包裹到哪了", "m1")))
    assert outcome.route == "fallback_ticket"
    [answer] = channel.texts("v-11111111")  # not "try again later": a ticket number
    assert "工单号" in answer and "再试" not in answer
    assert gateway.metrics.registry.get_sample_value(
        "kefu_gateway_errors_total", {"kind": "actions_backend_unavailable"}) == 1
    with session_factory() as s:
        ticket = handoffs.active_ticket(s, conversation_id="widget:v-11111111")
        assert ticket.number in answer
        bodies = [m.body for m in s.scalars(select(TicketMessage).where(
            TicketMessage.ticket_id == ticket.id))]
    assert "我的包裹到哪了" in bodies
    asyncio.run(gateway.receive(msg("快点", "m2")))
    assert len(rasa.sent) == 1  # handed off: the next message goes to the ticket


def test_when_the_gateway_cannot_open_the_ticket_either_the_apology_stands(
        rig, session_factory, monkeypatch) -> None:
    gateway, rasa, channel = rig
    _actions_without_database(rasa)

    def broken(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("tickets table locked")

    monkeypatch.setattr(handoffs, "open_for_conversation", broken)
    outcome = asyncio.run(gateway.receive(msg("我的包裹到哪了", "m1")))
    assert outcome.route == "rasa"
    assert channel.texts("v-11111111") == [
        "抱歉，系统刚才出了点问题，没能完成您的请求。",
        "我们的系统暂时不可用，请几分钟后再试一次；您的消息我们已记录。"]
    with session_factory() as s:
        assert handoffs.handed_off_ticket(s, conversation_id="widget:v-11111111") is None


def test_a_turn_cut_short_by_the_database_after_storing_ends_and_is_replayed_once(
        rig, session_factory, monkeypatch) -> None:
    """The fault suite's PostgreSQL outage: connections dropped between storing a message and
    queueing its answer. The turn must still end (no exception out of ``receive``: the widget
    sends its ``handled`` frame) and the replay answers the message once, later."""
    from sqlalchemy.exc import OperationalError

    gateway, rasa, channel = rig
    real_queue = answers.queue
    failures = [1]

    def dropped(*args: Any, **kwargs: Any) -> Any:
        if failures[0]:
            failures[0] -= 1
            raise OperationalError("INSERT INTO outbox ...", {},
                                   Exception("terminating connection due to administrator command"))
        return real_queue(*args, **kwargs)

    monkeypatch.setattr(answers, "queue", dropped)
    outcome = asyncio.run(gateway.receive(msg("还在吗", "m1")))
    assert outcome.status == "deferred" and outcome.inbound_id is not None
    assert channel.texts("v-11111111") == []
    assert gateway.metrics.registry.get_sample_value(
        "kefu_gateway_errors_total", {"kind": "turn_interrupted"}) == 1
    with session_factory() as s:
        assert s.get(InboundMessage, outcome.inbound_id).handled_at is None
    assert asyncio.run(replay_unhandled(gateway, older_than=0)) == 1
    assert asyncio.run(replay_unhandled(gateway, older_than=0)) == 0
    assert channel.texts("v-11111111") == ["echo: 还在吗"]
    with session_factory() as s:
        row = s.scalars(select(OutboxMessage).where(
            OutboxMessage.conversation_id == "widget:v-11111111")).one()
        assert row.payload["reply_to"] == outcome.inbound_id  # the answer names its question



def test_a_delivery_the_database_cannot_record_at_once_is_recorded_not_sent_again(
        rig, session_factory, monkeypatch) -> None:
    """The fault suite's PostgreSQL outage: the answer reached the page, then recording it
    failed. Retried until the database is back, the row is not sent a second time when its
    lease runs out (a Telegram chat would show it twice)."""
    from sqlalchemy.exc import OperationalError

    from bot.gateway import delivery as delivery_module

    gateway, rasa, channel = rig
    real_mark = outbox.mark_delivered_many
    failures = [2]

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if failures[0]:
            failures[0] -= 1
            raise OperationalError("UPDATE outbox ...", {},
                                   Exception("terminating connection due to administrator command"))
        return real_mark(*args, **kwargs)

    monkeypatch.setattr(outbox, "mark_delivered_many", flaky)
    monkeypatch.setattr(delivery_module, "RECORD_FIRST_PAUSE", 0.01)
    outcome = asyncio.run(gateway.receive(msg("还在吗", "m1")))
    assert outcome.route == "rasa" and failures == [0]
    assert channel.texts("v-11111111") == ["echo: 还在吗"]
    with session_factory() as s:
        row = s.scalars(select(OutboxMessage).where(
            OutboxMessage.conversation_id == "widget:v-11111111")).one()
        assert row.delivered_at is not None
        s.execute(update(OutboxMessage).values(  # as if the lease ran out
            next_attempt_at=utcnow() - timedelta(seconds=1)))
        s.commit()
    asyncio.run(Delivery(gateway).poll_once())
    assert channel.texts("v-11111111") == ["echo: 还在吗"]


def test_a_turn_ends_when_its_answers_are_sent_and_their_record_follows(
        session_factory, monkeypatch) -> None:
    """The record of a turn's delivery runs beside the turn: the customer's turn (and the
    conversation's next message) does not wait for it; nothing sends the rows again
    meanwhile (still leased here); the conversation's next delivery waits for it instead of
    finding rows queued behind held back (the e2e receipt after a handoff arrived only at the
    next poll, after the turn's ``handled``); a stopping gateway waits for it too."""
    import threading

    gateway = Gateway(settings=GatewaySettings(rate_limit=100, rasa_timeout=2),
                      session_factory=session_factory, rasa=ScriptedRasa(),  # type: ignore[arg-type]
                      limiter=RateLimiter(limit=100, window=60), metrics=GatewayMetrics(),
                      pii_key=TEST_KEY)
    channel = RecordingChannel()
    gateway.register(channel)
    delivery = Delivery(gateway)
    real_mark = outbox.mark_delivered_many
    release = threading.Event()

    def slow(*args: Any, **kwargs: Any) -> Any:
        release.wait(10)
        return real_mark(*args, **kwargs)

    monkeypatch.setattr(outbox, "mark_delivered_many", slow)

    def undelivered() -> int:
        with session_factory() as s:
            return s.scalar(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.delivered_at.is_(None))) or 0

    async def scenario() -> tuple[list[int], int]:
        outcome = await gateway.receive(msg("还在吗", "m1"))
        assert outcome.route == "rasa" and channel.texts("v-11111111") == ["echo: 还在吗"]
        pending = [undelivered()]
        assert await delivery.poll_once() == 0  # leased to the record under way: not due
        with session_factory.begin() as s:  # queued behind it (a ticket's receipt, say)
            outbox.enqueue(s, customer_id=None, conversation_id="widget:v-11111111",
                           kind="notice", text="工单已更新")
        behind = asyncio.create_task(gateway.deliver_now("widget:v-11111111"))
        await asyncio.sleep(0.05)
        assert channel.texts("v-11111111") == ["echo: 还在吗"]  # waits for the record
        release.set()
        await behind  # then goes out in the same delivery, not at the next poll
        assert channel.texts("v-11111111") == ["echo: 还在吗", "工单已更新"]
        await gateway.settle_deliveries(5)
        return pending, undelivered()

    pending, after = asyncio.run(scenario())
    assert pending == [1] and after == 0
    assert channel.texts("v-11111111") == ["echo: 还在吗", "工单已更新"]  # each sent once


def test_a_message_routed_twice_is_answered_once(rig, session_factory) -> None:
    """A turn that ran without its lock (Redis away a moment) and a replay elsewhere both
    route one message: the first transaction to mark it handled answers; the other's
    transaction (its answer, a fallback ticket) is rolled back."""
    gateway, rasa, channel = rig
    first = asyncio.run(gateway.receive(msg("还在吗", "m1")))
    assert first.route == "rasa"
    again = asyncio.run(gateway.route(msg("还在吗", "m1"), "widget:v-11111111", first.inbound_id,
                                      "zh", None))
    assert again.route == "answered_elsewhere"
    rasa.down = True  # the second one's assistant fails: no second apology and ticket either
    failed = asyncio.run(gateway.route(msg("还在吗", "m1"), "widget:v-11111111",
                                       first.inbound_id, "zh", None))
    assert failed.route == "answered_elsewhere"
    assert channel.texts("v-11111111") == ["echo: 还在吗"]
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 1
        assert s.scalar(select(func.count()).select_from(Ticket)) == 0
    assert gateway.metrics.registry.get_sample_value(
        "kefu_gateway_errors_total", {"kind": "answered_elsewhere"}) == 2
