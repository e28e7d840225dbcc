"""One real assistant (Rasa + action server over a SQLite demo shop) for the gateway's tests.

Starting Rasa costs ~30 s, so the channel, widget and fault tests share it; each test module
runs its own gateway process (``tests/bot/gateway_harness.py``) and uses its own conversations.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.rasa_config import ROOT
from tests.assistant.live import LiveAssistant
from tests.bot.gateway_harness import Desk

MODEL = ROOT / "models" / "kefu.tar.gz"


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAssistant]:
    if not MODEL.exists():
        pytest.fail("no trained model: run `make train` (make test does)")
    var: Path = tmp_path_factory.mktemp("gateway-stack")
    live = LiveAssistant(var)
    live.seed()
    live.start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="session")
def desk(live_stack: LiveAssistant) -> Iterator[Desk]:
    d = Desk(live_stack.database_url)
    yield d
    d.close()
