"""Alerts for managers: rates computed by hand from hand-built orders, refunds and timers.

Windows at NOW: recent = the last 7 days, baseline = the 28 days before them.
"""

from __future__ import annotations

import itertools
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from tests.ticketing.desk.test_sla import make_ticket
from ticketing.core.models import (
    Alert,
    Notification,
    Order,
    OrderState,
    RefundKind,
    RefundMethod,
    RefundRequest,
    RefundState,
    Role,
    SlaTimer,
    Ticket,
    TimerKind,
    TimerStatus,
)
from ticketing.reports import alerts
from ticketing.reports.alerts import AlertConfig, alert_links, describe, evaluate, open_alerts

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)
_keys = itertools.count(1)


# --- building blocks ---------------------------------------------------------------------------
def managers(make) -> list:
    """Two managers and an admin hear of alerts; an inactive manager, an agent and a
    supervisor do not."""
    heard = [make.agent(role=Role.MANAGER, name="Mgr"), make.agent(role=Role.MANAGER, name="Mgr"),
             make.agent(role=Role.ADMIN, name="Root")]
    make.agent(role=Role.MANAGER, name="Gone").active = False
    make.agent(role=Role.AGENT, name="Li")
    make.agent(role=Role.SUPERVISOR, name="Chen")
    return heard


def orders(make, product, *, count: int, at: datetime, state=OrderState.PAID) -> list[Order]:
    """``count`` orders of ``product`` an hour apart from ``at`` back, each by its own customer
    (so nobody has repeated refunds here)."""
    return [make.order(customer=make.customer(), product=product, state=state,
                       created_at=at - i * timedelta(hours=1)) for i in range(count)]


def refund(session: Session, order: Order, *, at: datetime) -> RefundRequest:
    request = RefundRequest(
        order_id=order.id, customer_id=order.customer_id, idempotency_key=f"t{next(_keys)}",
        kind=RefundKind.RETURN_AND_REFUND, state=RefundState.DONE, reason="quality_problem",
        amount_cents=order.total_cents, method=RefundMethod.ORIGINAL, created_at=at)
    session.add(request)
    session.flush()
    return request


def refunds(session: Session, some: list[Order], *, at: datetime) -> None:
    for order in some:
        refund(session, order, at=at)


def notes(session: Session) -> list[Notification]:
    return list(session.scalars(select(Notification).order_by(Notification.id)))


def open_by_subject(session: Session) -> dict[tuple[str, str], Alert]:
    return {(a.kind, a.subject): a for a in session.scalars(
        select(Alert).where(Alert.resolved_at.is_(None)))}


def phones_jump(session: Session, make):
    """Category ``phones``, two products. Baseline: 40 paid orders (20 each), 2 refunds →
    2/40 = 5 %. Recent: 20 paid orders (10 each) + 5 unpaid (not counted), 4 refunds requested
    in the window, one of them for an order placed in the baseline window → 4/20 = 20 %.
    Per product the recent sample (10 orders) is too small to alarm."""
    a = make.product(name_zh="手机A", name_en="Phone A", category="phones")
    b = make.product(name_zh="手机B", name_en="Phone B", category="phones")
    old_a = orders(make, a, count=20, at=NOW - 10 * DAY)
    old_b = orders(make, b, count=20, at=NOW - 20 * DAY)
    new_a = orders(make, a, count=10, at=NOW - 2 * DAY)
    orders(make, b, count=10, at=NOW - 3 * DAY)
    orders(make, b, count=5, at=NOW - 3 * DAY, state=OrderState.PENDING_PAYMENT)
    refunds(session, [old_b[0]], at=NOW - 15 * DAY)
    refunds(session, [old_b[1]], at=NOW - 30 * DAY)
    refunds(session, new_a[:3], at=NOW - 1 * DAY)
    refunds(session, [old_a[0]], at=NOW - 2 * DAY)  # ordered 10 days ago, refunded now
    # a steady category: 2/40 before and 1/20 now
    books = make.product(name_zh="书", name_en="Book", category="books")
    refunds(session, orders(make, books, count=40, at=NOW - 12 * DAY)[:2], at=NOW - 9 * DAY)
    refunds(session, orders(make, books, count=20, at=NOW - DAY)[:1], at=NOW - DAY / 2)
    return a, b


