"""Assistant turn latency: Kefu's Rasa bot vs a stock `rasa init` bot, side by side.

Starts, on free 127.0.0.1 ports:
  - Kefu: the action server (its own SQLite database with the demo shop, under var/bench/)
    and the Rasa server with models/kefu.tar.gz (REST channel);
  - stock: `rasa init --no-prompt` (trained once, cached in var/bench/stock), REST channel.
Then, for each concurrency level (1, 10, 50), runs N concurrent scripted conversations
against Kefu and then against the stock bot, and reports throughput (user turns per second)
and p50/p95 turn latency (POST /webhooks/rest/webhook until the bot's answers arrive).

Kefu's conversations are bilingual (every other one in English) and hit actions and the
database: a verified demo customer asks where an order is, taps one of the order buttons,
asks about a product's stock and the return policy, and says thanks. The stock bot's script
is its own moodbot dialogue of the same length.

    .venv/bin/python bench/turn_latency.py [--levels 1 10 50] [--rounds 2] [--train-time]

`--train-time` also times a full training of Kefu's model from scratch (into var/bench/).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bot import assistant  # noqa: E402
from bot.rasa_client import speaker_metadata  # noqa: E402
from bot.rasa_config import AssistantSettings  # noqa: E402

# what Kefu's gateway says of a linked visitor with every message (bot.rasa_client): sent
# straight to Rasa here so the bot answers these demo buyers as verified customers
VERIFIED = speaker_metadata(None, True)
BENCH = ROOT / "var" / "bench"
STOCK = BENCH / "stock"

KEFU_ZH = ["你好", "我的订单到哪了", "<button>", "充电宝还有货吗", "退货政策是什么", "谢谢"]
KEFU_EN = ["hi there", "where is my order", "<button>", "is the power bank in stock",
           "what is your return policy", "thanks"]
STOCK_SCRIPT = ["hello", "I am very sad", "yes", "are you a bot?", "great, thanks", "bye"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_kefu_database(var: Path, conversations: int) -> dict[str, str]:
    """A fresh demo shop with one verified widget identity per bench conversation."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    env.update(KEFU_VAR_DIR=str(var), KEFU_DATABASE_URL=f"sqlite:///{var / 'kefu.db'}")
    code = f"""
import os
from ticketing.core import migrate
from ticketing.demo import data as demo_data
from ticketing.shop import customers
from ticketing.core.db import make_engine, make_session_factory
from ticketing.core.models import Customer, Order
from ticketing.core.pii import PiiCipher
from ticketing.core.settings import load_settings
from sqlalchemy import select, func
s = load_settings(); migrate.upgrade(s.database_url)
f = make_session_factory(make_engine(s.database_url), schedule=s.schedule)
with f.begin() as session:
    if demo_data.is_empty(session):
        demo_data.load(session, cipher=PiiCipher(s.pii_key))
    buyers = session.scalars(select(Order.customer_id).group_by(Order.customer_id)
                             .having(func.count() >= 2).order_by(Order.customer_id)).all()
    for i in range({conversations}):
        customers.link_identity(session, channel="widget", external_id=f"bench-{{i}}",
                                customer_id=buyers[i % len(buyers)], method="demo")
"""
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
    return env


