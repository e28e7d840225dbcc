"""The demo shop is complete, bilingual, deterministic, and loaded only once."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from ticketing.core import passwords
from ticketing.demo import data as demo_data
from ticketing.shop import catalog, customers, logistics
from ticketing.core.db import make_engine, make_session_factory
from ticketing.core.errors import Conflict
from ticketing.core.models import (
    Agent, Base, ChannelIdentity, Customer, Order, OrderState, Product, Role, Segment, Team,
)
from ticketing.core.pii import PiiCipher

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def loaded(session, cipher):
    counts = demo_data.load(session, cipher=cipher, now=NOW)
    session.flush()
    return counts


def test_empty_then_loaded(session, cipher) -> None:
    assert demo_data.is_empty(session)
    demo_data.load(session, cipher=cipher, now=NOW)
    assert not demo_data.is_empty(session)


def test_second_load_is_refused_without_writing(loaded, session, cipher) -> None:
    before = session.scalar(select(func.count()).select_from(Order))
    with pytest.raises(Conflict):
        demo_data.load(session, cipher=cipher, now=NOW)
    assert session.scalar(select(func.count()).select_from(Order)) == before


def test_counts(loaded, session) -> None:
    assert loaded["products"] >= 40 and loaded["customers"] >= 30 and loaded["orders"] >= 150
    for model, key in ((Product, "products"), (Customer, "customers"), (Order, "orders"),
                       (Agent, "agents"), (Team, "teams"), (ChannelIdentity, "identities")):
        assert session.scalar(select(func.count()).select_from(model)) == loaded[key]


def test_every_order_state_and_valid_numbers(loaded, session) -> None:
    all_orders = session.scalars(select(Order)).all()
    assert set(Counter(o.state for o in all_orders)) == set(OrderState)
    assert all(re.fullmatch(r"\d{16,19}", o.number) for o in all_orders)
    assert {len(o.number) for o in all_orders} == {16, 17, 18, 19}
    assert all(o.created_at <= NOW for o in all_orders)
    assert any(o.refunded_cents > 0 for o in all_orders if o.state is OrderState.CANCELLED)
    assert any(o.refunded_cents > 0 for o in all_orders if o.state is not OrderState.CANCELLED)


def test_timelines_are_consistent(loaded, session) -> None:
    for o in session.scalars(select(Order)):
        stamps = [t for t in (o.created_at, o.paid_at, o.shipped_at, o.delivered_at) if t]
        assert stamps == sorted(stamps) and stamps[-1] <= NOW, o.number
        assert (o.paid_cents == 0) == (o.paid_at is None)
        assert o.refunded_cents <= o.paid_cents
        shipped = o.state in (OrderState.SHIPPED, OrderState.DELIVERED, OrderState.COMPLETED)
        assert bool(o.shipments) == shipped
        for s in o.shipments:
            times = [e.at for e in s.events]
            assert times == sorted(times) and times[0] >= s.shipped_at and times[-1] <= NOW
            assert s.carrier in ("SF", "ZTO", "YTO", "JD", "EMS")
            assert all(e.description_zh and e.description_en for e in s.events)


def test_some_parcels_are_delayed_in_each_way(loaded, session) -> None:
    shipped = session.scalars(select(Order).where(Order.state == OrderState.SHIPPED)).all()
    reasons = Counter(logistics.delay_reason(session, order=o, now=NOW) for o in shipped)
    assert reasons[None] > 0
    for reason in logistics.DelayReason:
        assert reasons[reason] > 0, reason
    delivered = session.scalars(select(Order).where(Order.state == OrderState.DELIVERED)).all()
    assert not any(logistics.is_delayed(session, order=o, now=NOW) for o in delivered)


def test_products_are_bilingual_with_stock_variety(loaded, session) -> None:
    products = session.scalars(select(Product)).all()
    assert {"electronics", "clothing", "beauty", "home", "food"} <= {p.category for p in products}
    assert all(p.name_zh and p.name_en and p.aliases for p in products)
    assert all(p.specs["zh"] and len(p.specs["zh"]) == len(p.specs["en"]) for p in products)
    levels = Counter(catalog.stock_level(p) for p in products)
    assert levels[catalog.StockLevel.OUT] and levels[catalog.StockLevel.LOW]
    no_return = {p.category for p in products if not p.no_reason_return_7d}
    assert "food" in no_return and "clothing" in no_return
    assert catalog.resolve(session, query="蓝牙earbuds").product is not None


def test_customers_have_valid_encrypted_phones_and_segments(loaded, session, cipher) -> None:
    people = session.scalars(select(Customer)).all()
    assert {Segment.VIP, Segment.POTENTIAL, Segment.REGULAR} <= {c.segment for c in people}
    assert {"zh", "en"} <= {c.language for c in people}
    for c in people:
        phone = cipher.decrypt(c.phone_enc, field="phone")
        assert re.fullmatch(r"1[3-9]\d{9}", phone) and c.phone_lookup == cipher.lookup_hash(phone)
        assert customers.masked_phone(c, cipher=cipher) == phone[:3] + "****" + phone[-4:]
    assert len({c.phone_lookup for c in people}) == len(people)


def test_desk_teams_tiers_and_demo_logins(loaded, session) -> None:
    teams = {t.code: t for t in session.scalars(select(Team))}
    assert teams["frontline"].tier == 1 and teams["frontline"].categories == ["*"]
    assert set(teams["after_sales"].categories) == {"refund", "quality"}
    assert teams["logistics"].categories == ["logistics"]
    assert teams["quality"].categories == ["quality"]
    assert set(teams["payments"].categories) == {"payment", "account"}
    assert teams["cs_supervisor"].tier == 2 and teams["operations"].tier == 3
    agents = session.scalars(select(Agent)).all()
    assert {a.role for a in agents} == set(Role)
    assert all(any(a.team_id == t.id for a in agents) for t in teams.values())
    sample = next(a for a in agents if a.login == "xiaomei")
    assert passwords.verify_password(demo_data.DEMO_PASSWORD, sample.password_hash)
    assert not passwords.verify_password("wrong", sample.password_hash)


def test_demo_widget_identities_are_linked(loaded, session) -> None:
    for external_id in demo_data.DEMO_WIDGET_IDS:
        customer = customers.customer_for_conversation(session, conversation_id=f"widget:{external_id}")
        assert customer is not None


def _numbers(tmp_path, name: str, seed: int) -> tuple[list[str], list[str], list[str]]:
    engine = make_engine(f"sqlite:///{tmp_path / name}")
    Base.metadata.create_all(engine)
    with make_session_factory(engine).begin() as s:
        demo_data.load(s, cipher=PiiCipher(b"d" * 32), seed=seed, now=NOW)
    with make_session_factory(engine)() as s:
        numbers = list(s.scalars(select(Order.number).order_by(Order.id)))
        names = list(s.scalars(select(Customer.name).order_by(Customer.id)))
        phones = list(s.scalars(select(Customer.phone_lookup).order_by(Customer.id)))
    engine.dispose()
    return numbers, names, phones


def test_same_seed_same_shop_other_seed_other_shop(tmp_path) -> None:
    first = _numbers(tmp_path, "a.db", demo_data.DEFAULT_SEED)
    second = _numbers(tmp_path, "b.db", demo_data.DEFAULT_SEED)
    other = _numbers(tmp_path, "c.db", 7)
    assert first == second
    assert first[0] != other[0]


def test_same_seed_same_numbers_across_backends(loaded, session, tmp_path) -> None:
    # the fixture loaded into the parametrised backend (SQLite and PostgreSQL); compare with a
    # fresh SQLite load: a different database and cipher key must not change the shop
    here = list(session.scalars(select(Order.number).order_by(Order.id)))
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    Base.metadata.create_all(engine)
    with make_session_factory(engine).begin() as s:
        demo_data.load(s, cipher=PiiCipher(b"z" * 32), now=NOW)
    with make_session_factory(engine)() as s:
        assert list(s.scalars(select(Order.number).order_by(Order.id))) == here
    engine.dispose()


def test_the_managers_dashboard_has_a_week_to_show(loaded, session) -> None:
    """Conversations (most contained by the bot), tickets and ratings in the last 7 days."""
    from ticketing.reports import metrics
    from ticketing.reports.scope import Filters, Period

    session.commit()  # the reports' facts follow at commit
    period = Period.last_days(7, today=NOW.date(), zone="Asia/Shanghai")
    got = metrics.summary(session, period, Filters(), now=NOW)
    assert got.tickets.tickets > 10 and got.csat.responses > 3
    chats = got.conversations
    assert chats.conversations > 30 and 0 < chats.handed_off < chats.conversations
    assert 50 < (chats.containment_pct or 0) < 100