# --- refund rate -------------------------------------------------------------------------------
def test_category_refund_rate_jump_opens_one_alert_and_tells_each_manager_once(session, make) -> None:
    heard = managers(make)
    phones_jump(session, make)

    touched = evaluate(session, now=NOW)

    found = open_by_subject(session)
    assert set(found) == {("refund_rate", "category:phones")}
    alert = found[("refund_rate", "category:phones")]
    assert touched == [alert]
    assert alert.value == pytest.approx(4 / 20) and alert.baseline == pytest.approx(2 / 40)
    assert alert.sample == 20 and alert.opened_at == NOW and alert.notified_at == NOW
    d = alert.details
    assert (d["numerator"], d["denominator"], d["baseline_numerator"], d["baseline_denominator"]) == (
        4, 20, 2, 40)
    assert d["window"] == [(NOW - 7 * DAY).isoformat(), NOW.isoformat()]
    assert d["baseline_window"] == [(NOW - 35 * DAY).isoformat(), (NOW - 7 * DAY).isoformat()]
    sent = notes(session)
    assert sorted(n.agent_id for n in sent) == sorted(a.id for a in heard)
    assert {n.kind for n in sent} == {"alert"}
    note = sent[0]
    assert "品类「phones」" in note.text_zh and "20.0%" in note.text_zh and "5.0%" in note.text_zh
    assert "category “phones”" in note.text_en and "4 refunds / 20 orders" in note.text_en
    assert "/reports/refunds?category=phones" in note.text_en
    assert alert_links(alert) == "/reports/refunds?category=phones"


def test_small_samples_do_not_alarm(session, make) -> None:
    managers(make)
    # 2 of 5 recent orders refunded (40 %) against 0 of 40: too few orders and refunds
    few = make.product(name_zh="小众", name_en="Niche", category="niche")
    orders(make, few, count=40, at=NOW - 20 * DAY)
    refunds(session, orders(make, few, count=5, at=NOW - DAY)[:2], at=NOW - DAY / 2)
    # 2 of 25 (8 % against 0 %): enough orders, but 2 refunds are not a trend
    two = make.product(name_zh="杯子", name_en="Mug", category="kitchen")
    orders(make, two, count=40, at=NOW - 20 * DAY)
    refunds(session, orders(make, two, count=25, at=NOW - DAY)[:2], at=NOW - DAY / 2)
    # 5 of 20 with no baseline at all (a new product): the baseline is unknown
    new = make.product(name_zh="新品", name_en="New thing", category="new")
    refunds(session, orders(make, new, count=20, at=NOW - DAY)[:5], at=NOW - DAY / 2)

    assert evaluate(session, now=NOW) == []
    assert session.scalar(select(func.count()).select_from(Alert)) == 0
    assert notes(session) == []


def test_refund_rate_alert_resolves_only_under_the_hysteresis_line(session, make) -> None:
    managers(make)
    _a, b = phones_jump(session, make)
    evaluate(session, now=NOW)
    alert = open_by_subject(session)[("refund_rate", "category:phones")]
    sent = len(notes(session))

    # 30 more recent orders (of B, never refunded): 4/50 = 8 %, under the opening line (10 %)
    # but above the resolve line max(5 % × 1.2, 5 % + 2 pp) = 7 %: open, refreshed, baseline kept
    orders(make, b, count=30, at=NOW - 4 * DAY)
    later = NOW + timedelta(minutes=15)
    assert evaluate(session, now=later) == [alert]
    assert alert.resolved_at is None and alert.last_seen_at == later
    assert alert.value == pytest.approx(4 / 50) and alert.sample == 50
    assert alert.baseline == pytest.approx(0.05) and alert.details["baseline_denominator"] == 40
    assert alert.opened_at == NOW

    # 10 more: 4/60 ≈ 6.7 % < 7 %: resolved, and 6.7 % does not open a new one
    orders(make, b, count=10, at=NOW - 4 * DAY)
    latest = NOW + timedelta(minutes=30)
    assert evaluate(session, now=latest) == [alert]
    assert alert.resolved_at == latest and alert.value == pytest.approx(4 / 60)
    assert "（已恢复正常）" in describe(alert, "zh")
    assert evaluate(session, now=latest + timedelta(minutes=15)) == []
    assert open_by_subject(session) == {}
    assert len(notes(session)) == sent  # refreshing and resolving notify nobody


def test_product_alert_names_the_product_and_links_to_its_refunds(session, make) -> None:
    managers(make)
    kettle = make.product(name_zh="电热水壶", name_en="Electric Kettle", category="kitchen")
    orders(make, kettle, count=50, at=NOW - 20 * DAY)  # baseline 0/50
    refunds(session, orders(make, kettle, count=20, at=NOW - DAY)[:3], at=NOW - DAY / 2)

    evaluate(session, now=NOW)

    found = open_by_subject(session)
    assert set(found) == {("refund_rate", f"product:{kettle.id}"), ("refund_rate", "category:kitchen")}
    alert = found[("refund_rate", f"product:{kettle.id}")]
    assert alert.value == pytest.approx(3 / 20) and alert.baseline == 0.0
    assert alert_links(alert) == f"/reports/refunds?product={kettle.id}"
    assert "商品「电热水壶」" in describe(alert, "zh") and "15.0%" in describe(alert, "zh")
    assert "product “Electric Kettle”" in describe(alert, "en")


