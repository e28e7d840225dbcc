"""The CSV importer: every kind from its template, re-imports that change nothing, refused
lines named by their line number while the rest go in, dry runs that write nothing, Excel's
BOM, Chinese text, progress without a terminal, exit codes and the one audit row."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.ticketing.shop.ingest.shop_rows import NOW, ORDER_NO, at, outbox, seed
from ticketing.core.clock import aware
from ticketing.core.models import (
    AuditLog,
    Customer,
    Order,
    OutboxMessage,
    Product,
    RefundRequest,
    Shipment,
    TrackingEvent,
)
from ticketing.shop.ingest import csv_import
from ticketing.shop.ingest.csv_columns import LAYOUTS

TEMPLATES = Path(__file__).resolve().parents[4] / "docs" / "templates"
KINDS = ("products", "customers", "orders", "shipments", "refunds")  # the order they load in
PRODUCT_HEADER = "external_id,name_zh,name_en,category,price_cents,stock,updated_at"


class Run:
    """One run of the command: exit code, stdout, stderr."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def cli(session_factory, cipher, tmp_path):
    def run(kind: str, source: Path | str, *options: str, encoding: str = "utf-8",
            stderr: io.StringIO | None = None, every: float = 3600.0) -> Run:
        if isinstance(source, str):
            path = tmp_path / f"{kind}.csv"
            path.write_text(source, encoding=encoding)
            source = path
        out, err = io.StringIO(), stderr or io.StringIO()
        code = csv_import.run(["import", str(source), "--kind", kind, *options],
                              session_factory=session_factory, cipher=cipher, stdout=out,
                              stderr=err, now=lambda: NOW, progress_every=every)
        return Run(code, out.getvalue(), err.getvalue())

    return run


def _count(session_factory, model) -> int:
    with session_factory() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def _counts_line(run: Run) -> str:
    return run.out.splitlines()[1]


def test_every_template_imports_and_a_second_import_changes_nothing(cli, session_factory,
                                                                    cipher) -> None:
    for kind in KINDS:
        with (TEMPLATES / f"{kind}.csv").open(encoding="utf-8") as handle:
            assert next(csv.reader(handle)) == list(LAYOUTS[kind].columns)
        first = cli(kind, TEMPLATES / f"{kind}.csv")
        assert first.code == 0, first.err
        assert _counts_line(first) == "created 1, updated 0, unchanged 0, stale 0, error 0"
    for kind in KINDS:
        again = cli(kind, TEMPLATES / f"{kind}.csv")
        assert (again.code, _counts_line(again)) == (
            0, "created 0, updated 0, unchanged 1, stale 0, error 0"), again.err
    with session_factory() as s:
        product = s.scalars(select(Product)).one()
        assert product.aliases == ["豆子耳机", "蓝牙耳机"]
        assert product.specs == {"zh": {"颜色": "白色", "续航": "24小时"},
                                 "en": {"colour": "white", "battery": "24 h"}}
        assert (product.price_cents, product.stock, product.no_reason_return_7d) == (19900, 120,
                                                                                     True)
        person = s.scalars(select(Customer)).one()
        assert cipher.decrypt(person.phone_enc, field="phone") == "13800138000"
        order = s.scalars(select(Order)).one()
        assert [(i.quantity, i.unit_price_cents) for i in order.items] == [(2, 19900)]
        assert s.scalars(select(Shipment)).one().tracking_number == "SF1234567890123"
        assert s.scalars(select(TrackingEvent)).one().location_zh == "深圳"
        assert s.scalars(select(RefundRequest)).one().reason_text == "尺码偏小"
        audits = list(s.scalars(select(AuditLog).where(AuditLog.action == "shop.csv_import")))
    assert len(audits) == 10 and all(a.actor_type == "cli" for a in audits)
    assert audits[-1].target_id == "refunds" and audits[-1].details["unchanged"] == 1
    assert "13800138000" not in str([a.details for a in audits])


