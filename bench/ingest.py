"""A shop's data coming in at scale: the CSV importer against the shop API, on PostgreSQL.

Works in its own PostgreSQL database (``kefu_bench_ingest`` unless ``--database-url``, whose
name must contain "bench"; created when missing, emptied (schema dropped) and migrated with
``ticketing.core.migrate`` on every run, so each run starts from nothing). Generates a shop as
CSV files in a temporary directory: ``--orders`` orders (1-3 items each, one line per item,
states across the whole order flow, times more than 3 days old so nobody is told), over
``--orders / 50`` products and ``--orders / 4`` customers (each with an encrypted phone and
address), plus a few deliberately bad order lines whose line numbers and error codes are known.

(a) CSV: runs ``python -m ticketing.shop.ingest.csv_import`` as a child process per file
(products, customers, then orders), timing each and reading the child's peak memory
(``ru_maxrss`` from ``os.wait4``); checks that every bad line is reported at its line number
with its code (``--errors`` file); then imports orders.csv again and verifies by counts that
nothing changed (every order ``unchanged``, the bad lines refused again, the table counts the
same).

(b) API: starts the desk web process (``python -m ticketing.web``) on a free 127.0.0.1 port,
creates an admin and a ``shop:write`` token (``python -m ticketing.web.tokens``), and POSTs
``--api-orders`` new orders (other numbers, same customers and products) in batches of 1,000
to ``/api/v1/shop/orders`` with httpx, one batch at a time; a 429 is waited out
(``Retry-After``) and counted. Reports the median and p95 batch latency and orders/s.

Prints both side by side in one table. Timings are never asserted.

    .venv/bin/python bench/ingest.py [--orders 100000] [--api-orders 20000]
        [--database-url URL] [--keep DIR]
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from sqlalchemy import Engine, create_engine, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from bench_db import check_database_url, ensure_database  # noqa: E402
from turn_latency import free_port, start, stop_all  # noqa: E402

from bot.assistant import wait_until_up  # noqa: E402
from ticketing.core import migrate  # noqa: E402
from ticketing.core.db import make_engine, make_session_factory  # noqa: E402
from ticketing.core.models import Agent, Customer, Order, OrderItem, Product, Role  # noqa: E402
from ticketing.shop.ingest.csv_columns import LAYOUTS  # noqa: E402

BENCH = ROOT / "var" / "bench" / "ingest"
DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/kefu_bench_ingest"
PII_KEY = base64.b64encode(hashlib.sha256(b"kefu bench ingest pii").digest()).decode()
ADMIN = "bench.shop"
BATCH = 1000
SHOP_ZONE = timezone(timedelta(hours=8))
STATES = {"paid": 20, "shipped": 20, "delivered": 15, "completed": 35, "cancelled": 5,
          "pending_payment": 5}
STEPS = ("paid_at", "shipped_at", "delivered_at", "completed_at")
STEP_OF = {"pending_payment": 0, "paid": 1, "shipped": 2, "delivered": 3, "completed": 4}
# (what is wrong, the order line's changes, the code the importer must report)
BAD_LINES = (
    ("unknown product", {"item_product": "P-NOPE"}, "unknown_product"),
    ("short order number", {"number": "12345"}, "invalid_order_number"),
    ("refunded more than paid", {"refunded_cents": "99999999"}, "refunded_exceeds_paid"),
    ("unknown state", {"state": "lost"}, "unknown_state"),
)


# --- the database --------------------------------------------------------------------------------
def fresh_database(url: str) -> None:
    """Create the database when missing, drop whatever it holds, migrate it to the newest."""
    ensure_database(url, check_database_url(url, "bench/ingest.py"))
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
    migrate.upgrade(url)


def table_counts(engine: Engine) -> dict[str, int]:
    with make_session_factory(engine)() as session:
        return {model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
                for model in (Product, Customer, Order, OrderItem)}


# --- the generated shop --------------------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    orders: int

    @property
    def products(self) -> int:
        return max(self.orders // 50, 20)

    @property
    def customers(self) -> int:
        return max(self.orders // 4, 10)


@dataclass
class Files:
    products: Path
    customers: Path
    orders: Path
    lines: dict[str, int] = field(default_factory=dict)
    bad: dict[int, str] = field(default_factory=dict)  # line → the code it must get


def _iso(moment: datetime) -> str:
    return moment.astimezone(SHOP_ZONE).isoformat(timespec="seconds")


def _cells(layout: str, values: dict[str, Any]) -> list[str]:
    return ["" if values.get(c) is None else str(values[c]) for c in LAYOUTS[layout].columns]


def order_lines(rng: random.Random, shape: Shape, number: int, now: datetime
                ) -> list[dict[str, Any]]:
    """One order as CSV lines (one per item); ``number`` makes its 16-digit order number."""
    state = rng.choices(list(STATES), weights=list(STATES.values()))[0]
    created = now - timedelta(days=4 + rng.random() * 360)
    items = [(f"P-{rng.randrange(shape.products)}", rng.randint(1, 3),
              rng.choice((990, 2900, 4990, 9900, 19900, 39900))) for _ in range(rng.randint(1, 3))]
    total = sum(quantity * price for _, quantity, price in items)
    reached = STEP_OF.get(state, 1 if state == "cancelled" else 0)
    order: dict[str, Any] = {
        "number": f"2026{number:012d}", "customer": f"C-{rng.randrange(shape.customers)}",
        "state": state, "total_cents": total, "paid_cents": total if reached else 0,
        "refunded_cents": 0, "payment_method": rng.choice(("alipay", "wechat", "card")),
        "created_at": _iso(created)}
    moment = created
    for step in STEPS[:reached]:
        moment += timedelta(hours=rng.randint(1, 30))
        order[step] = _iso(moment)
    if state == "cancelled":
        moment += timedelta(hours=2)
        order["cancelled_at"] = _iso(moment)
    order["updated_at"] = _iso(moment)
    return [{**order, "item_product": product, "item_quantity": quantity,
             "item_unit_price_cents": price} for product, quantity, price in items]


def api_row(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The same order as the API takes it (the CSV lines folded back into one record)."""
    first = lines[0]
    row = {k: v for k, v in first.items() if not k.startswith("item_") and v is not None}
    row["items"] = [{"product": line["item_product"], "quantity": line["item_quantity"],
                     "unit_price_cents": line["item_unit_price_cents"]} for line in lines]
    return row