# --- repeated refunds --------------------------------------------------------------------------
def test_customer_with_repeated_refunds_is_named_masked_and_resolves_later(session, make) -> None:
    heard = managers(make)
    repeat = make.customer(name="王小明", phone="13912345678", address="北京市朝阳区建国路88号")
    other = make.customer()
    mine = [make.order(customer=repeat, created_at=NOW - (20 - i) * DAY, number=f"20260000000000{i:02d}")
            for i in range(3)]
    for i, order in enumerate(mine):
        refund(session, order, at=NOW - (15 - 5 * i) * DAY)  # 15, 10 and 5 days ago
    for order in (make.order(customer=other), make.order(customer=other)):
        refund(session, order, at=NOW - DAY)

    evaluate(session, now=NOW)

    alert = open_by_subject(session)[("repeated_refunds", f"customer:{repeat.id}")]
    assert set(open_by_subject(session)) == {("repeated_refunds", f"customer:{repeat.id}")}
    assert alert.value == 3 and alert.sample == 3 and alert.baseline is None
    assert alert.details["order_numbers"] == [o.number for o in mine]
    assert alert_links(alert) == f"/reports/refunds?customer={repeat.id}"
    sent = notes(session)
    assert len(sent) == len(heard)
    for text in (sent[0].text_zh, sent[0].text_en, describe(alert, "zh"), describe(alert, "en")):
        assert "王**" in text and f"#{repeat.id}" in text and mine[0].number in text
        assert "王小明" not in text and "5678" not in text and "朝阳" not in text
    assert "顾客 王**" in sent[0].text_zh and "3 refunds in the last 30 days" in sent[0].text_en

    # 16 days later the oldest request (then 31 days old) has left the 30-day window
    later = NOW + 16 * DAY
    evaluate(session, now=later)
    assert alert.resolved_at == later and open_by_subject(session) == {}


# --- SLA breach rate ---------------------------------------------------------------------------
def timer(session: Session, ticket: Ticket, *, deadline: datetime, outcome: str,
          kind: TimerKind = TimerKind.NEXT_RESPONSE) -> None:
    """One timer: ``met`` (done in time), ``marked`` (breached by the worker), ``late`` (done
    after its deadline, never marked), ``overdue`` (still running past its deadline),
    ``paused``, or ``running`` (deadline ahead)."""
    generation = 1 + (session.scalar(select(func.max(SlaTimer.generation)).where(
        SlaTimer.ticket_id == ticket.id, SlaTimer.kind == kind)) or 0)
    t = SlaTimer(ticket_id=ticket.id, kind=kind, generation=generation, started_at=deadline - DAY,
                 deadline_at=deadline, status=TimerStatus.DONE)
    if outcome == "met":
        t.completed_at = deadline - timedelta(hours=1)
    elif outcome == "marked":
        t.breached_at = t.completed_at = deadline
    elif outcome == "late":
        t.completed_at = deadline + timedelta(hours=1)
    elif outcome in ("overdue", "running"):
        t.status = TimerStatus.ACTIVE
    else:
        t.status, t.remaining_seconds = TimerStatus.PAUSED, 600.0
    session.add(t)
    session.flush()


def timers(session, ticket, *, at: datetime, **outcomes: int) -> None:
    for outcome, count in outcomes.items():
        for _ in range(count):
            timer(session, ticket, deadline=at, outcome=outcome)


