"""Where a turn's CPU goes: py-spy samples of the gateway, Rasa and the action server.

Starts the same stack as ``bench/gateway_load.py`` (fresh SQLite demo shop under
var/bench/profile/: action server, Rasa with models/kefu.tar.gz, the gateway), warms it up,
then for each concurrency level runs N simulated verified customers through the widget
WebSocket (the 6-turn bilingual script) while ``py-spy record`` samples every process. Each
process's samples are sorted into the parts of a turn by the frames on their stacks (first
matching rule wins: see ``RULES``) and printed as CPU milliseconds per customer turn, so the
table reads "this much of every turn's work is the tracker store", whatever the load.

    .venv/bin/python bench/profile_turn.py [--levels 1 50] [--rate 250] [--keep]

``--keep`` leaves the raw collapsed stacks (var/bench/profile/*.txt) for a flame-graph tool.
py-spy needs ptrace rights on the processes (root, or kernel.yama.ptrace_scope=0).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gateway_load import prepare, ws_level  # noqa: E402
from turn_latency import KEFU_ZH, free_port, level, start, stop_all  # noqa: E402

from bot import assistant  # noqa: E402
from bot.rasa_config import AssistantSettings  # noqa: E402

BENCH = ROOT / "var" / "bench" / "profile"
PY_SPY = Path(sys.executable).with_name("py-spy")

# (part of the turn, substrings any of which on a stack puts the sample there); most specific
# first. Frames look like "function (path/to/file.py:line)".
RULES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "rasa": [
        ("NLU: DIET (TensorFlow)", ("diet_classifier", "tensorflow/", "keras/")),
        ("NLU: tokenise + featurise", ("jieba", "count_vectors_featurizer", "regex_featurizer",
                                       "sklearn/", "scipy/")),
        ("NLU: extractors, fallback", ("rasa/nlu/", "bot/nlu/")),
        ("policies (rules, memoization)", ("rasa/core/policies/",)),
        ("tracker store", ("tracker_store",)),
        ("lock store", ("lock_store",)),
        ("action calls (HTTP client)", ("rasa/core/actions/action.py", "aiohttp/client")),
        ("graph runner, processor", ("rasa/engine/", "rasa/core/processor",
                                     "rasa/shared/core/trackers", "rasa/shared/core/events")),
        ("HTTP server (sanic)", ("sanic/",)),
    ],
    "actions": [
        ("database: SQL execution", ("sqlite3", "psycopg", "do_execute", "_execute_context")),
        ("database: ORM, compiling", ("sqlalchemy/",)),
        ("ticketing services", ("ticketing/",)),
        ("actions (Kefu)", ("actions/",)),
        ("action server (rasa_sdk, sanic)", ("rasa_sdk/", "sanic/")),
    ],
    "gateway": [
        ("database: SQL execution", ("sqlite3", "psycopg", "do_execute", "_execute_context")),
        ("database: ORM, compiling", ("sqlalchemy/",)),
        ("ticketing services", ("ticketing/",)),
        ("Rasa client (httpx)", ("httpx/", "httpcore/")),
        ("WebSocket, HTTP (aiohttp)", ("aiohttp/",)),
        ("gateway (Kefu)", ("bot/gateway/",)),
    ],
}


# where a thread waits for work: py-spy cannot always tell a thread blocked in C from a
# running one (a thread pool's queue, uvloop's run_forever), so such samples are dropped by
# their innermost Python frame
IDLE_LEAVES = ("concurrent/futures/thread.py", "sanic/server/runners.py", "selectors.py",
               "threading.py", "queue.py", "asyncio/runners.py")


def is_idle(stack: str) -> bool:
    leaf = stack.rsplit(";", 1)[-1]
    return any(path in leaf for path in IDLE_LEAVES)


def part_of(process: str, stack: str) -> str:
    for name, needles in RULES[process]:
        if any(needle in stack for needle in needles):
            return name
    if "asyncio/" in stack or "selectors" in stack:
        return "event loop"
    return "other"


def read_collapsed(path: Path) -> collections.Counter[str]:
    """py-spy's raw output: one ``frame;frame;... count`` line per distinct stack."""
    counts: collections.Counter[str] = collections.Counter()
    if not path.exists():
        return counts
    for line in path.read_text(errors="replace").splitlines():
        stack, _, number = line.rpartition(" ")
        if number.isdigit():
            counts[stack] += int(number)
    return counts


