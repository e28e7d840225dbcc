"""Numbers for managers (rules §RPT-1).

- CSAT: % of responses scoring 4 or 5, response rate (responses / surveys sent), average score
  and the 1..5 distribution. Surveys are counted by when they were *sent*, so a day's response
  rate compares like with like.
- SLA compliance: share of tickets whose first response and resolution met their deadline.
- Contact reasons: tickets per category.

Every figure covers ``[since, until)``. Grouping by agent, team, category or channel is done by
the database; by day or ISO week in Python, in the ``tz`` the caller gives (default UTC), so
the same code runs on SQLite and PostgreSQL. A percentage with nothing to divide is None.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ticketing.core import errors
from ticketing.core.clock import aware, utcnow
from ticketing.core.i18n import Text
from ticketing.core.models import (
    Agent,
    Category,
    SlaTimer,
    Survey,
    Team,
    Ticket,
    TimerKind,
    TimerStatus,
)

GROUPS = ("agent", "team", "category", "channel", "day", "week")
UNASSIGNED = Text(zh="未分配", en="Unassigned")
TOTAL = Text(zh="合计", en="Total")
CATEGORY_LABELS = {
    "logistics": Text(zh="物流", en="Logistics"),
    "quality": Text(zh="商品质量", en="Product quality"),
    "payment": Text(zh="支付", en="Payment"),
    "refund": Text(zh="退款", en="Refund"),
    "order": Text(zh="订单", en="Order"),
    "product": Text(zh="商品咨询", en="Product questions"),
    "account": Text(zh="账户", en="Account"),
    "other": Text(zh="其他", en="Other"),
}
CHANNEL_LABELS = {
    "telegram": Text(zh="Telegram", en="Telegram"),
    "widget": Text(zh="网页客服", en="Web chat"),
    "desk": Text(zh="人工录入", en="Entered by an agent"),
}


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in values.items()}


# --- rows ------------------------------------------------------------------------------------
@dataclass
class CsatRow:
    key: str | None
    label: str
    surveys_sent: int = 0
    responses: int = 0
    distribution: dict[int, int] = field(default_factory=lambda: dict.fromkeys(range(1, 6), 0))

    @property
    def satisfied(self) -> int:
        return self.distribution[4] + self.distribution[5]

    @property
    def csat_pct(self) -> float | None:
        return _pct(self.satisfied, self.responses)

    @property
    def response_rate_pct(self) -> float | None:
        return _pct(self.responses, self.surveys_sent)

    @property
    def average_score(self) -> float | None:
        if self.responses == 0:
            return None
        return sum(s * n for s, n in self.distribution.items()) / self.responses

    def add(self, score: int | None, count: int = 1) -> None:
        self.surveys_sent += count
        if score is not None:
            self.responses += count
            self.distribution[score] += count

    def to_dict(self) -> dict[str, Any]:
        flat = {"key": self.key, "label": self.label, "surveys_sent": self.surveys_sent,
                "responses": self.responses, "response_rate_pct": self.response_rate_pct,
                "csat_pct": self.csat_pct, "average_score": self.average_score}
        flat.update({f"score_{s}": n for s, n in self.distribution.items()})
        return _rounded(flat)


@dataclass
class SlaRow:
    key: str | None
    label: str
    tickets: int = 0
    first_response_met: int = 0
    first_response_breached: int = 0
    resolution_met: int = 0
    resolution_breached: int = 0

    @property
    def first_response_met_pct(self) -> float | None:
        return _pct(self.first_response_met, self.first_response_met + self.first_response_breached)

    @property
    def resolution_met_pct(self) -> float | None:
        return _pct(self.resolution_met, self.resolution_met + self.resolution_breached)

    def to_dict(self) -> dict[str, Any]:
        flat = asdict(self)
        flat["first_response_met_pct"] = self.first_response_met_pct
        flat["resolution_met_pct"] = self.resolution_met_pct
        return _rounded(flat)


@dataclass
class ReasonRow:
    category: str
    label: str
    tickets: int
    share_pct: float | None

    def to_dict(self) -> dict[str, Any]:
        return _rounded(asdict(self))


@dataclass
class Report:
    """The manager report; ``to_dict()`` is what the dashboard JSON and CSV export read."""

    since: datetime
    until: datetime
    group_by: str
    csat_total: CsatRow
    csat: list[CsatRow]
    sla_total: SlaRow
    sla: list[SlaRow]
    reasons: list[ReasonRow]

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "group_by": self.group_by,
            "csat_total": self.csat_total.to_dict(),
            "csat": [row.to_dict() for row in self.csat],
            "sla_total": self.sla_total.to_dict(),
            "sla": [row.to_dict() for row in self.sla],
            "reasons": [row.to_dict() for row in self.reasons],
        }


# --- CSAT ------------------------------------------------------------------------------------
def csat_report(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    group_by: str | None = None,
    tz: str | tzinfo = "UTC",
    language: str = "zh",
) -> list[CsatRow]:
    """CSAT per group (one total row when ``group_by`` is None), ordered by key."""
    zone = _check(since, until, group_by, tz)
    window = (Survey.sent_at >= since, Survey.sent_at < until)
    rows: dict[str | None, CsatRow] = {}
    if group_by in ("day", "week"):
        for sent_at, score in session.execute(select(Survey.sent_at, Survey.score).where(*window)):
            key = _bucket(sent_at, group_by, zone)
            rows.setdefault(key, CsatRow(key, key)).add(score)
    elif group_by is None:
        total = rows[None] = CsatRow(None, "")
        stmt = select(Survey.score, func.count()).where(*window).group_by(Survey.score)
        for score, count in session.execute(stmt):
            total.add(score, count)
    else:
        column = {"agent": Survey.agent_id, "team": Survey.team_id,
                  "category": Survey.category, "channel": Survey.channel}[group_by]
        stmt = (
            select(column, Survey.score, func.count())
            .where(*window)
            .group_by(column, Survey.score)
        )
        for key, score, count in session.execute(stmt):
            key = None if key is None else str(key)
            rows.setdefault(key, CsatRow(key, "")).add(score, count)
    if group_by not in ("day", "week"):
        _label(session, rows.values(), group_by, language)
    return _ordered(rows)


# --- SLA -------------------------------------------------------------------------------------
def sla_report(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    group_by: str | None = None,
    tz: str | tzinfo = "UTC",
    language: str = "zh",
    now: datetime | None = None,
) -> list[SlaRow]:
    """SLA compliance of the tickets *created* in the window, per group.

    Per timer: met when never breached and completed by its deadline; breached when marked,
    completed late, or still active past its deadline. Per ticket and kind, any breached
    generation (a reopen restarts the timer) makes the ticket breached. Timers still running
    in time, paused or cancelled are not counted either way.
    """
    zone = _check(since, until, group_by, tz)
    now = now or utcnow()
    key_column = {
        None: Ticket.id, "agent": Ticket.owner_id, "team": Ticket.team_id,
        "category": Ticket.category, "channel": Ticket.channel,
        "day": Ticket.created_at, "week": Ticket.created_at,
    }[group_by]
    stmt = (
        select(Ticket.id, key_column, SlaTimer.kind, SlaTimer.status, SlaTimer.deadline_at,
               SlaTimer.completed_at, SlaTimer.breached_at)
        .outerjoin(SlaTimer, (SlaTimer.ticket_id == Ticket.id)
                   & SlaTimer.kind.in_([TimerKind.FIRST_RESPONSE, TimerKind.RESOLUTION]))
        .where(Ticket.created_at >= since, Ticket.created_at < until)
    )
    keys: dict[int, str | None] = {}
    outcome: dict[tuple[int, TimerKind], str] = {}
    for ticket_id, key, kind, status, deadline, completed, breached in session.execute(stmt):
        keys[ticket_id] = _sla_key(key, group_by, zone)
        if kind is None:
            continue
        verdict = _timer_verdict(status, deadline, completed, breached, now)
        previous = outcome.get((ticket_id, kind))
        if verdict == "breached" or (verdict == "met" and previous is None):
            outcome[(ticket_id, kind)] = verdict
    rows: dict[str | None, SlaRow] = {}
    for ticket_id, key in keys.items():
        row = rows.setdefault(key, SlaRow(key, key or ""))
        row.tickets += 1
        for kind, prefix in ((TimerKind.FIRST_RESPONSE, "first_response"),
                             (TimerKind.RESOLUTION, "resolution")):
            verdict = outcome.get((ticket_id, kind))
            if verdict is not None:
                attr = f"{prefix}_{verdict}"
                setattr(row, attr, getattr(row, attr) + 1)
    if group_by is None and not rows:
        rows[None] = SlaRow(None, "")
    if group_by not in ("day", "week"):
        _label(session, rows.values(), group_by, language)
    return _ordered(rows)


def _timer_verdict(
    status: TimerStatus,
    deadline: datetime | None,
    completed: datetime | None,
    breached: datetime | None,
    now: datetime,
) -> str | None:
    if breached is not None:
        return "breached"
    if deadline is None:
        return None
    deadline = aware(deadline)
    if completed is not None:
        return "met" if aware(completed) <= deadline else "breached"
    if status is TimerStatus.ACTIVE and deadline < now:
        return "breached"
    return None


def _sla_key(value: Any, group_by: str | None, zone: tzinfo) -> str | None:
    if group_by is None:
        return None
    if group_by in ("day", "week"):
        return _bucket(value, group_by, zone)
    if value is None:
        return None
    return str(getattr(value, "value", value))


# --- contact reasons -------------------------------------------------------------------------
def contact_reasons(
    session: Session, *, since: datetime, until: datetime, language: str = "zh"
) -> list[ReasonRow]:
    """Tickets created per category in the window, most frequent first; every category shown."""
    _check(since, until, None, "UTC")
    stmt = (
        select(Ticket.category, func.count())
        .where(Ticket.created_at >= since, Ticket.created_at < until)
        .group_by(Ticket.category)
    )
    counts = {c.value: 0 for c in Category}
    for category, count in session.execute(stmt):
        counts[str(getattr(category, "value", category))] = count
    total = sum(counts.values())
    rows = [
        ReasonRow(category=c, label=_category_label(c, language), tickets=n,
                  share_pct=_pct(n, total))
        for c, n in counts.items()
    ]
    rows.sort(key=lambda r: (-r.tickets, r.category))
    return rows


# --- the report ------------------------------------------------------------------------------
def build_report(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    group_by: str = "agent",
    tz: str | tzinfo = "UTC",
    language: str = "zh",
    now: datetime | None = None,
) -> Report:
    """Everything a manager's dashboard shows for one window, grouped one way."""
    common = {"since": since, "until": until, "tz": tz, "language": language}
    return Report(
        since=since,
        until=until,
        group_by=group_by,
        csat_total=csat_report(session, **common)[0],
        csat=csat_report(session, group_by=group_by, **common),
        sla_total=sla_report(session, now=now, **common)[0],
        sla=sla_report(session, group_by=group_by, now=now, **common),
        reasons=contact_reasons(session, since=since, until=until, language=language),
    )


