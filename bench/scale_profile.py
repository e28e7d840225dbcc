"""Where a stack's CPU goes under bench/scale.py's load: py-spy over every Python process.

Why a separate pass: sampling costs CPU, so the measured levels run unprofiled and this pass
runs one more level (not in the table) while ``py-spy record`` samples each process of the
stack (bench/profile_turn.py's ``record``/``finish``, its rules sorting samples into the parts
of a turn, and its idle filter). Processes of one kind (two gateways, two Rasa servers) are
added up, so the result reads "CPU ms per ok turn of all gateways". Besides the parts, the
functions that cost most are listed: by own time (the leaf frame) and, for Kefu's own code,
by inclusive time (every sample with the function on its stack).

For the cluster the pass also counts PostgreSQL's transactions and row operations per turn
(pg_stat_database of the bench database) and Redis commands per turn (``INFO commandstats``:
server-wide, so other users of the same Redis show up too).
"""

from __future__ import annotations

import collections
import re
from pathlib import Path
from typing import Any

import psycopg
import redis
from profile_turn import PY_SPY, RULES, finish, is_idle, part_of, read_collapsed, record  # noqa: F401

FRAME = re.compile(r"^(?P<func>.+) \((?P<file>[^():]+)(?::\d+)?\)$")
OWN_CODE = ("gateway/", "bot/", "actions/", "ticketing/", "rasa_server.py", "rasa_client.py",
            "rasa_pool.py")
# leaves where a thread waits for a server or for work, whatever py-spy says: py-spy cannot
# tell a thread blocked inside C (psycopg's poll, a socket read, uvicorn's loop) from one
# computing; such samples are shown as waits and left out of the CPU total
WAITS = (("waiting for PostgreSQL", ("psycopg/connection.py:wait", "psycopg/waiting.py:")),
         ("waiting for Redis", ("redis/_parsers/socket.py:_read_from_socket",
                                "redis/connection.py:_read_from_socket")),
         ("idle event loop", ("uvicorn/_compat.py:asyncio_run", "uvloop/")))
PG_COUNTERS = ("xact_commit", "xact_rollback", "tup_returned", "tup_fetched", "tup_inserted",
               "tup_updated", "tup_deleted", "blks_read", "blks_hit")


def function_of(frame: str) -> str:
    """``func (path/file.py:12)`` → ``path/file.py:func`` (all lines of a function together)."""
    match = FRAME.match(frame.strip())
    return f"{match['file']}:{match['func']}" if match else frame.strip()


def sample(pids: dict[str, int], out: Path, rate: int) -> dict[str, Any]:
    """py-spy on each named process until :func:`finish` is called on the result."""
    out.mkdir(parents=True, exist_ok=True)
    return record(pids, out, rate)


def breakdown(out: Path, names: dict[str, str], rate: int, turns: int,
              top: int = 8) -> dict[str, dict[str, Any]]:
    """Per kind of process: CPU ms per turn by part, the top functions by own and inclusive
    time. ``names`` maps each recorded name (``gateway-0``) to its kind (``gateway``)."""
    per_turn = 1000 / rate / max(turns, 1)
    kinds: dict[str, dict[str, collections.Counter[str]]] = {}
    for name, kind in names.items():
        counters = kinds.setdefault(kind, {"parts": collections.Counter(),
                                           "own": collections.Counter(),
                                           "inclusive": collections.Counter()})
        counters.setdefault("waits", collections.Counter())
        for stack, count in read_collapsed(out / f"{name}.txt").items():
            if is_idle(stack):
                continue
            frames = [function_of(f) for f in stack.split(";")]
            wait = next((label for label, leaves in WAITS
                         if any(frames[-1].startswith(leaf) for leaf in leaves)), None)
            if wait is not None:
                counters["waits"][wait] += count
                continue
            part = part_of(kind, stack) if kind in RULES else "all"
            counters["parts"][part] += count
            counters["own"][frames[-1]] += count
            for function in set(frames):
                if any(marker in function for marker in OWN_CODE):
                    counters["inclusive"][function] += count
    table: dict[str, dict[str, Any]] = {}
    for kind, counters in kinds.items():
        table[kind] = {
            "total_ms": round(sum(counters["parts"].values()) * per_turn, 1),
            "parts": {p: round(c * per_turn, 1) for p, c in counters["parts"].most_common()},
            "waits_ms": {w: round(c * per_turn, 1) for w, c in counters["waits"].most_common()},
            "top_own": {f: round(c * per_turn, 1) for f, c in counters["own"].most_common(top)},
            "top_kefu_inclusive": {f: round(c * per_turn, 1)
                                   for f, c in counters["inclusive"].most_common(top)},
        }
    return dict(sorted(table.items(), key=lambda item: -item[1]["total_ms"]))


def postgres_counters(database_url: str) -> dict[str, int]:
    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    name = url.rsplit("/", 1)[-1]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(f"SELECT {', '.join(PG_COUNTERS)} FROM pg_stat_database "
                           "WHERE datname = %s", (name,)).fetchone()
    return dict(zip(PG_COUNTERS, row or (0,) * len(PG_COUNTERS)))


def redis_counters(redis_url: str) -> dict[str, int]:
    stats = redis.Redis.from_url(redis_url).info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def per_turn(before: dict[str, int], after: dict[str, int], turns: int,
             top: int | None = None) -> dict[str, float]:
    deltas = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    ordered = sorted(((k, v) for k, v in deltas.items() if v), key=lambda kv: -kv[1])[:top]
    return {k: round(v / max(turns, 1), 2) for k, v in ordered}


def print_profile(name: str, n: int, result: dict[str, Any]) -> None:
    print(f"\n== profile of {name} at {n} conversations: {result['ok_turns']} ok turns, "
          f"{result['throughput']:.1f} turns/s (sampled, not in the table) — CPU ms per turn")
    measured = result.get("cpu_ms_per_turn", {}).get("by_process", {})
    for kind, data in result["profile"].items():
        print(f"  {kind:<10} {data['total_ms']:7.1f} ms sampled, "
              f"{measured.get(kind, 0.0):.1f} ms measured (/proc); not counted, summed over "
              f"threads: " + (", ".join(f"{w} {ms}" for w, ms in data["waits_ms"].items())
                              or "no waits"))
        total = data["total_ms"] or 1.0
        for part, ms in data["parts"].items():
            print(f"      {part:<36} {ms:7.1f}  ({ms / total * 100:4.1f} %)")
        print("      top own time: " + "; ".join(f"{f} {ms}" for f, ms in data["top_own"].items()))
        print("      top Kefu code (inclusive): "
              + "; ".join(f"{f} {ms}" for f, ms in data["top_kefu_inclusive"].items()))
    for label in ("postgres_per_turn", "redis_calls_per_turn"):
        if label in result:
            print(f"  {label}: {result[label]}")