def test_an_order_takes_one_line_per_item_and_errors_name_the_items_line(
        cli, session_factory, cipher) -> None:
    with session_factory.begin() as s:
        seed(s, cipher)  # products P-1, customer C-1, order ORDER_NO
    cli("products", f"{PRODUCT_HEADER},sku\nP-2,手机壳,Phone case,accessories,2900,5,{at(5)},"
                    "CASE-1\n")
    header = ("number,customer,state,paid_cents,updated_at,item_product,item_quantity,"
              "item_unit_price_cents\n")
    text = (header
            + f"2026113000000002,C-1,paid,42700,{at(4)},P-1,2,19900\n"
            + "2026113000000002,,,,,CASE-1,1,2900\n"         # line 3: order columns left empty
            + f"2026113000000003,C-1,paid,19900,{at(4)},P-1,1,19900\n"
            + f"2026113000000003,C-1,paid,19900,{at(4)},P-404,1,1\n"  # line 5: unknown product
            + f"2026113000000004,C-1,paid,100,{at(4)},P-1,1,100\n"
            + f"2026113000000004,C-1,shipped,100,{at(4)},P-1,1,100\n"  # line 7: contradicts
            + f"2026113000000002,C-1,paid,42700,{at(4)},P-1,1,1\n")  # line 8: not with its own
    result = cli("orders", text)
    assert result.code == 1
    assert _counts_line(result) == "created 1, updated 0, unchanged 0, stale 0, error 3"
    refused = result.err.splitlines()
    assert refused[0] == ("line 5 (2026113000000003): unknown_product: items.1.product is not "
                          "a known product [item_product]")
    assert refused[1].startswith("line 7 (2026113000000004): invalid_input: state differs")
    assert refused[2].startswith("line 8 (2026113000000002): invalid_input: number was "
                                 "already at line 2")
    with session_factory() as s:
        order = s.scalars(select(Order).where(Order.number == "2026113000000002")).one()
        assert sorted((i.quantity, i.unit_price_cents) for i in order.items) == [(1, 2900),
                                                                               (2, 19900)]
        assert order.total_cents == 42700
        assert s.scalar(select(func.count()).select_from(Order)) == 2  # seeded + one


def test_a_bad_line_reports_its_line_number_and_the_rest_import(cli, session_factory,
                                                                tmp_path) -> None:
    text = ("external_id,name,phone,address,updated_at\n"
            f"C-1,张伟,13800138000,\"上海市浦东新区\n世纪大道100号\",{at(5)}\n"  # lines 2-3
            f"C-2,李娜,138-bad-phone,,{at(5)}\n"                                   # line 4
            f"C-3,王芳,13900139000,,{at(5)},surplus\n"                            # line 5
            "\n"
            f"C-4,{'长' * 121},,,{at(5)}\n"                                       # line 7
            f"C-5,Lucy,13700137000,,{at(5)}\n")
    errors = tmp_path / "errors.csv"
    result = cli("customers", text, "--errors", str(errors))
    assert result.code == 1
    assert result.err.splitlines() == [
        "line 4 (C-2): invalid_phone: phone is not a phone number [phone]",
        "line 5 (C-3): invalid_input: the line has 6 cells, the header 5 columns [row]",
        "line 7 (C-4): field_too_long: name is longer than 120 characters [name]",
    ]
    assert "138-bad" not in result.err + errors.read_text(encoding="utf-8-sig")
    with errors.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["line"], r["key"], r["code"], r["field"]) for r in rows] == [
        ("4", "C-2", "invalid_phone", "phone"), ("5", "C-3", "invalid_input", "row"),
        ("7", "C-4", "field_too_long", "name")]
    assert "8 lines, 5 customers" in result.out and "errors: " in result.out
    with session_factory() as s:
        assert sorted(s.scalars(select(Customer.external_id))) == ["C-1", "C-5"]


def test_dry_run_checks_against_the_database_and_writes_nothing(cli, session_factory,
                                                                cipher) -> None:
    with session_factory.begin() as s:
        seed(s, cipher)
    before = {m: _count(session_factory, m) for m in (Product, Order, AuditLog, OutboxMessage)}
    result = cli("orders", "number,customer,state,paid_cents,updated_at,item_product,"
                           "item_quantity,item_unit_price_cents\n"
                           f"2026113000000009,C-1,shipped,19900,{at(1)},P-1,1,19900\n"
                           f"2026113000000010,C-1,paid,500,{at(1)},P-404,1,500\n"
                           f"{ORDER_NO},C-1,pending_payment,0,{at(1)},P-1,2,19900\n",
                 "--dry-run")
    assert result.code == 1
    assert result.out.startswith("dry run, nothing written: orders.csv: 4 lines, 3 orders")
    assert _counts_line(result) == "created 1, updated 0, unchanged 0, stale 0, error 2"
    assert [line.split(": ")[1] for line in result.err.splitlines()] == [
        "unknown_product", "state_backwards"]
    assert {m: _count(session_factory, m) for m in before} == before  # no row, audit or notice
    clean = cli("products", f"{PRODUCT_HEADER}\nP-9,杯子,Cup,home,900,3,{at(1)}\n", "--dry-run")
    assert (clean.code, _counts_line(clean)) == (0, "created 1, updated 0, unchanged 0, "
                                                    "stale 0, error 0")
    assert _count(session_factory, Product) == before[Product]