def record(pids: dict[str, int], out: Path, rate: int) -> dict[str, subprocess.Popen[bytes]]:
    """py-spy on each process; ``KEFU_PROFILE_GIL=1`` samples only the thread holding the GIL
    (Python's CPU without the threads waiting for it, which plain sampling counts too)."""
    spies = {}
    gil = ["--gil"] if os.environ.get("KEFU_PROFILE_GIL") == "1" else []
    for name, pid in pids.items():
        spies[name] = subprocess.Popen(
            [str(PY_SPY), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
             "--output", str(out / f"{name}.txt"), "--nonblocking", *gil],
            stdout=subprocess.DEVNULL, stderr=(out / f"{name}.spy.log").open("wb"))
    time.sleep(1.0)  # attached before the first turn
    return spies


def finish(spies: dict[str, subprocess.Popen[bytes]]) -> None:
    for spy in spies.values():
        spy.send_signal(signal.SIGINT)
    for spy in spies.values():
        try:
            spy.wait(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()


def breakdown(out: Path, rate: int, turns: int) -> dict[str, dict[str, float]]:
    """CPU ms per customer turn, per process and part."""
    table: dict[str, dict[str, float]] = {}
    for process in RULES:
        parts: collections.Counter[str] = collections.Counter()
        for stack, count in read_collapsed(out / f"{process}.txt").items():
            if not is_idle(stack):
                parts[part_of(process, stack)] += count
        table[process] = {part: count / rate * 1000 / max(turns, 1)
                          for part, count in parts.most_common()}
    return table


def print_table(levels: dict[str, dict]) -> None:
    for n, result in levels.items():
        print(f"\n== {n} conversation(s): {result['turns']} turns, "
              f"{result['throughput']:.1f} turns/s, p50 {result['p50_ms']:.0f} ms, "
              f"p95 {result['p95_ms']:.0f} ms — CPU ms per turn")
        for process, parts in result["cpu"].items():
            total = sum(parts.values())
            print(f"  {process:<8} {total:7.1f} ms")
            for part, ms in parts.items():
                print(f"    {part:<34} {ms:7.1f}  ({ms / total * 100 if total else 0:4.1f} %)")


def rounds_for(n: int, rounds: int) -> int:
    """Enough waves for at least 10 conversations (60 turns) per level: samples to sort."""
    return max(rounds, -(-10 // n))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--keep", action="store_true", help="keep the collapsed stacks")
    args = parser.parse_args()
    if not PY_SPY.exists():
        print(f"py-spy not found at {PY_SPY}: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    shutil.rmtree(BENCH, ignore_errors=True)
    BENCH.mkdir(parents=True)
    needed = sum(n * rounds_for(n, args.rounds) for n in args.levels)
    env = prepare(BENCH, needed + 2)
    settings = AssistantSettings(rasa_port=free_port(), action_port=free_port(), var_dir=BENCH)
    gateway_port = free_port()
    gateway_env = dict(env, KEFU_GATEWAY_PORT=str(gateway_port),
                       KEFU_RASA_URL=settings.rasa_url, KEFU_RATE_LIMIT_PER_MINUTE="0",
                       KEFU_RASA_TIMEOUT="300", PYTHONPATH=str(ROOT))
    procs = {
        "actions": start(assistant.action_server_argv(settings), assistant.action_env(env), ROOT,
                         BENCH / "actions.log"),
        "rasa": start(assistant.rasa_server_argv(settings), assistant.rasa_env(env), ROOT,
                      BENCH / "rasa.log"),
        "gateway": start([sys.executable, "-m", "bot"], gateway_env, ROOT,
                         BENCH / "gateway.log"),
    }
    levels: dict[str, dict] = {}
    try:
        assistant.wait_until_up(f"http://127.0.0.1:{settings.action_port}/health",
                                process=procs["actions"])
        assistant.wait_until_up(f"{settings.rasa_url}/status", process=procs["rasa"])
        assistant.wait_until_up(f"http://127.0.0.1:{gateway_port}/health",
                                process=procs["gateway"])
        rest_url = f"{settings.rasa_url}/webhooks/rest/webhook"
        asyncio.run(level(rest_url, lambda k: ("widget:v-direct-warmup", KEFU_ZH), 1, 1))
        asyncio.run(ws_level(f"ws://127.0.0.1:{gateway_port}/ws", 2, 1,
                             needed))  # the gateway's first turns
        offset = 0
        for n in args.levels:
            out = BENCH / f"level-{n}"
            out.mkdir()
            spies = record({name: proc.pid for name, proc in procs.items()}, out, args.rate)
            rounds = rounds_for(n, args.rounds)
            result = asyncio.run(ws_level(f"ws://127.0.0.1:{gateway_port}/ws", n, rounds,
                                          offset))
            finish(spies)
            result["cpu"] = breakdown(out, args.rate, int(result["turns"]))
            levels[str(n)] = result
            offset += n * rounds
            if not args.keep:
                for raw in out.glob("*.txt"):
                    raw.unlink()
    finally:
        stop_all(list(procs.values()))
    print_table(levels)
    (BENCH / "profile.json").write_text(json.dumps(levels, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
