"""The gateway end to end over the widget WebSocket: real Rasa, actions, database, gateway process.

Covers identity (signed, forged, anonymous), buttons, history after a reconnect, limits,
handoff to a person and back with CSAT, 20 concurrent conversations with every message
counted, and the faults: Redis flushed, Rasa stopped mid-conversation.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from bot import widget_token
from tests.assistant.live import LiveAssistant
from tests.bot.gateway_harness import (
    Desk,
    GatewayProcess,
    WidgetClient,
    demo_customer,
    metric,
    texts_of,
)

REDIS_URL = os.environ.get("KEFU_TEST_REDIS_URL")


@pytest.fixture(scope="module")
def gateway(live_stack: LiveAssistant) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(live_stack, extra_env={"KEFU_RATE_LIMIT_PER_MINUTE": "12"},
                        name="gateway-live").start()
    yield gw
    gw.stop()


def signed(live: LiveAssistant) -> tuple[str, int, str]:
    customer_id, name = demo_customer(live.database_url)
    return widget_token.sign(customer_id, secret="test-secret"), customer_id, name


def run(coro):
    return asyncio.run(coro)


def test_anonymous_visitor_gets_product_answers_but_not_orders(gateway: GatewayProcess) -> None:
    async def scenario() -> None:
        client = WidgetClient(gateway.ws_url, language="en")
        welcome = await client.connect()
        assert welcome["verified"] is False and welcome["conversation"] == f"widget:{client.visitor}"
        sent = await client.send("where is my order?")
        await client.wait_messages(1)
        assert client.received[sent].startswith("in-")
        assert "verify" in texts_of(client.messages).lower()
        await client.close()
    run(scenario())


def test_forged_token_makes_an_anonymous_visitor_and_is_audited(
        gateway: GatewayProcess, live_stack: LiveAssistant, desk: Desk) -> None:
    token, customer_id, _name = signed(live_stack)
    forged = token[:-4] + ("0000" if not token.endswith("0000") else "1111")
    expired = widget_token.sign(customer_id, secret="test-secret", expires_at=time.time() - 5)

    async def scenario() -> None:
        for bad in (forged, expired, widget_token.sign(customer_id, secret="wrong-secret")):
            client = WidgetClient(gateway.ws_url, token=bad)
            welcome = await client.connect()
            assert welcome["verified"] is False
            assert welcome["conversation"] == f"widget:{client.visitor}"
            await client.close()
    run(scenario())
    from ticketing.core.models import AuditLog
    with desk.factory() as session:
        refused = session.scalars(select(AuditLog).where(
            AuditLog.action == "widget.token_refused")).all()
    assert len(refused) >= 3


def test_signed_in_customer_orders_button_and_history_after_reconnect(
        gateway: GatewayProcess, live_stack: LiveAssistant) -> None:
    token, customer_id, _name = signed(live_stack)

    async def scenario() -> None:
        client = WidgetClient(gateway.ws_url, token=token)
        welcome = await client.connect()
        assert welcome["verified"] is True and welcome["conversation"] == f"widget:c-{customer_id}"
        before = len(welcome["history"])
        await client.send("我的订单到哪了")
        answers = await client.wait_for(
            lambda c: [m for m in c.messages if m["buttons"]], timeout=60)
        button = answers[0]["buttons"][0]
        assert button["payload"].startswith("/track_order")
        count = len(client.messages)
        await client.send(button["title"], payload=button["payload"])
        await client.wait_messages(count + 1)
        await asyncio.sleep(1.0)
        tail = texts_of(client.messages[count:])
        assert button["payload"].split('"')[-2][-4:] in tail  # the chosen order's number
        seen = [m["id"] for m in client.messages]
        await client.close()

        again = WidgetClient(gateway.ws_url, visitor=f"v-{'0' * 12}", token=token)  # new device
        welcome = await again.connect()
        history = welcome["history"]
        ids = [e["id"] for e in history]
        assert all(i in ids for i in seen)  # every answer is in the history, in order
        assert [i for i in ids if i in seen] == seen
        assert any(e["direction"] == "in" and e["text"] == "我的订单到哪了" for e in history)
        assert len(history) >= before + 2 + len(seen)
        await again.close()
    run(scenario())


def test_too_long_messages_are_refused_and_not_stored(gateway: GatewayProcess, desk: Desk) -> None:
    async def scenario() -> None:
        client = WidgetClient(gateway.ws_url, language="en")
        await client.connect()
        cid = await client.send("x" * 4001)
        error = await client.wait_for(
            lambda c: [f for f in c.frames if f["type"] == "error" and f.get("client_id") == cid])
        assert error[0]["code"] == "too_long" and "4000" in error[0]["text"]
        await client.close()
        assert desk.inbound(f"widget:{client.visitor}") == []
    run(scenario())


def test_rate_limit_answers_politely_and_records_the_abuse(
        gateway: GatewayProcess, desk: Desk) -> None:
    async def scenario() -> str:
        client = WidgetClient(gateway.ws_url)
        await client.connect()
        ids = [await client.send(f"有蓝牙耳机吗 {n}") for n in range(14)]
        await client.wait_for(lambda c: all(i in c.received for i in ids), timeout=90)
        errors = await client.wait_for(
            lambda c: [f for f in c.frames if f["type"] == "error"
                       and f["code"] == "rate_limited"], timeout=90)
        assert "请稍等" in errors[0]["text"]
        await client.close()
        return f"widget:{client.visitor}"
    conversation = run(scenario())
    routes = [route for _text, route in desk.inbound(conversation)]
    assert len(routes) == 14 and routes.count("rate_limited") == 2  # stored, not answered
    from ticketing.core.models import AuditLog
    with desk.factory() as session:
        abuse = session.scalars(select(AuditLog).where(
            AuditLog.action == "abuse.rate_limited",
            AuditLog.target_id == conversation)).all()
    assert len(abuse) == 1  # once per window, not per message
    assert metric(gateway.metrics(), "kefu_gateway_rate_limited_total", channel="widget") >= 2


def test_handoff_agent_reply_solve_and_csat_in_the_widget(
        gateway: GatewayProcess, live_stack: LiveAssistant, desk: Desk) -> None:
    token, customer_id, _name = signed(live_stack)
    conversation = f"widget:c-{customer_id}"

    async def scenario() -> None:
        client = WidgetClient(gateway.ws_url, token=token)
        await client.connect()
        await client.send("我要投诉，客服态度太差了")
        await client.wait_for(lambda c: "工单" in texts_of(c.messages), timeout=60)
        ticket_id = desk.handed_off_ticket(conversation)
        assert ticket_id is not None
        count = len(client.messages)
        await client.send("请尽快处理，谢谢")
        # the assistant is silent (a person has it) but the message is never met by silence:
        # one receipt naming the ticket and the reply time, nothing else
        await client.wait_messages(count + 1, timeout=30)
        await asyncio.sleep(2)
        [receipt] = client.messages[count:]
        assert receipt["kind"] == "ticket_receipt" and "收到" in receipt["text"], receipt
        assert ("customer", "请尽快处理，谢谢") in [(a, b) for a, b, _ in desk.thread(ticket_id)]
        desk.reply(ticket_id, "您好，我是客服，正在为您核实")
        reply = await client.wait_for(
            lambda c: [m for m in c.messages if m["kind"] == "agent_reply"], timeout=30)
        assert reply[0]["text"] == "您好，我是客服，正在为您核实" and reply[0].get("agent")
        desk.solve(ticket_id, "已向您致歉并补偿优惠券")
        rating = await client.wait_for(
            lambda c: [m for m in c.messages if len(m["buttons"]) == 5], timeout=60)
        five = [b for b in rating[0]["buttons"] if "5" in b["payload"]][0]
        await client.send(five["title"], payload=five["payload"])
        await client.wait_for(lambda c: desk.survey_score(ticket_id) == 5, timeout=60)
        assert desk.handed_off_ticket(conversation) is None  # handed back to the assistant
        await client.close()
    run(scenario())


def test_twenty_conversations_of_ten_messages_nothing_lost_or_reordered(
        gateway: GatewayProcess, desk: Desk) -> None:
    questions = ["你们支持哪些付款方式", "退货政策是什么", "有蓝牙耳机吗", "How do refunds work?",
                 "你好", "what payment methods do you accept", "保温杯有货吗", "谢谢",
                 "运费怎么算", "bye"]

    async def one(n: int) -> tuple[WidgetClient, list[str]]:
        client = WidgetClient(gateway.ws_url)
        await client.connect()
        ids = [await client.send(f"{q}") for q in questions]  # all at once, not waiting
        await client.wait_for(lambda c: all(i in c.received for i in ids), timeout=240)
        return client, ids

    async def scenario() -> None:
        results = await asyncio.gather(*(one(n) for n in range(20)))
        deadline = time.monotonic() + 240
        for client, ids in results:
            conversation = f"widget:{client.visitor}"
            # wait until every message is routed and every answer delivered
            while time.monotonic() < deadline:
                routes = desk.inbound(conversation)
                if len(routes) == 10 and all(r == "rasa" for _t, r in routes) and \
                        len(client.messages) >= len(outgoing(desk, conversation)) >= 10:
                    break
                await asyncio.sleep(0.5)
            routes = desk.inbound(conversation)
            assert [t for t, _r in routes] == questions  # stored in the order sent
            assert [r for _t, r in routes] == ["rasa"] * 10
            in_ids = [int(client.received[i].split("-")[1]) for i in ids]
            assert in_ids == sorted(in_ids)
            rows = outgoing(desk, conversation)
            assert len(rows) >= 10 and all(delivered for _id, delivered in rows)
            got = [int(m["id"].split("-")[1]) for m in client.messages]
            assert got == [row_id for row_id, _d in rows]  # each once, in order
            await client.close()
    run(scenario())
    text = gateway.metrics()
    assert metric(text, "kefu_gateway_messages_in_total", channel="widget", route="rasa") >= 200


def outgoing(desk: Desk, conversation: str) -> list[tuple[int, bool]]:
    from ticketing.core.models import OutboxMessage
    with desk.factory() as session:
        return [(m.id, m.delivered_at is not None) for m in session.scalars(
            select(OutboxMessage).where(OutboxMessage.conversation_id == conversation)
            .order_by(OutboxMessage.id))]


@pytest.mark.skipif(not REDIS_URL, reason="Redis test (set KEFU_TEST_REDIS_URL)")
def test_redis_flushed_mid_conversation_changes_nothing_for_customers(
        live_stack: LiveAssistant, desk: Desk) -> None:
    import redis

    gw = GatewayProcess(live_stack, extra_env={"KEFU_REDIS_URL": REDIS_URL},
                        name="gateway-redis").start()
    client_redis = redis.Redis.from_url(REDIS_URL)
    try:
        async def scenario() -> None:
            client = WidgetClient(gw.ws_url)
            await client.connect()
            await client.send("有蓝牙耳机吗")
            await client.wait_messages(1)
            assert client_redis.keys("kefu:rate:*")  # the rate limit counts in Redis
            client_redis.flushdb()
            count = len(client.messages)
            await client.send("退货政策是什么")
            await client.wait_messages(count + 1)
            await client.send("转人工")
            await client.wait_for(lambda c: "工单" in texts_of(c.messages), timeout=60)
            client_redis.flushdb()
            ticket_id = desk.handed_off_ticket(f"widget:{client.visitor}")
            await client.send("还在吗")
            await asyncio.sleep(2)
            assert ("customer", "还在吗") in [(a, b) for a, b, _ in desk.thread(ticket_id)]
            await client.close()
        run(scenario())
        health = __import__("httpx").get(gw.url + "/health", timeout=10).json()
        assert health["checks"]["redis"] == "ok" and health["checks"]["database"] == "ok"
    finally:
        client_redis.close()
        gw.stop()


def test_rasa_stopped_mid_conversation_apology_ticket_nothing_lost(
        gateway: GatewayProcess, live_stack: LiveAssistant, desk: Desk) -> None:
    """Last in the module: it stops and restarts the shared Rasa server."""
    async def scenario() -> None:
        client = WidgetClient(gateway.ws_url)
        await client.connect()
        await client.send("有保温杯吗")
        await client.wait_messages(1)
        live_stack.stop_rasa()
        try:
            count = len(client.messages)
            await client.send("我的快递丢了，怎么办")
            apology = await client.wait_messages(count + 1, timeout=60)
            assert "工单" in apology[-1]["text"] and "抱歉" in apology[-1]["text"]
            conversation = f"widget:{client.visitor}"
            ticket_id = desk.handed_off_ticket(conversation)
            thread = [b for _a, b, _ in desk.thread(ticket_id)]
            assert "我的快递丢了，怎么办" in "\n".join(thread)  # the words reached the ticket
            await client.send("订单号是多少你们查一下")
            await asyncio.sleep(2)
            thread = [b for _a, b, _ in desk.thread(ticket_id)]
            assert "订单号是多少你们查一下" in thread  # handed off: straight to the ticket
            routes = [r for _t, r in desk.inbound(conversation)]
            assert routes == ["rasa", "fallback_ticket", "ticket"]
            health = __import__("httpx").get(gateway.url + "/health", timeout=10).json()
            assert health["status"] == "degraded" and health["checks"]["rasa"] != "ok"
        finally:
            live_stack.start_rasa()
        await client.close()
    run(scenario())
    assert metric(gateway.metrics(), "kefu_gateway_handoffs_total",
                  reason="assistant_unavailable") >= 1


def test_an_order_the_shop_loads_through_its_api_is_answered_to_its_customer_only(
        gateway: GatewayProcess, live_stack: LiveAssistant) -> None:
    """Issue 14's promise end to end: the shop's API (the desk app, in this process, over the
    stack's database) loads a customer and an order; that customer, signed in to the widget,
    gets it from the assistant; another customer asking for the same number learns nothing."""
    from fastapi.testclient import TestClient

    from ticketing.core.db import make_engine, make_session_factory
    from ticketing.core.models import Agent, Customer, Role
    from ticketing.core.pii import PiiCipher
    from ticketing.core.settings import load_settings
    from ticketing.desk import accounts
    from ticketing.web.app import create_app

    settings = load_settings(live_stack.env)
    engine = make_engine(live_stack.database_url)
    factory = make_session_factory(engine, schedule=settings.schedule)
    number = "2026113099990001"
    try:
        with factory.begin() as session:
            admin = session.scalars(select(Agent).where(Agent.role == Role.ADMIN)).first()
            _token, secret = accounts.create_api_token(
                session, agent_id=admin.id, name="shop sync", scopes=["shop:write"])
        app = create_app(settings=settings, session_factory=factory,
                         cipher=PiiCipher(settings.pii_key))
        stamp = "2026-11-30T08:00:00+08:00"
        with TestClient(app) as shop:
            def send(kind: str, row: dict) -> None:
                answer = shop.post(f"/api/v1/shop/{kind}", json={"rows": [row]},
                                   headers={"Authorization": f"Bearer {secret}"})
                assert answer.status_code == 200, answer.text
                assert answer.json()["results"][0]["status"] == "created", answer.text
            send("products", {"external_id": "LIVE-P1", "name_zh": "竹纤维毛巾",
                              "name_en": "Bamboo Towel", "category": "home", "price_cents": 4900,
                              "stock": 20, "no_reason_return_7d": True, "updated_at": stamp})
            send("customers", {"external_id": "LIVE-C1", "name": "林晓", "language": "zh",
                               "phone": "13912345678", "updated_at": stamp})
            send("orders", {"number": number, "customer": "LIVE-C1", "state": "paid",
                            "items": [{"product": "LIVE-P1", "quantity": 1,
                                       "unit_price_cents": 4900}],
                            "paid_cents": 4900, "created_at": stamp, "updated_at": stamp})
        with factory() as session:
            owner_id = session.scalars(select(Customer.id).where(
                Customer.external_id == "LIVE-C1")).one()
    finally:
        engine.dispose()
    other_id, _ = demo_customer(live_stack.database_url, nth=3)  # no handoff of theirs here

    async def ask(customer_id: int) -> str:
        token = widget_token.sign(customer_id, secret="test-secret")
        client = WidgetClient(gateway.ws_url, token=token)
        welcome = await client.connect()
        assert welcome["verified"] is True
        await client.send(f"订单 {number} 到哪了")
        await client.wait_messages(1, timeout=60)
        await asyncio.sleep(1.0)
        said = texts_of(client.messages)
        await client.close()
        return said

    mine = run(ask(owner_id))
    assert number in mine and "已付款" in mine and "竹纤维毛巾" in mine
    theirs = run(ask(other_id))
    assert "没有找到" in theirs and "竹纤维毛巾" not in theirs