def ensure_stock_bot() -> float | None:
    """`rasa init` into var/bench/stock once; returns its training time when trained now."""
    if list((STOCK / "models").glob("*.tar.gz")):
        return None
    shutil.rmtree(STOCK, ignore_errors=True)
    STOCK.mkdir(parents=True)
    started = time.perf_counter()
    subprocess.run([str(assistant.RASA_BIN), "init", "--no-prompt", "--init-dir", str(STOCK)],
                   cwd=STOCK, env=assistant.rasa_env(), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def start(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT)


async def converse(client: httpx.AsyncClient, url: str, sender: str, script: list[str],
                   latencies: list[float], metadata: dict | None = None) -> int:
    turns = 0
    last: list[dict] = []
    for line in script:
        message = line
        if line == "<button>":
            buttons = [b for m in last for b in (m.get("buttons") or [])]
            message = buttons[0]["payload"] if buttons else "1"
        started = time.perf_counter()
        body = {"sender": sender, "message": message}
        if metadata:
            body["metadata"] = metadata
        response = await client.post(url, json=body)
        latencies.append(time.perf_counter() - started)
        response.raise_for_status()
        last = response.json()
        turns += 1
    return turns


async def level(url: str, conversation: Callable[[int], tuple[str, list[str]]],
                concurrency: int, rounds: int, metadata: dict | None = None) -> dict[str, float]:
    """``rounds`` waves of ``concurrency`` simultaneous conversations; conversation k of the
    level is ``conversation(k)`` = (sender id, script). ``metadata``: sent with every message
    (Kefu: what the gateway says of the speaker, ``VERIFIED``)."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency + 5)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        started = time.perf_counter()
        turns = 0
        for r in range(rounds):
            wave = [conversation(r * concurrency + i) for i in range(concurrency)]
            turns += sum(await asyncio.gather(
                *(converse(client, url, sender, script, latencies, metadata)
                  for sender, script in wave)))
        elapsed = time.perf_counter() - started
    return summary_of(latencies, turns, elapsed)


def summary_of(latencies: list[float], turns: int, elapsed: float) -> dict[str, float]:
    """Throughput and p50/p95 of one level."""
    ordered = sorted(latencies)
    return {"turns": turns, "throughput": turns / elapsed,
            "p50_ms": statistics.median(ordered) * 1000,
            "p95_ms": ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000}


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def print_side_by_side(results: dict[str, dict[str, dict[str, float]]], first: str,
                       second: str, levels: list[int]) -> None:
    """One row per path and level, then ``first``/``second`` ratios."""
    print(f"{'path':<8} {'conc':>4} {'turns':>6} {'turns/s':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for n in levels:
        for path in (first, second):
            r = results[path][str(n)]
            print(f"{path:<8} {n:>4} {r['turns']:>6.0f} {r['throughput']:>8.1f} "
                  f"{r['p50_ms']:>8.0f} {r['p95_ms']:>8.0f}")
        a, b = results[first][str(n)], results[second][str(n)]
        print(f"{'ratio':<8} {n:>4} {'':>6} {a['throughput'] / b['throughput']:>8.2f} "
              f"{a['p50_ms'] / b['p50_ms']:>8.2f} {a['p95_ms'] / b['p95_ms']:>8.2f}")


def time_training() -> float:
    out = BENCH / "train-timing"
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run([str(assistant.RASA_BIN), "train", "--config", "config.yml", "--domain",
                    "bot/domain", "--data", "nlu_data", "--out", str(out), "--force"],
                   cwd=ROOT, env=assistant.rasa_env(), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--rounds", type=int, default=2, help="conversations per slot and level")
    parser.add_argument("--train-time", action="store_true")
    args = parser.parse_args()
    BENCH.mkdir(parents=True, exist_ok=True)
    top = max(args.levels)

    stock_training = ensure_stock_bot()
    var = BENCH / "kefu"
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    kefu_env = prepare_kefu_database(var, top * args.rounds)
    settings = AssistantSettings(rasa_port=free_port(), action_port=free_port(), var_dir=var)
    stock_port = free_port()
    procs = [
        start(assistant.action_server_argv(settings), assistant.action_env(kefu_env), ROOT,
              var / "actions.log"),
        start(assistant.rasa_server_argv(settings), assistant.rasa_env(kefu_env), ROOT,
              var / "rasa.log"),
        start([str(assistant.RASA_BIN), "run", "--model", "models", "--interface", "127.0.0.1",
               "--port", str(stock_port)], assistant.rasa_env(), STOCK, BENCH / "stock.log"),
    ]
    results: dict[str, dict[str, dict[str, float]]] = {"kefu": {}, "stock": {}}
    try:
        assistant.wait_until_up(f"http://127.0.0.1:{settings.action_port}/health", process=procs[0])
        assistant.wait_until_up(f"{settings.rasa_url}/status", process=procs[1])
        assistant.wait_until_up(f"http://127.0.0.1:{stock_port}/", process=procs[2])
        kefu_url = f"{settings.rasa_url}/webhooks/rest/webhook"
        stock_url = f"http://127.0.0.1:{stock_port}/webhooks/rest/webhook"
        # warm-up: the first turns load TensorFlow graphs
        asyncio.run(level(kefu_url, lambda k: ("widget:bench-0", KEFU_ZH), 1, 1, VERIFIED))
        asyncio.run(level(stock_url, lambda k: ("stock-warmup", STOCK_SCRIPT), 1, 1))
        for n in args.levels:
            # verified demo identities widget:bench-0.. (conversations continue across levels)
            results["kefu"][str(n)] = asyncio.run(level(
                kefu_url, lambda k: (f"widget:bench-{k}", KEFU_EN if k % 2 else KEFU_ZH),
                n, args.rounds, VERIFIED))
            results["stock"][str(n)] = asyncio.run(level(
                stock_url, lambda k, n=n: (f"stock-{n}-{k}", STOCK_SCRIPT), n, args.rounds))
    finally:
        stop_all(procs)

    print_side_by_side(results, "kefu", "stock", args.levels)
    summary: dict[str, object] = {"results": results}
    if stock_training is not None:
        summary["stock_training_s"] = round(stock_training, 1)
        print(f"stock bot training (rasa init): {stock_training:.0f} s")
    if args.train_time:
        seconds = time_training()
        summary["kefu_training_s"] = round(seconds, 1)
        print(f"kefu full model training from scratch: {seconds:.0f} s")
    (BENCH / "turn_latency.json").write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