def write_shop(directory: Path, shape: Shape, now: datetime) -> Files:
    """The three CSV files, streamed to disk; the bad order lines spread through orders.csv."""
    rng = random.Random(20261130)
    files = Files(directory / "products.csv", directory / "customers.csv",
                  directory / "orders.csv")
    with files.products.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(LAYOUTS["products"].columns)
        for i in range(shape.products):
            out.writerow(_cells("products", {
                "external_id": f"P-{i}", "name_zh": f"商品{i}号 无线耳机",
                "name_en": f"Product {i} earbuds", "aliases": f"耳机{i}|豆子{i}",
                "category": ("electronics", "home", "fashion")[i % 3],
                "specs_zh": "颜色=白色|尺寸=M", "specs_en": "colour=white|size=M",
                "price_cents": 990 + 100 * (i % 400), "stock": i % 50,
                "no_reason_return_7d": "true", "updated_at": _iso(now - timedelta(days=30))}))
    files.lines["products"] = shape.products + 1
    with files.customers.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(LAYOUTS["customers"].columns)
        for i in range(shape.customers):
            out.writerow(_cells("customers", {
                "external_id": f"C-{i}", "name": f"顾客{i}", "phone": f"13{i:09d}",
                "address": f"上海市浦东新区世纪大道{i}号", "language": ("zh", "en")[i % 5 == 0],
                "segment": ("regular", "vip", "potential")[i % 3],
                "updated_at": _iso(now - timedelta(days=30))}))
    files.lines["customers"] = shape.customers + 1
    bad_at = {shape.orders * (k + 1) // (len(BAD_LINES) + 1): k for k in range(len(BAD_LINES))}
    line = 1
    with files.orders.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(LAYOUTS["orders"].columns)
        for n in range(shape.orders):
            for values in order_lines(rng, shape, n, now):
                out.writerow(_cells("orders", values))
                line += 1
            if n in bad_at:
                _what, changes, code = BAD_LINES[bad_at[n]]
                [bad] = order_lines(rng, shape, 10 ** 11 + n, now)[:1]
                bad.update(changes, **({"paid_cents": bad["total_cents"], "state": "paid"}
                                       if code == "refunded_exceeds_paid" else {}))
                out.writerow(_cells("orders", bad))
                line += 1
                files.bad[line] = code
    files.lines["orders"] = line
    return files


# --- (a) the CSV importer as a child process -----------------------------------------------------
@dataclass
class ImportRun:
    seconds: float
    peak_mb: float
    exit_code: int
    summary: str
    counts: dict[str, int]


def child_env(database_url: str, port: int | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    env.update(KEFU_DATABASE_URL=database_url, KEFU_VAR_DIR=str(BENCH), KEFU_PII_KEY=PII_KEY,
               KEFU_DEMO_PAGE="off", KEFU_AUTO_ASSIGN_AFTER="off", PYTHONPATH=str(ROOT))
    if port is not None:
        env.update(KEFU_DESK_HOST="127.0.0.1", KEFU_DESK_PORT=str(port))
    return env


def run_import(database_url: str, path: Path, kind: str, errors: Path, log: Path) -> ImportRun:
    """One import in a child process: wall time, its own peak RSS, its summary's counts."""
    argv = [sys.executable, "-m", "ticketing.shop.ingest.csv_import", "import", str(path),
            "--kind", kind, "--no-notify", "--errors", str(errors)]
    with (log.with_suffix(".out")).open("w") as out, log.open("w") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, env=child_env(database_url), stdout=out,
                                stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    summary = log.with_suffix(".out").read_text(encoding="utf-8")
    lines = summary.splitlines()
    if proc.returncode not in (0, 1) or len(lines) < 2:
        raise RuntimeError(f"import of {path.name} failed ({proc.returncode}): see {log}")
    counts = {name: int(figure.replace(",", "")) for name, figure in
              (part.split(" ") for part in lines[1].split(", "))}
    return ImportRun(seconds, usage.ru_maxrss / 1024, proc.returncode, lines[0], counts)


def reported_lines(errors: Path) -> dict[int, str]:
    with errors.open(encoding="utf-8-sig", newline="") as handle:
        return {int(row["line"]): row["code"] for row in csv.DictReader(handle)}


# --- (b) the shop API ----------------------------------------------------------------------------
@dataclass
class ApiRun:
    orders: int
    seconds: float
    latencies: list[float]
    waited: float
    refused_429: int
    counts: dict[str, int]
    desk_peak_mb: float


def make_admin(engine: Engine) -> None:
    with make_session_factory(engine).begin() as session:
        session.add(Agent(login=ADMIN, display_name="Bench shop feed", first_name="Bench",
                          role=Role.ADMIN))


def create_token(database_url: str) -> str:
    made = subprocess.run(
        [sys.executable, "-m", "ticketing.web.tokens", "create", "--login", ADMIN, "--name",
         "bench ingest", "--scope", "shop:write"], cwd=ROOT, env=child_env(database_url),
        capture_output=True, text=True, check=True)
    return made.stdout.splitlines()[1].strip()


def peak_mb(pid: int) -> float:
    """The process's peak resident memory so far (Linux ``VmHWM``)."""
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1]) / 1024
    return float("nan")