def test_climbing_sla_breach_rate_opens_for_the_team_and_for_all(session, make) -> None:
    heard = managers(make)
    frontline, logistics = make.team(code="frontline"), make.team(code="logistics", tier=2)
    customer = make.customer()
    front = make_ticket(session, customer, team_id=frontline.id)
    back = make_ticket(session, customer, team_id=logistics.id)
    # frontline: baseline 4 of 40 breached (10 %); recent 6 of 20 (30 %): 4 marked, 1 still
    # running past its deadline, 1 done late; paused and not-yet-due timers are undecided
    timers(session, front, at=NOW - 20 * DAY, met=36, marked=4)
    timers(session, front, at=NOW - 3 * DAY, met=14, marked=4, overdue=1, late=1, paused=2)
    timers(session, front, at=NOW + DAY, running=3)
    timer(session, front, deadline=NOW - DAY, outcome="marked", kind=TimerKind.FOLLOWUP)
    # logistics: 4 of 40 then 3 of 20 (15 % < max(15 %, 20 %)): no team alert
    timers(session, back, at=NOW - 30 * DAY, met=36, marked=4)
    timers(session, back, at=NOW - 2 * DAY, met=17, marked=3)

    evaluate(session, now=NOW)

    found = open_by_subject(session)
    assert set(found) == {("sla_breaches", f"team:{frontline.id}"), ("sla_breaches", "all")}
    team = found[("sla_breaches", f"team:{frontline.id}")]
    assert team.value == pytest.approx(6 / 20) and team.baseline == pytest.approx(4 / 40)
    assert team.sample == 20
    everyone = found[("sla_breaches", "all")]  # (6 + 3) / 40 against 8 / 80
    assert everyone.value == pytest.approx(9 / 40) and everyone.baseline == pytest.approx(8 / 80)
    assert (everyone.details["numerator"], everyone.details["denominator"]) == (9, 40)
    assert alert_links(team) == f"/reports/tickets?metric=sla_breached&team={frontline.id}"
    assert alert_links(everyone) == "/reports/tickets?metric=sla_breached"
    assert "frontline团队" in describe(team, "zh") and "6 of 20 deadlines" in describe(team, "en")
    assert "全部团队" in describe(everyone, "zh") and "30.0%" in describe(team, "zh")
    assert len(notes(session)) == 2 * len(heard)


# --- idempotency, dashboard --------------------------------------------------------------------
def test_evaluating_twice_keeps_one_alert_and_notifies_once(session, make) -> None:
    heard = managers(make)
    phones_jump(session, make)
    evaluate(session, now=NOW)
    first = notes(session)

    again = NOW + timedelta(minutes=15)
    done = alerts.evaluate_in_detail(session, now=again)
    touched = done.alerts

    rows = list(session.scalars(select(Alert)))
    assert len(rows) == 1 and touched == rows
    assert rows[0].opened_at == NOW and rows[0].notified_at == NOW and rows[0].last_seen_at == again
    assert notes(session) == first and len(first) == len(heard)
    assert (done.opened, done.refreshed, done.resolved) == ([], rows, [])


def test_open_alerts_newest_first_with_a_limit(session) -> None:
    for i, subject in enumerate(("all", "team:1", "customer:3")):
        session.add(Alert(kind="sla_breaches" if i < 2 else "repeated_refunds", subject=subject,
                          opened_at=NOW + i * DAY, last_seen_at=NOW, value=0.5, sample=20))
    session.add(Alert(kind="sla_breaches", subject="team:2", opened_at=NOW + 9 * DAY,
                      last_seen_at=NOW, value=0.5, sample=20, resolved_at=NOW + 9 * DAY))
    session.flush()
    assert [a.subject for a in open_alerts(session)] == ["customer:3", "team:1", "all"]
    assert [a.subject for a in open_alerts(session, limit=2)] == ["customer:3", "team:1"]


def test_thresholds_are_configurable(session, make) -> None:
    managers(make)
    phones_jump(session, make)
    strict = AlertConfig(refund_rate=alerts.RateRule(
        min_sample=21, min_events=3, min_baseline_sample=20, ratio=1.5, margin=0.05,
        resolve_ratio=1.2, resolve_margin=0.02))
    assert evaluate(session, now=NOW, config=strict) == []


# --- PostgreSQL: two evaluations at once ---------------------------------------------------------
@pytest.mark.postgres_only
def test_concurrent_evaluations_open_one_alert_and_notify_once(pg_engine, session_factory,
                                                                session, make) -> None:
    heard = managers(make)
    phones_jump(session, make)
    front = make.team(code="frontline")
    ticket = make_ticket(session, make.customer(), team_id=front.id)
    timers(session, ticket, at=NOW - 20 * DAY, met=36, marked=4)
    timers(session, ticket, at=NOW - 3 * DAY, met=14, marked=6)
    session.commit()

    for round_ in range(5):
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with session_factory.begin() as s:
                    barrier.wait()
                    evaluate(s, now=NOW)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
        with session_factory() as s:
            subjects = list(s.scalars(select(Alert.subject).order_by(Alert.subject)))
            sent = s.scalar(select(func.count()).select_from(Notification))
        assert subjects == ["all", "category:phones", f"team:{front.id}"], round_
        assert sent == 3 * len(heard), round_
        with session_factory.begin() as s:  # start over: the next round races to open again
            s.execute(delete(Notification))
            s.execute(delete(Alert))
