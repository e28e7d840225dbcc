"""The gateway service as ``python -m bot`` runs it with Redis: the turn lock, the periodic
replay and the outbox wake-up listener are wired in, and it starts and stops cleanly."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import select

from bot.gateway.app import GatewayService
from bot.gateway.conversation_lock import RedisTurnLock
from bot.gateway.settings import GatewaySettings
from ticketing.conversations import inbound
from ticketing.core.models import InboundMessage
from ticketing.core.settings import load_settings
from tests.conftest import REDIS_URL
from tests.ticketing.desk_setup import build_desk


def test_a_running_service_replays_an_interrupted_turn_without_a_restart(
        engine, session_factory, redis_client, make, session, tmp_path) -> None:
    build_desk(make)
    session.commit()
    app_settings = load_settings({"KEFU_DATABASE_URL": str(engine.url),
                                  "KEFU_REDIS_URL": REDIS_URL or "",
                                  "KEFU_VAR_DIR": str(tmp_path)})
    settings = GatewaySettings(port=0, rasa_url="http://127.0.0.1:1", rasa_timeout=0.5,
                               widget_secret="test-secret", replay_interval=0.2,
                               replay_grace=0.3)
    service = GatewayService(settings, app_settings, session_factory=session_factory,
                             demo_page=False)

    def listeners() -> int:  # pub/sub channels span Redis databases: others may listen too
        return int(redis_client.pubsub_numsub("kefu:outbox")[0][1])

    before = listeners()

    async def scenario() -> str | None:
        await service.start()
        try:
            assert service.gateway is not None
            assert isinstance(service.gateway.lanes.shared, RedisTurnLock)
            for _ in range(50):  # the outbox wake-up listener subscribes
                if listeners() == before + 1:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("no wake-up listener")
            with session_factory.begin() as s:  # a turn cut short after the start-up replay
                inbound.record(s, channel="widget", conversation_id="widget:v-55555555",
                               dedupe_key="v-55555555:m1", text="在吗")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with session_factory() as s:
                    route = s.scalars(select(InboundMessage.route)).one()
                if route is not None:
                    return route
                await asyncio.sleep(0.1)
            return None
        finally:
            await service.stop()
    # Rasa is unreachable here: the replayed turn becomes an apology and a ticket, not silence
    assert asyncio.run(scenario()) == "fallback_ticket"
    assert listeners() <= before  # the listener is gone