def test_excel_bom_and_chinese_text_round_trip(cli, session_factory) -> None:
    text = (f"{PRODUCT_HEADER},aliases,specs_zh\n"
            f"P-1,「静音」无线耳机，白色,Quiet earbuds,电子产品,19900,3,{at(5)},"
            "\"[\"\"豆子|耳机\"\", \"\"静音耳机\"\"]\",\"{\"\"颜色\"\": \"\"白色\"\"}\"\n")
    result = cli("products", text, encoding="utf-8-sig")  # what Excel's "CSV UTF-8" writes
    assert result.code == 0, result.err
    with session_factory() as s:
        product = s.scalars(select(Product)).one()
        assert (product.external_id, product.name_zh, product.category) == (
            "P-1", "「静音」无线耳机，白色", "电子产品")
        assert product.aliases == ["豆子|耳机", "静音耳机"] and product.specs == {
            "zh": {"颜色": "白色"}}


def test_a_file_in_another_encoding_or_a_wrong_header_imports_nothing(cli, session_factory,
                                                                      tmp_path) -> None:
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes(f"{PRODUCT_HEADER}\nP-1,耳机,Earbuds,e,1,1,{at(5)}\n".encode("gbk"))
    refused = cli("products", gbk)
    assert refused.code == 2 and "line 2 is not utf-8-sig" in refused.err
    assert cli("products", gbk, "--encoding", "gb18030").code == 0
    typo = cli("customers", "external_id,nmae,updated_at\nC-1,张伟," + at(5) + "\n")
    assert typo.code == 2
    assert "unknown column 'nmae'" in typo.err and "missing column 'name'" in typo.err
    assert cli("customers", "").code == 2
    assert cli("products", tmp_path / "missing.csv").code == 2
    assert cli("products", gbk, "--batch", "1001").code == 2
    assert cli("coupons", gbk).code == 2  # argparse refuses the kind
    assert _count(session_factory, Customer) == 0 and _count(session_factory, Product) == 1


def test_updated_at_rules_and_local_times(cli, session_factory) -> None:
    first = cli("products", f"{PRODUCT_HEADER}\nP-1,杯子,Cup,home,900,3,2026-11-30 10:00:00\n",
                "--timezone", "Asia/Shanghai")
    assert first.code == 0, first.err
    with session_factory() as s:
        stored = s.scalars(select(Product)).one().source_updated_at
    assert aware(stored) == NOW - timedelta(hours=2)
    naive = cli("products", f"{PRODUCT_HEADER}\nP-1,杯子,Cup,home,900,3,2026-11-30 10:00:00\n")
    assert "updated_at needs a time zone" in naive.err
    older = cli("products", f"{PRODUCT_HEADER}\nP-1,杯子,Cup,home,100,0,{at(3)}\n")
    assert (older.code, _counts_line(older)) == (0, "created 0, updated 0, unchanged 0, "
                                                    "stale 1, error 0")


def test_customers_are_told_unless_no_notify(cli, session_factory, cipher) -> None:
    with session_factory.begin() as s:
        seed(s, cipher, order_state="shipped")
    header = "external_id,order,carrier,tracking_number,shipped_at,updated_at\n"
    quiet = cli("shipments", header + f"S-1,{ORDER_NO},SF,SF1,{at(2)},{at(2)}\n", "--no-notify")
    told = cli("shipments", header + f"S-2,{ORDER_NO},SF,SF2,{at(1)},{at(1)}\n")
    assert quiet.code == told.code == 0
    with session_factory() as s:
        [message] = outbox(s, "shipping_update")
        assert "SF2" in message.text


def test_progress_is_plain_lines_without_a_terminal_and_a_bar_with_one(cli) -> None:
    rows = "".join(f"P-{i},杯子{i},Cup {i},home,900,3,{at(5)}\n" for i in range(5))
    plain = cli("products", PRODUCT_HEADER + "\n" + rows, "--batch", "2", every=0.0)
    assert plain.code == 0 and "\r" not in plain.err
    progress = plain.err.splitlines()
    assert len(progress) == 3 and progress[-1].startswith("products.csv: 6/6 lines (100%), ")
    assert all("lines/s, ETA" in line for line in progress)
    assert "6 lines, 5 products" in plain.out and "lines/s)" in plain.out

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    bar = cli("products", PRODUCT_HEADER + "\n" + rows, "--batch", "2", stderr=Terminal(),
              every=0.0)
    assert bar.err.startswith("\rproducts.csv [") and "\n" not in bar.err
    assert bar.err.endswith("\r\033[K")  # the bar is cleared before the summary