# --- shared ----------------------------------------------------------------------------------
def _check(since: datetime, until: datetime, group_by: str | None, tz: str | tzinfo) -> tzinfo:
    """Refuse naive or reversed windows and unknown groupings; return the bucketing zone."""
    if since.tzinfo is None or until.tzinfo is None:
        raise errors.ValidationError("since and until must be timezone-aware")
    if until <= since:
        raise errors.ValidationError("until must be after since")
    if group_by is not None and group_by not in GROUPS:
        raise errors.ValidationError(f"group_by must be one of {', '.join(GROUPS)}")
    if isinstance(tz, tzinfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ValueError, KeyError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise errors.ValidationError(f"unknown time zone {tz!r}") from exc


def _bucket(instant: datetime, group_by: str, zone: tzinfo) -> str:
    """'2026-03-09' for a day or '2026-W11' for an ISO week, in ``zone``."""
    local = aware(instant).astimezone(zone)
    if group_by == "day":
        return local.date().isoformat()
    year, week, _ = local.isocalendar()
    return f"{year}-W{week:02d}"


def _label(session: Session, rows: Iterable[Any], group_by: str | None, language: str) -> None:
    """Human names for keys: agents' and teams' names, categories' and channels' words."""
    rows = list(rows)
    ids = [int(r.key) for r in rows if r.key is not None and group_by in ("agent", "team")]
    names: dict[str, str] = {}
    if group_by == "agent" and ids:
        names = {str(i): n for i, n in session.execute(
            select(Agent.id, Agent.display_name).where(Agent.id.in_(ids)))}
    elif group_by == "team" and ids:
        for i, zh, en in session.execute(
                select(Team.id, Team.name_zh, Team.name_en).where(Team.id.in_(ids))):
            names[str(i)] = Text(zh=zh, en=en).get(language)
    for row in rows:
        if row.key is None:
            row.label = UNASSIGNED.get(language) if group_by else TOTAL.get(language)
        elif group_by == "category":
            row.label = _category_label(row.key, language)
        elif group_by == "channel":
            text = CHANNEL_LABELS.get(row.key)
            row.label = text.get(language) if text else row.key
        else:
            row.label = names.get(row.key, row.key)


def _category_label(category: str, language: str) -> str:
    text = CATEGORY_LABELS.get(category)
    return text.get(language) if text else category


def _ordered(rows: dict[str | None, Any]) -> list[Any]:
    """Stable order: unassigned first, then numeric ids numerically, other keys as text."""
    def sort_key(key: str | None) -> tuple[int, int, str]:
        if key is None:
            return (0, 0, "")
        return (1, int(key), "") if key.isdigit() else (2, 0, key)

    return [rows[k] for k in sorted(rows, key=sort_key)]

