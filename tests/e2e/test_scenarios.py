"""Multi-turn conversations end to end: a customer in the widget, the real gateway, Rasa, the
action server and the database (``tests/e2e/scenarios/*.yml``, run by ``driver.py``).

One Rasa stack for the whole test session (``live_stack`` in tests/conftest.py, shared with
tests/bot) and one gateway for this module; the scenarios run one after another, each as a
fresh customer or visitor, so none depends on another's conversation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.assistant.live import LiveAssistant
from tests.bot.gateway_harness import Desk, GatewayProcess
from tests.e2e.driver import Conversation, Scenario, load_scenarios
from tests.e2e.shop import OrderRef, Shop

SCENARIOS = load_scenarios()


@pytest.fixture(scope="module")
def gateway(live_stack: LiveAssistant) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(live_stack, name="gateway-e2e").start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def shop(live_stack: LiveAssistant) -> Iterator[Shop]:
    s = Shop(live_stack.env, live_stack.database_url)
    yield s
    s.close()


@pytest.fixture(scope="module")
def foreign(shop: Shop) -> OrderRef:
    return shop.foreign_order()


@pytest.mark.parametrize("scenario", [s.param() for s in SCENARIOS])
def test_scenario(scenario: Scenario, gateway: GatewayProcess, shop: Shop, desk: Desk,
                  foreign: OrderRef) -> None:
    conversation = Conversation(scenario, ws_url=gateway.ws_url, shop=shop, desk=desk,
                                foreign=foreign)
    asyncio.run(conversation.run())


def test_the_scenarios_cover_both_languages_and_their_mix() -> None:
    """The suite's promise: at least 22 Chinese, 22 English and 10 mixed conversations."""
    counts = {lang: sum(s.lang == lang for s in SCENARIOS) for lang in ("zh", "en", "mixed")}
    assert counts["zh"] >= 22 and counts["en"] >= 22 and counts["mixed"] >= 10, counts
    assert len(SCENARIOS) >= 60, len(SCENARIOS)