def api_batches(shape: Shape, count: int, now: datetime) -> Iterator[list[dict[str, Any]]]:
    rng = random.Random(20261201)
    batch: list[dict[str, Any]] = []
    for n in range(count):
        batch.append(api_row(order_lines(rng, shape, 5 * 10 ** 11 + n, now)))
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def measure_api(database_url: str, engine: Engine, shape: Shape, count: int, now: datetime
                ) -> ApiRun:
    make_admin(engine)
    secret = create_token(database_url)
    port = free_port()
    desk = start([sys.executable, "-m", "ticketing.web"], child_env(database_url, port), ROOT,
                 BENCH / "desk.log")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base}/health", process=desk, timeout=120)
        latencies: list[float] = []
        counts: dict[str, int] = {}
        waited, refused = 0.0, 0
        with httpx.Client(base_url=base, timeout=300,
                          headers={"Authorization": f"Bearer {secret}"}) as client:
            started = time.perf_counter()
            for batch in api_batches(shape, count, now):
                while True:
                    sent = time.perf_counter()
                    answer = client.post("/api/v1/shop/orders", json={"rows": batch})
                    if answer.status_code != 429:
                        break
                    refused += 1
                    pause = float(answer.headers.get("Retry-After", "1"))
                    waited += pause
                    time.sleep(pause)
                latencies.append(time.perf_counter() - sent)
                answer.raise_for_status()
                for status, n in answer.json()["counts"].items():
                    counts[status] = counts.get(status, 0) + n
            seconds = time.perf_counter() - started
        return ApiRun(count, seconds, latencies, waited, refused, counts, peak_mb(desk.pid))
    finally:
        stop_all([desk])


