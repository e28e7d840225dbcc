"""Latency at 1 conversation, the stock bot and Kefu's cluster taking turns (issue 13 §4).

``bench/scale.py`` runs one stack after the other, minutes apart, and level 1 is each
stack's first turns after its start; this machine's speed moves between runs by more than
the two stacks differ at 1 conversation. Here both stacks are up at once (the same ones
``scale.py`` starts), each warmed up, and answer one conversation at a time, the stock bot's
and the cluster's alternating (which goes first swaps every pair), so both are measured
under the same moment of the machine. Each has the other's idle processes beside it: their
CPU while nothing is asked is measured first and printed (the cluster's pollers, mostly).

    .venv/bin/python bench/scale_alternate.py 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proc_cpu import spent  # noqa: E402
from scale import (BENCH, HOME, ROOT, WARMUP, Stack, cell, start_cluster, start_stock,  # noqa: E402
                   stop_tree)
from scale_turns import Tally, summary  # noqa: E402

IDLE_SECONDS = 5.0  # each stack's CPU while nothing is asked of it


def alternate(stacks: dict[str, Stack], pairs: int) -> dict[str, Any]:
    """Both stacks' turns at 1 conversation, ``pairs`` conversations each, taking turns."""
    tallies = {name: Tally() for name in stacks}
    idle: dict[str, float] = {}

    async def run() -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            for stack in stacks.values():
                assert stack.conversation is not None
                for k in range(WARMUP):
                    await stack.conversation(session, k, Tally())
            before = {name: stack.meter.snapshot() for name, stack in stacks.items()
                      if stack.meter is not None}
            await asyncio.sleep(IDLE_SECONDS)  # what each stack costs the other doing nothing
            for name, snap in before.items():
                groups, _machine = spent(snap, stacks[name].meter.snapshot())  # type: ignore
                idle[name] = round(sum(v for k, v in groups.items() if k != "load generator")
                                   / IDLE_SECONDS, 3)
            for i in range(pairs):
                order = list(stacks) if i % 2 == 0 else list(reversed(stacks))
                for name in order:
                    await stacks[name].conversation(session, WARMUP + i, tallies[name])

    asyncio.run(run())
    found = {name: summary(tally, 0.0) for name, tally in tallies.items()}
    for name, result in found.items():
        result.pop("throughput")  # one conversation at a time, with waits: not a rate
        result["idle_cores"] = idle.get(name)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", type=int, nargs="?", default=60,
                        help="conversations each stack answers, taking turns")
    parser.add_argument("--turn-timeout", type=float, default=120.0)
    parser.add_argument("--stock-script", choices=("kefu", "moodbot"), default="kefu")
    parser.add_argument("--database-url",
                        default="postgresql+psycopg://postgres@127.0.0.1:5432/kefu_bench_scale")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()
    HOME.mkdir(parents=True, exist_ok=True)
    stacks: dict[str, Stack] = {}
    try:
        stacks["stock"] = start_stock(args.turn_timeout, args.stock_script)
        stacks["cluster"] = start_cluster(WARMUP + args.pairs, args.turn_timeout,
                                          args.database_url, args.redis_url)
        for stack in stacks.values():
            stack.ready()
        found = alternate(stacks, args.pairs)
    finally:
        for stack in stacks.values():
            if stack.proc is not None:
                stop_tree(stack.proc)
    print("| stack | ok turns | p50 ms | p95 ms | p99 ms | errors | cores used idle |")
    print("|---|---|---|---|---|---|---|")
    for name, result in found.items():
        print(f"| {name} | {result['ok_turns']} | {cell(result['p50_ms'], 1)} | "
              f"{cell(result['p95_ms'], 1)} | {cell(result['p99_ms'], 1)} | "
              f"{sum(result['errors'].values())} | {cell(result['idle_cores'], 3)} |")
    stock, cluster = found["stock"]["p50_ms"], found["cluster"]["p50_ms"]
    if stock and cluster:
        print(f"\np50 at 1, taking turns: cluster {cluster:.1f} ms vs stock {stock:.1f} ms "
              f"({cluster / stock:.2f}; target <= 1)")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    out = BENCH / "scale-alternate.json"
    out.write_text(json.dumps({"commit": commit, "pairs": args.pairs, "results": found},
                              indent=2, ensure_ascii=False))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
