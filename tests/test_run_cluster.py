"""`make run-cluster` in miniature: 2 gateways, 2 Rasa + 2 action servers, a worker and a desk
on PostgreSQL + Redis (a private redis-server: ``tests/faults/cluster.py``), under the
supervisor. One customer's messages alternate between the
gateways and are answered in order; a Rasa server killed with SIGKILL costs the customer
nothing (its conversations move to the other one) and is started again; so is a gateway.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import aiohttp
import pytest
import sqlalchemy

from bot.rasa_config import ROOT
from tests.faults.cluster import Cluster

PG_URL = os.environ.get("KEFU_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("KEFU_TEST_REDIS_URL")
MODEL = ROOT / "models" / "kefu.tar.gz"

pytestmark = [
    pytest.mark.skipif(not (PG_URL and REDIS_URL), reason="needs PostgreSQL and Redis "
                       "(KEFU_TEST_DATABASE_URL, KEFU_TEST_REDIS_URL)"),
    pytest.mark.skipif(not MODEL.exists(), reason="needs a trained model (make train)"),
]


@pytest.fixture(scope="module")
def database_url() -> str:
    assert PG_URL is not None
    url = sqlalchemy.engine.make_url(PG_URL)
    name = f"kefu_cluster_{os.getpid()}"
    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Cluster:
    running = Cluster(tmp_path_factory.mktemp("cluster"), database_url,
                      env_extra={"KEFU_AUTO_ASSIGN_AFTER": "off"}, workers=1)
    yield running
    if running.proc.poll() is None:
        running.stop()


async def _say(url: str, visitor: str, text: str) -> list[str]:
    """One message over a fresh widget connection; the texts shown until it was handled."""
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(url)
        await ws.send_json({"type": "hello", "visitor": visitor, "token": None,
                            "language": "en"})
        assert (await ws.receive_json(timeout=60))["type"] == "welcome"
        client_id = f"m-{uuid.uuid4()}"
        await ws.send_json({"type": "message", "client_id": client_id, "text": text})
        shown: list[str] = []
        while True:
            frame = await ws.receive_json(timeout=90)
            if frame["type"] == "message":
                shown.append(frame.get("text", ""))
            if frame["type"] == "handled" and frame["client_id"] == client_id:
                break
        await ws.close()
        return shown


SCRIPT = [("hello", "Kefu"), ("what is your return policy", "return"),
          ("is the power bank in stock", "Power Bank"), ("thanks", "welcome")]


def _converse(cluster: Cluster, visitor: str) -> list[list[str]]:
    """The script, its messages alternating between gateway 0 and gateway 1."""
    return [asyncio.run(_say(cluster.gateway(i % 2), visitor, text))
            for i, (text, _expected) in enumerate(SCRIPT)]


def _check(answers: list[list[str]]) -> None:
    for (text, expected), shown in zip(SCRIPT, answers):
        assert any(expected.lower() in line.lower() for line in shown), (text, shown)


def test_a_conversation_alternating_between_gateways_is_answered_in_order(cluster) -> None:
    _check(_converse(cluster, f"v-cluster-{uuid.uuid4().hex[:8]}"))


def test_a_killed_rasa_server_costs_the_customer_nothing_and_comes_back(cluster) -> None:
    cluster.kill("rasa-0", wait=False)
    for n in range(3):  # conversations of either server: rasa-0's move to rasa-1
        _check(_converse(cluster, f"v-after-rasa-{n}-{uuid.uuid4().hex[:8]}"))
    cluster.wait_ready("rasa-0", restarts=1)


def test_a_killed_gateway_is_started_again(cluster) -> None:
    cluster.kill("gateway-1", wait=False)
    cluster.wait_ready("gateway-1", restarts=1)
    _check(_converse(cluster, f"v-after-gateway-{uuid.uuid4().hex[:8]}"))
    log = cluster.stop()
    assert "gateway-1 exited with -9" in log and "rasa-0 exited with -9" in log
    assert "kefu cluster stopped" in log