# --- the report ----------------------------------------------------------------------------------
def print_table(orders: ImportRun, again: ImportRun, api: ApiRun, order_count: int,
                lines: int) -> None:
    rows = [
        ("orders sent", f"{order_count:,}", f"{order_count:,}", f"{api.orders:,}"),
        ("lines / requests", f"{lines:,} lines", f"{lines:,} lines",
         f"{len(api.latencies):,} POSTs of ≤{BATCH:,}"),
        ("outcome", _outcome(orders.counts), _outcome(again.counts), _outcome(api.counts)),
        ("wall time (s)", f"{orders.seconds:,.1f}", f"{again.seconds:,.1f}",
         f"{api.seconds:,.1f}"),
        ("orders/s", f"{order_count / orders.seconds:,.0f}",
         f"{order_count / again.seconds:,.0f}", f"{api.orders / api.seconds:,.0f}"),
        ("lines/s", f"{lines / orders.seconds:,.0f}", f"{lines / again.seconds:,.0f}", "-"),
        ("batch latency p50 / p95 (ms)", "-", "-",
         f"{statistics.median(api.latencies) * 1000:,.0f} / "
         f"{_p95(api.latencies) * 1000:,.0f}"),
        ("429s (s waited)", "-", "-", f"{api.refused_429} ({api.waited:.0f} s)"),
        ("peak RSS (MB)", f"{orders.peak_mb:,.0f} importer", f"{again.peak_mb:,.0f} importer",
         f"{api.desk_peak_mb:,.0f} desk process"),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    head = ("", "CSV import", "CSV re-import", "HTTP API")
    widths = [max(w, len(h)) for w, h in zip(widths, head)]
    print("\n" + " | ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths)))


def _outcome(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items() if v)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get(
        "KEFU_BENCH_INGEST_DATABASE_URL") or DEFAULT_DATABASE)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--api-orders", type=int, default=20_000)
    parser.add_argument("--keep", type=Path, help="write the CSV files here and keep them")
    args = parser.parse_args()
    if args.orders < 10 or args.api_orders < 1:
        sys.exit("--orders at least 10, --api-orders at least 1")
    BENCH.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the desk is stopped on the way out
    check_database_url(args.database_url, "bench/ingest.py")
    shape, now = Shape(args.orders), datetime.now(timezone.utc)
    fresh_database(args.database_url)
    engine = make_engine(args.database_url)
    with tempfile.TemporaryDirectory(prefix="kefu-bench-ingest-") as scratch:
        directory = args.keep or Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        files = write_shop(directory, shape, now)
        print(f"generated {shape.products:,} products, {shape.customers:,} customers, "
              f"{shape.orders:,} orders ({files.lines['orders'] - 1:,} order lines, "
              f"{len(files.bad)} of them bad on purpose) in "
              f"{time.perf_counter() - started:.1f} s, in {directory}", flush=True)
        for kind in ("products", "customers"):
            done = run_import(args.database_url, getattr(files, kind), kind,
                              BENCH / f"{kind}-errors.csv", BENCH / f"{kind}.log")
            print(f"csv {kind}: {done.summary}; peak RSS {done.peak_mb:,.0f} MB", flush=True)
            if done.exit_code != 0:
                sys.exit(f"{kind}.csv had refused lines: see {BENCH / (kind + '-errors.csv')}")
        orders = run_import(args.database_url, files.orders, "orders",
                            BENCH / "orders-errors.csv", BENCH / "orders.log")
        print(f"csv orders: {orders.summary}", flush=True)
        reported = reported_lines(BENCH / "orders-errors.csv")
        before = table_counts(engine)
        again = run_import(args.database_url, files.orders, "orders",
                           BENCH / "orders-again-errors.csv", BENCH / "orders-again.log")
        print(f"csv orders again: {again.summary}", flush=True)
        after = table_counts(engine)
    print("\nbad lines (line: expected code → reported):")
    for line, code in sorted(files.bad.items()):
        print(f"  {line:>9,}: {code} → {reported.get(line, 'NOT REPORTED')}")
    unexpected = sorted(set(reported) - set(files.bad))
    print(f"  all {len(files.bad)} reported at their line with their code: "
          f"{'yes' if reported == files.bad else 'NO'}"
          + (f"; unexpected lines {unexpected[:10]}" if unexpected else ""))
    unchanged = (again.counts.get("unchanged") == shape.orders
                 and again.counts.get("error") == len(files.bad)
                 and sum(again.counts.values()) == shape.orders + len(files.bad)
                 and before == after)
    print(f"re-import changed nothing: {'yes' if unchanged else 'NO'} (unchanged "
          f"{again.counts.get('unchanged', 0):,} of {shape.orders:,}; tables {after})")
    print(f"\napi: {args.api_orders:,} new orders in batches of {BATCH:,} …", flush=True)
    api = measure_api(args.database_url, engine, shape, args.api_orders, now)
    engine.dispose()
    print_table(orders, again, api, shape.orders + len(files.bad), files.lines["orders"])
    print(f"\nPostgreSQL {make_url(args.database_url).database}; CSV: one child process per "
          f"file, --batch {BATCH}, --no-notify; API: one request at a time, "
          f"{BATCH:,} orders a request.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
