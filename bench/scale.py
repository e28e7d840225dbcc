"""Scale, side by side in one run: stock Rasa, Kefu as `make run`, Kefu's cluster (issue 13 §4).

The same 6-turn bilingual script (turn_latency's KEFU_ZH / KEFU_EN, every other conversation in
English) at 1, 10, 50 and 100 concurrent conversations (a level of N holds N conversations in
flight, each lane starting its next one as its last ends, for ``--rounds`` x N conversations),
against three stacks started one after the other (never two at once), each on free 127.0.0.1
ports:

- ``stock``: a stock ``rasa init`` bot over its REST channel (turn_latency builds and caches it);
- ``run``: Kefu as ``make run`` starts it (scripts/run_stack.py: one gateway, Rasa, action
  server, SLA worker, webhooks, alerts, desk) on a fresh SQLite demo shop under
  var/bench/scale/run/, through the gateway's widget WebSocket;
- ``cluster``: scripts/run_cluster.py with 2 gateways, 2 Rasa + 2 action servers, 1 worker, 1
  webhook sender, 1 desk on PostgreSQL (``--database-url``, dropped and created afresh) and
  Redis (``--redis-url``, its database flushed), through the widget WebSocket; conversation k
  talks to gateway k mod 2 only.

The widget's customers are verified demo customers (visitors v-gw-N linked to buyers, as in
bench/gateway_load.py). Per stack and level: ok turns/s (and the ratio to stock's), p50/p95/p99
turn latency of every answered turn, errors by kind (bench/scale_turns.py), and CPU per ok
turn: the stack's processes (utime+stime, reaped children included, from /proc), for the
cluster also its PostgreSQL backends and redis-server (bench/proc_cpu.py), and the whole
machine's (/proc/stat, so other work on the machine shows there). Prints a markdown table and
the targets of issue 13, writes var/bench/scale.json.

    .venv/bin/python bench/scale.py [--levels 1 10 50 100] [--rounds 2] [--stacks stock run cluster]
                                    [--turn-timeout 120] [--database-url ...] [--redis-url ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import aiohttp  # noqa: E402
import psycopg  # noqa: E402
import scale_profile  # noqa: E402
import redis  # noqa: E402
from gateway_load import prepare  # noqa: E402
from profile_turn import finish  # noqa: E402
from proc_cpu import CpuMeter, Snapshot, cmdline, read_stat, spent, tree  # noqa: E402
from scale_turns import Tally, rest_conversation, run_level, summary, widget_conversation  # noqa: E402
from turn_latency import (  # noqa: E402
    KEFU_EN,
    KEFU_ZH,
    STOCK,
    STOCK_SCRIPT,
    ensure_stock_bot,
    free_port,
    start,
)

from bot import assistant  # noqa: E402

BENCH = ROOT / "var" / "bench"
HOME = BENCH / "scale"
STACKS = ("stock", "run", "cluster")
WARMUP = 6  # conversations before the first level: TensorFlow graphs, pools, every Rasa server


def script_for(k: int) -> list[str]:
    return KEFU_EN if k % 2 else KEFU_ZH


def process_kind(command: str) -> str:
    """Which part of a stack a process is, from its command line."""
    if command.endswith(" -m bot"):
        return "gateway"
    for needle, kind in (("scripts/run_cluster.py", "supervisor"),
                         ("scripts/run_stack.py", "supervisor"),
                         ("rasa_server", "rasa"), ("rasa run", "rasa"), ("rasa_sdk", "actions"),
                         ("actions.server", "actions"),
                         ("ticketing.desk.worker", "worker"),
                         ("ticketing.desk.webhooks", "webhooks"), ("ticketing.web", "desk"),
                         ("ticketing.reports.jobs", "alerts")):
        if needle in command:
            return kind
    return "other"


def free_base(taken: set[int], count: int) -> int:
    """A free port p with p + 10·i free too for i < count (run_cluster's port steps)."""
    while True:
        base = free_port()
        ports = [base + 10 * i for i in range(count)]
        if ports[-1] > 65000 or taken & set(ports):
            continue
        try:
            for port in ports[1:]:
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        taken.update(ports)
        return base


def wait_for_line(proc: subprocess.Popen[bytes], log: Path, line: str, timeout: float) -> None:
    """Until ``line`` appears in the log of ``proc``; RuntimeError if it exits, TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{log.name}: exited with {proc.returncode} before {line!r}")
        if log.exists() and line in log.read_text(errors="replace"):
            return
        time.sleep(1.0)
    raise TimeoutError(f"{log.name}: no {line!r} after {timeout:.0f} s")


def stop_tree(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> list[int]:
    """SIGTERM the stack's root (it stops its children), then SIGKILL whatever of its tree is
    still alive; returns the pids that had to be killed."""
    members = {(s.pid, s.starttime) for s in tree([proc.pid]) if s.pid != proc.pid}
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    killed = []
    deadline = time.monotonic() + 10
    for pid, started in members:
        while time.monotonic() < deadline and _alive(pid, started):
            time.sleep(0.2)
        if _alive(pid, started):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed


def _alive(pid: int, starttime: int) -> bool:
    """The same process (not a reused pid), and not a zombie waiting for its parent."""
    stat = read_stat(pid)
    if stat is None or stat.starttime != starttime:
        return False
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


@dataclass
class Stack:
    """One stack under test: how to start it, talk to it, measure it and stop it."""

    name: str
    proc: subprocess.Popen[bytes] | None = None
    meter: CpuMeter | None = None
    conversation: Callable[[aiohttp.ClientSession, int, Tally], Any] | None = None
    ready: Callable[[], None] = lambda: None  # waits until the stack answers
    notes: dict[str, Any] = field(default_factory=dict)


def start_stock(turn_timeout: float, stock_script: str) -> Stack:
    trained = ensure_stock_bot()
    port = free_port()
    log = HOME / "stock.log"
    proc = start([str(assistant.RASA_BIN), "run", "--model", "models", "--interface", "127.0.0.1",
                  "--port", str(port)], assistant.rasa_env(), STOCK, log)
    stack = Stack("stock", proc, CpuMeter(roots=lambda: [proc.pid], label=process_kind))
    stack.ready = partial(assistant.wait_until_up, f"http://127.0.0.1:{port}/", process=proc,
                          timeout=300)
    url = f"http://127.0.0.1:{port}/webhooks/rest/webhook"
    script = (lambda k: STOCK_SCRIPT) if stock_script == "moodbot" else script_for
    stack.conversation = lambda session, k, tally: rest_conversation(
        session, url, f"scale-{k}", script(k), tally, turn_timeout)
    if trained is not None:
        stack.notes["stock_training_s"] = round(trained, 1)
    return stack


def widget_stack(name: str, proc: subprocess.Popen[bytes], meter: CpuMeter,
                 gateway_ports: list[int], turn_timeout: float) -> Stack:
    urls = [f"ws://127.0.0.1:{port}/ws" for port in gateway_ports]

    async def conversation(session: aiohttp.ClientSession, k: int, tally: Tally) -> None:
        await widget_conversation(session, urls[k % len(urls)], f"v-gw-{k:06d}", script_for(k),
                                  tally, turn_timeout)

    return Stack(name, proc, meter, conversation, {"gateways": urls})


def kefu_env(var: Path, base: dict[str, str], ports: dict[str, int]) -> dict[str, str]:
    env = dict(base, KEFU_GATEWAY_PORT=str(ports["gateway"]), KEFU_DESK_PORT=str(ports["desk"]),
               KEFU_RASA_PORT=str(ports["rasa"]), KEFU_ACTION_PORT=str(ports["action"]),
               KEFU_VAR_DIR=str(var), PYTHONPATH=str(ROOT))
    return env


def start_run(visitors: int, turn_timeout: float) -> Stack:
    """`make run`'s processes on a fresh SQLite demo shop with linked widget visitors."""
    var = HOME / "run"
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    env = prepare(var, visitors)  # gateway_load's demo shop: v-gw-N verified
    taken: set[int] = set()
    ports = {kind: free_base(taken, 1) for kind in ("gateway", "desk", "rasa", "action")}
    log = var / "run_stack.log"
    proc = start([sys.executable, "-u", str(ROOT / "scripts" / "run_stack.py")],
                 kefu_env(var, env, ports), ROOT, log)
    meter = CpuMeter(roots=lambda: [proc.pid], label=process_kind)
    stack = widget_stack("run", proc, meter, [ports["gateway"]], turn_timeout)
    stack.ready = partial(wait_for_line, proc, log, "all services ready", 600)
    return stack


def reset_postgres(url: str) -> str:
    """Drop and create the bench database; returns its name."""
    parts = urlsplit(url.replace("postgresql+psycopg://", "postgresql://"))
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def prepare_postgres(var: Path, database_url: str, visitors: int) -> dict[str, str]:
    """gateway_load's demo shop and verified visitors v-gw-N, on PostgreSQL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    env.update(KEFU_VAR_DIR=str(var), KEFU_DATABASE_URL=database_url,
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
    for i in range({visitors}):
        customers.link_identity(session, channel="widget", external_id=f"v-gw-{{i:06d}}",
                                customer_id=buyers[i % len(buyers)], method="demo")
"""
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
    return env


def start_cluster(visitors: int, turn_timeout: float, database_url: str,
                  redis_url: str) -> Stack:
    var = HOME / "cluster"
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    database = reset_postgres(database_url)
    redis.Redis.from_url(redis_url).flushdb()
    env = prepare_postgres(var, database_url, visitors)
    env["KEFU_REDIS_URL"] = redis_url
    taken: set[int] = set()
    ports = {kind: free_base(taken, 2) for kind in ("gateway", "desk", "rasa", "action")}
    for kind in ("WORKER", "WEBHOOKS", "ALERTS"):  # background processes' /metrics ports
        env[f"KEFU_{kind}_METRICS_PORT"] = str(free_base(taken, 2))
    log = var / "run_cluster.log"
    proc = start([sys.executable, "-u", str(ROOT / "scripts" / "run_cluster.py"),
                  "--gateways", "2", "--rasa", "2", "--workers", "1", "--webhooks", "1",
                  "--desks", "1"], kefu_env(var, env, ports), ROOT, log)
    meter = CpuMeter(roots=lambda: [proc.pid], label=process_kind, postgres_db=database,
                     redis_port=urlsplit(redis_url).port or 6379)
    stack = widget_stack("cluster", proc, meter,
                         [ports["gateway"], ports["gateway"] + 10], turn_timeout)
    stack.notes["services"] = {"database_url": database_url, "redis_url": redis_url}
    stack.ready = partial(wait_for_line, proc, log, "all services ready", 600)
    return stack


def measure(stack: Stack, levels: list[int], rounds: int, first: int,
            profile: tuple[int, int] | None = None) -> dict[str, Any]:
    """Warm up, then every level: its summary and CPU seconds per ok turn; then, with
    ``profile`` = (conversations, samples per second), one sampled level (not in the table)."""
    assert stack.conversation is not None and stack.meter is not None
    meter = stack.meter
    asyncio.run(run_level(stack.conversation, WARMUP, 1, first))
    stack.notes["processes"] = sorted(f"{process_kind(cmdline(s.pid))}: {cmdline(s.pid)[:160]}"
                                      for s in tree(meter.roots()))
    k = first + WARMUP
    results: dict[str, Any] = {}
    for n in levels:
        marks: list[Snapshot] = []
        tally, elapsed = asyncio.run(run_level(stack.conversation, n, rounds, k,
                                               between=lambda: marks.append(meter.snapshot())))
        groups, machine = spent(marks[0], meter.snapshot())
        k += n * rounds
        result = summary(tally, elapsed)
        ok = max(result["ok_turns"], 1)
        load = groups.pop("load generator", 0.0)
        result["cpu_ms_per_turn"] = {
            "stack": round(sum(groups.values()) * 1000 / ok, 1),
            "machine": round(machine * 1000 / ok, 1),
            "load_generator": round(load * 1000 / ok, 1),
            "by_process": {name: round(s * 1000 / ok, 1)
                           for name, s in sorted(groups.items(), key=lambda i: -i[1])},
        }
        result["machine_busy_cores"] = round(machine / elapsed, 2) if elapsed else None
        results[str(n)] = result
        print(f"  {stack.name:<8} {n:>4} conversations: {result['ok_turns']} ok turns, "
              f"{result['throughput']:.1f}/s, p50 {result['p50_ms']} ms, "
              f"errors {result['errors']}", flush=True)
    if profile:
        n, rate = profile
        try:
            stack.notes["profile"] = profile_level(stack, n, rounds, k, rate)
            scale_profile.print_profile(stack.name, n, stack.notes["profile"])
        except Exception as exc:  # the measured levels stand without it
            print(f"  profile of {stack.name} failed: {type(exc).__name__}: {exc}", flush=True)
            stack.notes["profile"] = {"failed": f"{type(exc).__name__}: {exc}"}
    return results


def profile_level(stack: Stack, n: int, rounds: int, first: int, rate: int) -> dict[str, Any]:
    """One more level of ``n`` conversations with py-spy on every Python process of the stack
    (the supervisor aside): CPU per turn by part and function (bench/scale_profile.py)."""
    assert stack.conversation is not None and stack.meter is not None
    meter = stack.meter
    names: dict[str, str] = {}
    pids: dict[str, int] = {}
    for s in sorted(tree(stack.meter.roots()), key=lambda s: s.pid):
        kind = process_kind(cmdline(s.pid))
        if kind in ("supervisor", "other"):
            continue
        name = f"{kind}-{sum(1 for k in names.values() if k == kind)}"
        names[name], pids[name] = kind, s.pid
    out = HOME / f"profile-{stack.name}"
    shutil.rmtree(out, ignore_errors=True)
    services = stack.notes.get("services") or {}
    pg_before = (scale_profile.postgres_counters(services["database_url"])
                 if "database_url" in services else None)
    redis_before = (scale_profile.redis_counters(services["redis_url"])
                    if "redis_url" in services else None)
    spies = scale_profile.sample(pids, out, rate)
    marks: list[Snapshot] = []
    try:
        tally, elapsed = asyncio.run(run_level(stack.conversation, n, rounds, first,
                                               between=lambda: marks.append(meter.snapshot())))
        groups, _machine = spent(marks[0], meter.snapshot())
    finally:
        finish(spies)
    result = summary(tally, elapsed)
    turns = result["ok_turns"]
    result["cpu_ms_per_turn"] = {"by_process": {
        name: round(s * 1000 / max(turns, 1), 1) for name, s in groups.items()}}
    result["profile"] = scale_profile.breakdown(out, names, rate, turns)
    if pg_before is not None:
        result["postgres_per_turn"] = scale_profile.per_turn(
            pg_before, scale_profile.postgres_counters(services["database_url"]), turns)
    if redis_before is not None:
        result["redis_calls_per_turn"] = scale_profile.per_turn(
            redis_before, scale_profile.redis_counters(services["redis_url"]), turns, top=12)
    return result


def cell(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}" if isinstance(value, float) else str(value)


def table(results: dict[str, dict[str, Any]], levels: list[int]) -> str:
    head = ("| conversations | stack | ok turns | turns/s | × stock | p50 ms | p95 ms | p99 ms "
            "| timeouts | apologies | fallback tickets | other errors | CPU ms/turn (stack) "
            "| CPU ms/turn (machine) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for n in levels:
        stock = results.get("stock", {}).get(str(n))
        for name in STACKS:
            r = results.get(name, {}).get(str(n))
            if r is None:
                continue
            ratio = (r["throughput"] / stock["throughput"]
                     if stock and stock["throughput"] else None)
            e, cpu = r["errors"], r["cpu_ms_per_turn"]
            lines.append(
                f"| {n} | {name} | {r['ok_turns']} | {r['throughput']:.1f} | "
                f"{cell(ratio, 2)} | {cell(r['p50_ms'])} | {cell(r['p95_ms'])} | "
                f"{cell(r['p99_ms'])} | {e['timeout']} | {e['apology']} | {e['fallback']} | "
                f"{e['other']} | {cpu['stack']:.1f} | {cpu['machine']:.1f} |")
    return "\n".join(lines)


def cpu_table(results: dict[str, dict[str, Any]], levels: list[int]) -> str:
    lines = ["| conversations | stack | CPU ms per ok turn, by process |", "|---|---|---|"]
    for n in levels:
        for name in STACKS:
            r = results.get(name, {}).get(str(n))
            if r is not None:
                parts = ", ".join(f"{kind} {ms:.1f}"
                                  for kind, ms in r["cpu_ms_per_turn"]["by_process"].items())
                lines.append(f"| {n} | {name} | {parts}; load generator "
                             f"{r['cpu_ms_per_turn']['load_generator']:.1f} |")
    return "\n".join(lines)


def targets(results: dict[str, dict[str, Any]]) -> list[str]:
    """Issue 13's targets, as lines (absent parts say what is missing)."""
    lines = []
    stock, cluster = results.get("stock", {}), results.get("cluster", {})
    if "50" in stock and "50" in cluster and stock["50"]["throughput"]:
        ratio = cluster["50"]["throughput"] / stock["50"]["throughput"]
        lines.append(f"cluster / stock at 50: {ratio:.2f}× (target ≥ 1.5)")
    if "1" in stock and "1" in cluster:
        lines.append(f"p50 at 1: Kefu cluster {cell(cluster['1']['p50_ms'])} ms vs stock "
                     f"{cell(stock['1']['p50_ms'])} ms (target ≤ stock)")
    run = results.get("run", {})
    if "50" in stock and "50" in run and stock["50"]["throughput"]:
        lines.append(f"make run / stock at 50: "
                     f"{run['50']['throughput'] / stock['50']['throughput']:.2f}×")
    return lines or ["targets: need the stock and cluster stacks at levels 1 and 50"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 10, 50, 100])
    parser.add_argument("--rounds", type=int, default=2,
                        help="conversations per lane: a level of N runs rounds x N "
                             "conversations, N at a time")
    parser.add_argument("--stacks", nargs="+", choices=STACKS, default=list(STACKS))
    parser.add_argument("--turn-timeout", type=float, default=120.0,
                        help="seconds a client waits for a turn's end before counting a timeout")
    parser.add_argument("--stock-script", choices=("kefu", "moodbot"), default="kefu",
                        help="the stock bot gets Kefu's bilingual script, or its own moodbot one")
    parser.add_argument("--profile", type=int, metavar="N",
                        help="after the levels, one more level of N conversations sampled by "
                             "py-spy (CPU per turn by process, part and function; not in the table)")
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--database-url",
                        default="postgresql+psycopg://postgres@127.0.0.1:5432/kefu_bench_scale")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()
    HOME.mkdir(parents=True, exist_ok=True)
    visitors = WARMUP + (sum(args.levels) + (args.profile or 0)) * args.rounds
    if args.profile and not scale_profile.PY_SPY.exists():
        print(f"--profile needs py-spy: {scale_profile.PY_SPY.parent}/pip install py-spy",
              file=sys.stderr)
        return 2
    run_info = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "levels": args.levels, "rounds": args.rounds, "stacks": args.stacks,
                "turn_timeout_s": args.turn_timeout, "stock_script": args.stock_script,
                "cores": os.cpu_count(), "loadavg_before": os.getloadavg()[0],
                "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                         capture_output=True, text=True).stdout.strip()}
    results: dict[str, dict[str, Any]] = {}
    notes: dict[str, Any] = {}
    for name in [s for s in STACKS if s in args.stacks]:
        print(f"== {name}: starting", flush=True)
        stack: Stack | None = None
        starter = {"stock": partial(start_stock, args.turn_timeout, args.stock_script),
                   "run": partial(start_run, visitors, args.turn_timeout),
                   "cluster": partial(start_cluster, visitors, args.turn_timeout,
                                      args.database_url, args.redis_url)}[name]
        try:
            stack = starter()
            stack.ready()
            results[name] = measure(stack, args.levels, args.rounds, first=0,
                                    profile=(args.profile, args.profile_rate)
                                    if args.profile else None)
            notes[name] = stack.notes
        except Exception as exc:  # a stack that fails is reported; the others still run
            print(f"== {name}: failed: {type(exc).__name__}: {exc}", flush=True)
            notes[name] = {"failed": f"{type(exc).__name__}: {exc}"}
        finally:
            if stack is not None and stack.proc is not None:
                killed = stop_tree(stack.proc)
                print(f"== {name}: stopped" + (f" (killed {killed})" if killed else ""),
                      flush=True)
    print()
    print(table(results, args.levels))
    print()
    print(cpu_table(results, args.levels))
    print()
    for line in targets(results):
        print(line)
    out = {"run": run_info, "results": results, "targets": targets(results), "notes": notes}
    (BENCH / "scale.json").write_text(json.dumps(out, indent=2, ensure_ascii=False))
    print(f"\nwritten: {BENCH / 'scale.json'}")
    return 0 if all(name in results for name in args.stacks) else 1


if __name__ == "__main__":
    sys.exit(main())
