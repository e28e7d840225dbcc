"""A batch is one transaction of rows that each stand alone: a refused row leaves nothing
behind, the rows after it go on, and the report counts every outcome."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.ticketing.shop.ingest.shop_rows import NOW, at, customer, product, run, statuses
from ticketing.core.errors import BatchTooLarge, ValidationError
from ticketing.core.models import Customer, Product
from ticketing.shop import ingest


def test_a_bad_row_changes_nothing_and_the_rest_go_on(session_factory, cipher) -> None:
    with session_factory.begin() as s:
        report = run(s, cipher, "customers",
                     customer(),
                     customer(external_id="C-2", phone="not a phone"),
                     "not an object",
                     customer(external_id="C-3", phone="13900139000"),
                     customer(external_id="C-1", phone="13700137000", updated_at=at(1)))
    assert statuses(report) == ["created", "invalid_phone", "invalid_input", "created",
                                "updated"]
    assert [r.key for r in report.results] == ["C-1", "C-2", None, "C-3", "C-1"]
    assert report.counts == {"created": 2, "updated": 1, "unchanged": 0, "stale": 0,
                             "error": 2}
    with session_factory() as s:
        assert sorted(s.scalars(select(Customer.external_id))) == ["C-1", "C-3"]


def test_a_failed_row_inside_keeps_the_rows_before_it(session_factory, cipher) -> None:
    # the second row fails after its own writes began (the sku check): they are undone
    with session_factory.begin() as s:
        report = run(s, cipher, "products", product(sku="A"),
                     product(external_id="P-2", sku="B", stock=1),
                     product(external_id="P-3", sku="A"))
    assert statuses(report) == ["created", "created", "key_taken"]
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Product)) == 2


def test_too_many_rows_or_an_unknown_kind_refuse_the_whole_batch(session, cipher) -> None:
    with pytest.raises(BatchTooLarge):
        run(session, cipher, "products", *[product(external_id=f"P-{i}")
                                           for i in range(ingest.MAX_ROWS + 1)])
    with pytest.raises(ValidationError):
        ingest.run_batch(session, entity_name="coupons", rows=[],
                         ctx=ingest.Context(cipher=cipher, now=NOW))
    assert session.scalar(select(Product.id)) is None


def test_one_row_at_a_time_for_importers(session, cipher) -> None:
    kind = ingest.entity("products")
    result = ingest.ingest_row(session, kind, product(), index=7,
                               ctx=ingest.Context(cipher=cipher, now=NOW))
    assert (result.index, result.key, result.status) == (7, "P-1", ingest.Status.CREATED)
