"""Gateway load: simulated customers through the widget WebSocket vs straight to Rasa's REST webhook.

Starts, on free 127.0.0.1 ports, over a fresh SQLite demo shop under var/bench/gateway/:
the action server, the Rasa server (models/kefu.tar.gz) and the gateway (`python -m bot`).
For each concurrency level (1, 10, 50), N simulated verified customers each run the same
6-turn bilingual script (greeting, where is my order, tap an order button, stock question,
return policy, thanks) twice: once through the gateway's widget WebSocket (end to end through
Rasa, the actions and the outbox, a turn ends at the gateway's ``handled`` frame, i.e. after
every answer was delivered), then the same load straight to Rasa's REST webhook. Reports
throughput (turns/s), p50/p95 turn latency, and the gateway/direct ratios.

    .venv/bin/python bench/gateway_load.py [--levels 1 10 50] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import aiohttp  # noqa: E402
import httpx  # noqa: E402
from scale_turns import frame  # noqa: E402
from turn_latency import (  # noqa: E402
    KEFU_EN,
    VERIFIED,
    KEFU_ZH,
    free_port,
    level,
    print_side_by_side,
    start,
    stop_all,
    summary_of,
)

from bot import assistant  # noqa: E402
from bot.rasa_config import AssistantSettings  # noqa: E402

BENCH = ROOT / "var" / "bench" / "gateway"


def prepare(var: Path, conversations: int) -> dict[str, str]:
    """A demo shop; widget identities v-gw-N and v-direct-N linked (verified) to buyers."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    env.update(KEFU_VAR_DIR=str(var), KEFU_DATABASE_URL=f"sqlite:///{var / 'kefu.db'}",
               KEFU_AUTO_ASSIGN_AFTER="off")
    code = f"""
from sqlalchemy import func, select
from ticketing.core import migrate
from ticketing.demo import data as demo_data
from ticketing.shop import customers
from ticketing.core.db import make_engine, make_session_factory
from ticketing.core.models import Order
from ticketing.core.pii import PiiCipher
from ticketing.core.settings import load_settings
s = load_settings(); migrate.upgrade(s.database_url)
f = make_session_factory(make_engine(s.database_url), schedule=s.schedule)
with f.begin() as session:
    demo_data.load(session, cipher=PiiCipher(s.pii_key))
    buyers = session.scalars(select(Order.customer_id).group_by(Order.customer_id)
                             .having(func.count() >= 2).order_by(Order.customer_id)).all()
    for i in range({conversations}):
        for path in ("gw", "direct"):
            customers.link_identity(session, channel="widget", external_id=f"v-{{path}}-{{i:06d}}",
                                    customer_id=buyers[i % len(buyers)], method="demo")
"""
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
    return env


async def ws_conversation(session: aiohttp.ClientSession, url: str, visitor: str,
                          script: list[str], latencies: list[float]) -> int:
    """One customer in the widget: each turn from sending to the ``handled`` frame."""
    ws = await session.ws_connect(url)
    await ws.send_json({"type": "hello", "visitor": visitor, "token": None, "language": "zh"})
    welcome = await frame(ws, 60)
    assert welcome["type"] == "welcome", welcome
    last_buttons: list[dict[str, str]] = []
    turns = 0
    for line in script:
        text, payload = line, None
        if line == "<button>":
            text, payload = (last_buttons[0]["title"], last_buttons[0]["payload"]) \
                if last_buttons else ("1", None)
        client_id = f"m-{uuid.uuid4()}"
        sent = {"type": "message", "client_id": client_id, "text": text}
        if payload:
            sent["payload"] = payload
        started = time.perf_counter()
        await ws.send_json(sent)
        buttons: list[dict[str, str]] = []
        while True:
            reply = await frame(ws, 300)  # not receive_json(timeout=): pings restart it
            if reply["type"] == "message" and reply.get("buttons"):
                buttons = reply["buttons"]
            if reply["type"] == "handled" and reply["client_id"] == client_id:
                break
        latencies.append(time.perf_counter() - started)
        last_buttons = buttons or last_buttons
        turns += 1
    await ws.close()
    return turns


async def ws_level(url: str, concurrency: int, rounds: int, offset: int) -> dict[str, float]:
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        turns = 0
        for r in range(rounds):
            ks = [offset + r * concurrency + i for i in range(concurrency)]
            turns += sum(await asyncio.gather(*(
                ws_conversation(session, url, f"v-gw-{k:06d}", KEFU_EN if k % 2 else KEFU_ZH,
                                latencies) for k in ks)))
        elapsed = time.perf_counter() - started
    return summary_of(latencies, turns, elapsed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    shutil.rmtree(BENCH, ignore_errors=True)
    BENCH.mkdir(parents=True)
    needed = sum(args.levels) * args.rounds + 2
    env = prepare(BENCH, needed)
    settings = AssistantSettings(rasa_port=free_port(), action_port=free_port(), var_dir=BENCH)
    gateway_port = free_port()
    gateway_env = dict(env, KEFU_GATEWAY_PORT=str(gateway_port),
                       KEFU_RASA_URL=settings.rasa_url, KEFU_RATE_LIMIT_PER_MINUTE="0",
                       KEFU_RASA_TIMEOUT="300", PYTHONPATH=str(ROOT))
    procs = [
        start(assistant.action_server_argv(settings), assistant.action_env(env), ROOT,
              BENCH / "actions.log"),
        start(assistant.rasa_server_argv(settings), assistant.rasa_env(env), ROOT,
              BENCH / "rasa.log"),
        start([sys.executable, "-m", "bot"], gateway_env, ROOT, BENCH / "gateway.log"),
    ]
    results: dict[str, dict[str, dict[str, float]]] = {"gateway": {}, "direct": {}}
    try:
        assistant.wait_until_up(f"http://127.0.0.1:{settings.action_port}/health", process=procs[0])
        assistant.wait_until_up(f"{settings.rasa_url}/status", process=procs[1])
        assistant.wait_until_up(f"http://127.0.0.1:{gateway_port}/health", process=procs[2])
        ws_url = f"ws://127.0.0.1:{gateway_port}/ws"
        rest_url = f"{settings.rasa_url}/webhooks/rest/webhook"
        # warm-up: the first turns load TensorFlow graphs
        asyncio.run(level(rest_url, lambda k: ("widget:v-direct-warmup", KEFU_ZH), 1, 1,
                          VERIFIED))
        offset = 0
        for n in args.levels:
            results["gateway"][str(n)] = asyncio.run(ws_level(ws_url, n, args.rounds, offset))
            results["direct"][str(n)] = asyncio.run(level(
                rest_url, lambda k, o=offset: (f"widget:v-direct-{o + k:06d}",
                                               KEFU_EN if (o + k) % 2 else KEFU_ZH),
                n, args.rounds, VERIFIED))
            offset += n * args.rounds
        metrics = httpx.get(f"http://127.0.0.1:{gateway_port}/metrics", timeout=10).text
    finally:
        stop_all(procs)

    print_side_by_side(results, "gateway", "direct", args.levels)
    errors = [line for line in metrics.splitlines()
              if line.startswith("kefu_gateway_errors_total{")]
    print("gateway errors:", errors or "none")
    (BENCH / "gateway_load.json").write_text(json.dumps({"results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
