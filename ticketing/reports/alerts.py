"""Alerts for managers: abnormal refunds and a climbing SLA breach rate (rules §REF-7).

Three kinds, each about one subject; at most one *open* alert per (kind, subject):

``refund_rate`` (subject ``category:<c>`` or ``product:<id>``)
    rate = refund requests *created* in the recent window whose order contains the subject
    ÷ paid orders *placed* in that window containing it. The baseline is the same ratio over
    the previous baseline window. We count refunds requested in the window, not refunds of
    the orders placed in it: a refund comes days after the order (delivery, then up to 7 days
    to return), so the last week's orders are not yet done being refunded; comparing their
    cohort with a mature baseline would hide exactly the rise we look for, and late. Counting
    both sides by event date has the same lag in the recent and the baseline window, so it
    cancels while sales are steady; a sharp drop in sales inflates the ratio, which is why the
    details keep numerator and denominator of both windows. Refund requests are per order:
    units are orders on both sides (an order of two phones refunded once counts once).
``repeated_refunds`` (subject ``customer:<id>``)
    a customer with ``repeated_threshold`` or more refund requests in ``repeated_window``.
``sla_breaches`` (subject ``all`` or ``team:<id>``, the ticket's current team)
    rate = breached ÷ decided response/resolution timers whose deadline fell in the recent
    window, each timer judged as the facts' SLA verdicts judge a generation
    (:func:`ticketing.desk.facts.sla_verdict`: breached when marked, completed late or still
    running past the deadline; paused ones are undecided).

A rate alert opens when the recent rate ≥ max(baseline × ratio, baseline + margin) on a large
enough recent sample and a known baseline; the baseline at opening is kept on the alert, and
it resolves only when the rate falls back under max(baseline × resolve_ratio, baseline +
resolve_margin) — hysteresis, so an alert does not flap, and a lasting problem does not
silently become the new normal as the baseline window slides over it.

Opening notifies every active manager and admin once. Several evaluations may run at once:
the partial unique index on open alerts decides which one opens (and notifies); the others
see the conflict in a savepoint and carry on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ticketing.core.i18n import Text, normalize_language
from ticketing.core.models import Agent, Alert, Customer, Order, Product, RefundRequest, Role, Team
from ticketing.desk import notifications
from ticketing.desk.canned_replies import customer_name
from ticketing.reports.alert_measures import (
    REFUND_DEFINITION,
    SLA_DEFINITION,
    Measure,
    Windows,
    refund_measures,
    sla_measures,
)
from ticketing.shop.catalog import product_name
from ticketing.shop.refunds.stats import customers_with_repeated_refunds

REFUND_RATE = "refund_rate"
REPEATED_REFUNDS = "repeated_refunds"
SLA_BREACHES = "sla_breaches"
KINDS = (REFUND_RATE, REPEATED_REFUNDS, SLA_BREACHES)
NOTIFICATION_KIND = "alert"
ALERTED_ROLES = (Role.MANAGER, Role.ADMIN)


@dataclass(frozen=True)
class RateRule:
    """When a rate is abnormal against its own baseline, and when it is back to normal."""

    min_sample: int  # denominator of the recent window
    min_events: int  # numerator of the recent window
    min_baseline_sample: int  # below this the baseline is unknown: no alert
    ratio: float
    margin: float  # absolute, 0.05 = 5 percentage points
    resolve_ratio: float
    resolve_margin: float

    def opens(self, m: Measure) -> bool:
        rate, baseline = m.rate, m.baseline
        if rate is None or baseline is None:
            return False
        return (m.sample >= self.min_sample and m.events >= self.min_events
                and m.base_sample >= self.min_baseline_sample
                and rate >= max(baseline * self.ratio, baseline + self.margin))

    def resolves(self, m: Measure, *, baseline: float) -> bool:
        """Back under the resolve line of the baseline kept at opening; nothing at all
        happening (0 of 0) is back to normal too."""
        if m.rate is None:
            return m.events == 0
        return m.rate < max(baseline * self.resolve_ratio, baseline + self.resolve_margin)


@dataclass(frozen=True)
class AlertConfig:
    recent: timedelta = timedelta(days=7)
    baseline: timedelta = timedelta(days=28)  # the window just before ``recent``
    refund_rate: RateRule = RateRule(min_sample=20, min_events=3, min_baseline_sample=20,
                                     ratio=1.5, margin=0.05, resolve_ratio=1.2,
                                     resolve_margin=0.02)
    sla_breaches: RateRule = RateRule(min_sample=20, min_events=1, min_baseline_sample=20,
                                      ratio=1.5, margin=0.10, resolve_ratio=1.2,
                                      resolve_margin=0.04)
    repeated_window: timedelta = timedelta(days=30)
    repeated_threshold: int = 3


@dataclass
class Reading:
    """What this evaluation measured about one subject; ``rule`` None means the reading's
    presence is the condition (repeated refunds)."""

    kind: str
    subject: str
    value: float
    sample: int
    details: dict[str, object]
    measure: Measure | None = None
    rule: RateRule | None = None
    baseline: float | None = None
    opens: bool = True


def _rate_reading(kind: str, subject: str, m: Measure, rule: RateRule, windows: Windows,
                  definition: str) -> Reading:
    details: dict[str, object] = {
        "definition": definition,
        "numerator": m.events, "denominator": m.sample,
        "baseline_numerator": m.base_events, "baseline_denominator": m.base_sample,
        "recent_days": windows.recent_days, "baseline_days": windows.baseline_days,
        **windows.details(),
    }
    return Reading(kind, subject, m.rate or 0.0, m.sample, details, measure=m, rule=rule,
                   baseline=m.baseline, opens=rule.opens(m))


def refund_rate_readings(session: Session, *, windows: Windows, config: AlertConfig) -> list[Reading]:
    readings = []
    for by_product, prefix in ((False, "category"), (True, "product")):
        for key, m in refund_measures(session, by_product=by_product, windows=windows).items():
            readings.append(_rate_reading(REFUND_RATE, f"{prefix}:{key}", m, config.refund_rate,
                                          windows, REFUND_DEFINITION))
    return readings


def sla_readings(session: Session, *, windows: Windows, config: AlertConfig) -> list[Reading]:
    per_team = sla_measures(session, windows=windows)
    everything = sum(per_team.values(), Measure(0, 0))
    readings = [_rate_reading(SLA_BREACHES, "all", everything, config.sla_breaches, windows,
                              SLA_DEFINITION)] if per_team else []
    for team_id, m in per_team.items():
        if team_id is not None:
            readings.append(_rate_reading(SLA_BREACHES, f"team:{team_id}", m,
                                          config.sla_breaches, windows, SLA_DEFINITION))
    return readings


def repeated_refund_readings(session: Session, *, now: datetime, config: AlertConfig) -> list[Reading]:
    since = now - config.repeated_window
    found = customers_with_repeated_refunds(session, since=since, until=now,
                                            threshold=config.repeated_threshold)
    numbers: dict[int, list[str]] = {}
    if found:
        rows = session.execute(
            select(RefundRequest.customer_id, Order.number)
            .join(Order, Order.id == RefundRequest.order_id)
            .where(RefundRequest.customer_id.in_([f.customer_id for f in found]),
                   RefundRequest.created_at >= since, RefundRequest.created_at < now)
            .order_by(RefundRequest.created_at, RefundRequest.id)
        ).all()
        for customer_id, number in rows:
            numbers.setdefault(customer_id, []).append(number)
    return [
        Reading(REPEATED_REFUNDS, f"customer:{f.customer_id}", float(f.requests), f.requests,
                {"requests": f.requests, "amount_cents": f.amount_cents,
                 "order_numbers": numbers.get(f.customer_id, []),
                 "window_days": config.repeated_window.days,
                 "threshold": config.repeated_threshold, "window": [since.isoformat(), now.isoformat()]})
        for f in found
    ]


# --- opening, refreshing, resolving ------------------------------------------------------------
@dataclass
class Evaluation:
    """What one evaluation did, each list in subject order."""

    opened: list[Alert] = field(default_factory=list)  # and notified
    refreshed: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)

    @property
    def alerts(self) -> list[Alert]:
        return sorted([*self.opened, *self.refreshed, *self.resolved],
                      key=lambda a: (a.kind, a.subject))


def evaluate(session: Session, *, now: datetime, config: AlertConfig = AlertConfig()) -> list[Alert]:
    """Measure everything, then open, refresh or resolve each (kind, subject); returns the
    alerts this evaluation opened, refreshed or resolved (``resolved_at`` tells which)."""
    return evaluate_in_detail(session, now=now, config=config).alerts


def evaluate_in_detail(session: Session, *, now: datetime,
                       config: AlertConfig = AlertConfig()) -> Evaluation:
    """:func:`evaluate`, telling opened, refreshed and resolved alerts apart (for the job's log).

    Subjects are handled in one sorted order so concurrent evaluations lock rows alike.
    """
    windows = Windows.ending(now, recent=config.recent, baseline=config.baseline)
    readings = {(r.kind, r.subject): r for r in (
        *refund_rate_readings(session, windows=windows, config=config),
        *repeated_refund_readings(session, now=now, config=config),
        *sla_readings(session, windows=windows, config=config),
    )}
    existing = {(a.kind, a.subject): a for a in session.scalars(
        select(Alert).where(Alert.resolved_at.is_(None), Alert.kind.in_(KINDS)))}
    done = Evaluation()
    for key in sorted(readings.keys() | existing.keys()):
        reading, alert = readings.get(key), existing.get(key)
        if alert is not None:
            if reading is not None:
                _record(session, alert, reading)
            if reading is None or _resolves(reading, alert):
                alert.resolved_at = now
                done.resolved.append(alert)
            else:
                alert.last_seen_at = now
                done.refreshed.append(alert)
        elif reading is not None and reading.opens:
            opened = _open(session, reading, now)
            if opened is not None:  # None: a concurrent evaluation opened (and notified) it
                _notify_managers(session, opened, now)
                done.opened.append(opened)
    session.flush()
    return done


def _resolves(reading: Reading, alert: Alert) -> bool:
    if reading.rule is None or reading.measure is None:
        return False  # a presence reading: the condition still holds
    baseline = alert.baseline if alert.baseline is not None else (reading.baseline or 0.0)
    return reading.rule.resolves(reading.measure, baseline=baseline)


_FROZEN = ("baseline_numerator", "baseline_denominator", "baseline_window")


def _record(session: Session, alert: Alert, reading: Reading) -> None:
    """The latest value and sample; a rate alert keeps the baseline it opened against."""
    details = {**reading.details, "label": _label(session, reading.subject)}
    for name in _FROZEN:
        if name in (alert.details or {}):
            details[name] = alert.details[name]
    alert.value, alert.sample, alert.details = reading.value, reading.sample, details


def _open(session: Session, reading: Reading, now: datetime) -> Alert | None:
    """Insert the open alert, or None when a concurrent evaluation already opened it."""
    alert = Alert(kind=reading.kind, subject=reading.subject, opened_at=now, last_seen_at=now,
                  value=reading.value, baseline=reading.baseline, sample=reading.sample,
                  details={**reading.details, "label": _label(session, reading.subject)})
    try:
        with session.begin_nested():
            session.add(alert)
            session.flush()
    except IntegrityError:
        winner = session.scalar(select(Alert.id).where(
            Alert.kind == reading.kind, Alert.subject == reading.subject, Alert.resolved_at.is_(None)))
        if winner is None:
            raise
        return None
    return alert


def managers(session: Session) -> list[Agent]:
    """Who hears about alerts: active managers and admins."""
    return list(session.scalars(select(Agent).where(
        Agent.role.in_(ALERTED_ROLES), Agent.active.is_(True)).order_by(Agent.id)))


def _notify_managers(session: Session, alert: Alert, now: datetime) -> None:
    link = alert_links(alert)
    text = Text(*(f"{describe(alert, lang)} {SEE.get(lang)}{link}" for lang in ("zh", "en")))
    for agent in managers(session):
        notifications.notify(session, agent_id=agent.id, kind=NOTIFICATION_KIND, text=text, now=now)
    alert.notified_at = now


# --- naming the subject (never a phone or an address) ------------------------------------------
SUBJECT_LABELS = {
    "category": Text("品类「{name}」", "category “{name}”"),
    "product": Text("商品「{name}」", "product “{name}”"),
    "customer": Text("顾客 {name}（#{id}）", "customer {name} (#{id})"),
    "team": Text("{name}团队", "team “{name}”"),
}
ALL_TEAMS = Text("全部团队", "all teams")
GUEST = Text("访客", "guest")


def mask_name(name: str | None) -> str | None:
    """'张伟' → '张**', 'Alice Wong' → 'A**': the first character only, a fixed-length tail."""
    return f"{name.strip()[0]}**" if name and name.strip() else None


def _label(session: Session, subject: str) -> dict[str, str]:
    """The subject in both languages, kept in the alert's details so texts need no query."""
    if subject == "all":
        return ALL_TEAMS._asdict()
    prefix, _, ident = subject.partition(":")
    template = SUBJECT_LABELS[prefix]
    names: Mapping[str, str]
    if prefix == "category":
        names = {"zh": ident, "en": ident}
    elif prefix == "product":
        product = session.get(Product, int(ident))
        names = {lang: product_name(product, language=lang) for lang in ("zh", "en")}
    elif prefix == "customer":
        masked = mask_name(customer_name(session.get(Customer, int(ident))))
        names = {lang: masked or GUEST.get(lang) for lang in ("zh", "en")}
    else:
        team = session.get(Team, int(ident))
        names = {"zh": team.name_zh if team else ident, "en": team.name_en if team else ident}
    return {lang: template.get(lang, name=names[lang], id=ident) for lang in ("zh", "en")}


# --- reading alerts: dashboard, texts, links ---------------------------------------------------
TEXTS = {
    REFUND_RATE: Text(
        "退款率异常：{subject}近{days}天退款率 {value}（{events} 笔退款 / {sample} 个订单），"
        "自身基线 {baseline}（前{base_days}天 {base_events}/{base_sample}）。",
        "Refund rate up: {subject} at {value} over the last {days} days ({events} refunds / "
        "{sample} orders) vs its own baseline of {baseline} (previous {base_days} days: "
        "{base_events}/{base_sample})."),
    SLA_BREACHES: Text(
        "SLA 超时率上升：{subject}近{days}天到期的 {sample} 个时限中 {events} 个超时（{value}），"
        "基线 {baseline}（前{base_days}天 {base_events}/{base_sample}）。",
        "SLA breach rate up: {subject}: {events} of {sample} deadlines due in the last {days} "
        "days were breached ({value}) vs a baseline of {baseline} (previous {base_days} days: "
        "{base_events}/{base_sample})."),
    REPEATED_REFUNDS: Text(
        "重复退款：{subject}近{days}天申请退款 {count} 次（订单 {orders}）。",
        "Repeated refunds: {subject} asked for {count} refunds in the last {days} days "
        "(orders {orders})."),
}
RESOLVED = Text("（已恢复正常）", " (back to normal)")
SEE = Text("详情：", "Details: ")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def describe(alert: Alert, language: str | None) -> str:
    """One sentence for the dashboard and the notification: subject, value vs baseline."""
    lang = normalize_language(language)
    d: dict[str, Any] = dict(alert.details or {})
    subject = (d.get("label") or {}).get(lang, alert.subject)
    if alert.kind == REPEATED_REFUNDS:
        separator = "、" if lang == "zh" else ", "
        text = TEXTS[alert.kind].get(lang, subject=subject, days=d.get("window_days", ""),
                                     count=int(alert.value),
                                     orders=separator.join(d.get("order_numbers", [])))
    else:
        text = TEXTS[alert.kind].get(
            lang, subject=subject, value=_pct(alert.value), baseline=_pct(alert.baseline),
            days=d.get("recent_days", ""), base_days=d.get("baseline_days", ""),
            events=d.get("numerator", ""), sample=d.get("denominator", ""),
            base_events=d.get("baseline_numerator", ""),
            base_sample=d.get("baseline_denominator", ""))
    return text + RESOLVED.get(lang) if alert.resolved_at is not None else text


def alert_links(alert: Alert) -> str:
    """The page listing what the alert is about (the refunds, or the breached tickets)."""
    prefix, _, ident = alert.subject.partition(":")
    if alert.kind == SLA_BREACHES:
        query = {"metric": "sla_breached", **({"team": ident} if prefix == "team" else {})}
        return f"/reports/tickets?{urlencode(query)}"
    return f"/reports/refunds?{urlencode({prefix: ident})}"


def open_alerts(session: Session, *, limit: int = 20) -> list[Alert]:
    """Open alerts for the dashboard, most recently opened first."""
    return list(session.scalars(select(Alert).where(Alert.resolved_at.is_(None))
                                .order_by(Alert.opened_at.desc(), Alert.id.desc()).limit(limit)))
