"""What admins tune at run time: SLA targets, business hours and canned replies (rules §SLA-1,
§SLA-3, §SEC-6).

Each setting is a row that overrides a built-in default (``sla.policy_for``'s table, the
deployment's ``KEFU_BUSINESS_HOURS``, ``canned_replies.REPLIES``); removing the row brings the
default back. The desk reads the rows itself (``sla.policy_in``, ``sla.SlaConfig.for_session``,
``canned_replies.catalogue``), so a change applies to the next ticket, timer or reply without a
restart; timers already running keep the deadline they were promised. Every change is one
audit row (``admin.*``) and is checked whole before anything is written; a change to the value
already in force writes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.core import audit
from ticketing.core.clock import utcnow
from ticketing.core.errors import ConfigurationError
from ticketing.core.i18n import Text
from ticketing.core.models import CannedReplyRow, DeskSetting, Priority, Segment, SlaPolicyRow
from ticketing.core.settings import schedule_of
from ticketing.desk import business_hours, canned_replies, sla
from ticketing.desk.directory import InvalidField

SLA_POLICY_CHANGED = "admin.sla_policy_changed"
SLA_POLICY_RESET = "admin.sla_policy_reset"
BUSINESS_HOURS_CHANGED = "admin.business_hours_changed"
CANNED_REPLY_CREATED = "admin.canned_reply_created"
CANNED_REPLY_UPDATED = "admin.canned_reply_updated"
CANNED_REPLY_DELETED = "admin.canned_reply_deleted"

MAX_MINUTES = 60 * 24 * 60  # sixty days: anything longer is a typo, not a promise
MAX_SPEC = 200
AUDIT_TEXT = 200  # canned reply texts in an audit detail are clipped to this
_KEY = re.compile(r"^[a-z0-9][a-z0-9_]{1,63}$")

WHY_MINUTES = Text(f"时限为 1–{MAX_MINUTES} 分钟的整数。",
                   f"A target is a whole number of minutes from 1 to {MAX_MINUTES}.")
WHY_RESOLUTION = Text("解决时限不能短于首次响应时限。",
                      "The resolution target cannot be shorter than the first response.")
WHY_HOURS = Text("格式如 “mon-fri 09:00-18:00; sat 10:00-16:00”。",
                 "Write it like “mon-fri 09:00-18:00; sat 10:00-16:00”.")
WHY_KEY = Text("代码为 2–64 个小写字母、数字或 _。",
               "A key is 2–64 lower-case letters, digits or _.")
WHY_PLACEHOLDER = Text("可用的占位符：{names}。", "Placeholders you may use: {names}.")


# --- SLA targets ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SlaTarget:
    """The targets in force for one priority and segment, and whether an admin set them."""

    priority: Priority
    segment: Segment
    first_response_minutes: int
    next_response_minutes: int
    resolution_minutes: int
    custom: bool
    updated_at: datetime | None = None
    updated_by: int | None = None

    def minutes(self) -> dict[str, int]:
        return {"first_response_minutes": self.first_response_minutes,
                "next_response_minutes": self.next_response_minutes,
                "resolution_minutes": self.resolution_minutes}


def _minutes(span: timedelta) -> int:
    return int(span.total_seconds() // 60)


def _default(priority: Priority, segment: Segment) -> SlaTarget:
    policy = sla.policy_for(priority=priority, segment=segment)
    return SlaTarget(priority, segment, _minutes(policy.first_response),
                     _minutes(policy.next_response), _minutes(policy.resolution), custom=False)


def _target(row: SlaPolicyRow) -> SlaTarget:
    return SlaTarget(Priority(row.priority), Segment(row.segment), row.first_response_minutes,
                     row.next_response_minutes, row.resolution_minutes, custom=True,
                     updated_at=row.updated_at, updated_by=row.updated_by)


def sla_targets(session: Session) -> list[SlaTarget]:
    """Every (priority, segment), most urgent first: the admin's row, else the built-in."""
    rows = {(r.priority, r.segment): r for r in session.scalars(select(SlaPolicyRow))}
    found = []
    for priority in reversed(Priority):
        for segment in Segment:
            row = rows.get((priority.value, segment.value))
            found.append(_target(row) if row is not None else _default(priority, segment))
    return found


def _keys(priority: Priority | str, segment: Segment | str) -> tuple[Priority, Segment]:
    try:
        wanted_priority = Priority(priority)
    except ValueError:
        raise InvalidField("priority") from None
    try:
        return wanted_priority, Segment(segment)
    except ValueError:
        raise InvalidField("segment") from None


def _row(session: Session, priority: Priority, segment: Segment) -> SlaPolicyRow | None:
    return session.scalar(select(SlaPolicyRow).where(SlaPolicyRow.priority == priority.value,
                                                     SlaPolicyRow.segment == segment.value))


def _check_minutes(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_MINUTES:
        raise InvalidField(name, WHY_MINUTES)
    return value


def set_sla_target(
    session: Session, *, by_agent_id: int, priority: Priority | str, segment: Segment | str,
    first_response_minutes: int, next_response_minutes: int, resolution_minutes: int,
    ip: str | None = None, now: datetime | None = None,
) -> SlaTarget:
    """New targets for tickets of ``priority`` from customers of ``segment``; applies to
    timers started from now on. Audited as ``admin.sla_policy_changed`` (from → to)."""
    now = now or utcnow()
    wanted_priority, wanted_segment = _keys(priority, segment)
    first = _check_minutes("first_response_minutes", first_response_minutes)
    follow = _check_minutes("next_response_minutes", next_response_minutes)
    resolve = _check_minutes("resolution_minutes", resolution_minutes)
    if resolve < first:
        raise InvalidField("resolution_minutes", WHY_RESOLUTION)
    row = _row(session, wanted_priority, wanted_segment)
    before = _target(row) if row is not None else _default(wanted_priority, wanted_segment)
    after = {"first_response_minutes": first, "next_response_minutes": follow,
             "resolution_minutes": resolve}
    if before.minutes() == after:
        return before
    if row is None:
        row = SlaPolicyRow(priority=wanted_priority.value, segment=wanted_segment.value)
        session.add(row)
    row.first_response_minutes, row.next_response_minutes = first, follow
    row.resolution_minutes, row.updated_at, row.updated_by = resolve, now, by_agent_id
    session.flush()
    audit.by_agent(session, SLA_POLICY_CHANGED, by_agent_id=by_agent_id, target_type="sla_policy",
            target_id=f"{wanted_priority.value}/{wanted_segment.value}", ip=ip, now=now,
            details={"priority": wanted_priority.value, "segment": wanted_segment.value,
                     "from": {**before.minutes(), "custom": before.custom}, "to": after})
    return _target(row)


def reset_sla_target(session: Session, *, by_agent_id: int, priority: Priority | str,
                     segment: Segment | str, ip: str | None = None,
                     now: datetime | None = None) -> SlaTarget:
    """Back to the built-in targets (the admin's row is deleted); nothing to do without one."""
    wanted_priority, wanted_segment = _keys(priority, segment)
    row = _row(session, wanted_priority, wanted_segment)
    default = _default(wanted_priority, wanted_segment)
    if row is None:
        return default
    before = _target(row)
    session.delete(row)
    session.flush()
    audit.by_agent(session, SLA_POLICY_RESET, by_agent_id=by_agent_id, target_type="sla_policy",
            target_id=f"{wanted_priority.value}/{wanted_segment.value}", ip=ip, now=now,
            details={"priority": wanted_priority.value, "segment": wanted_segment.value,
                     "from": before.minutes(), "to": {**default.minutes(), "custom": False}})
    return default


# --- business hours -------------------------------------------------------------------------------
@dataclass(frozen=True)
class BusinessHours:
    """The hours SLA clocks count: an admin's (``custom``), else the deployment's; ``spec``
    None means round the clock."""

    spec: str | None
    custom: bool
    default_spec: str | None
    timezone: str
    updated_at: datetime | None = None
    updated_by: int | None = None


def business_hours_of(session: Session) -> BusinessHours:
    schedule = schedule_of(session)
    row = session.get(DeskSetting, sla.BUSINESS_HOURS_SETTING)
    spec = sla.business_hours_spec(session)
    return BusinessHours(spec=spec or schedule.business_hours, custom=spec is not None,
                         default_spec=schedule.business_hours, timezone=schedule.timezone,
                         updated_at=row.updated_at if row is not None and spec else None,
                         updated_by=row.updated_by if row is not None and spec else None)


def set_business_hours(session: Session, *, by_agent_id: int, spec: str | None,
                       ip: str | None = None, now: datetime | None = None) -> BusinessHours:
    """Staffed hours in the shop's time zone, e.g. ``mon-fri 09:00-18:00; sat 10:00-16:00``
    (round the clock: ``mon-sun 00:00-24:00``); None or blank goes back to the deployment's.
    A spec that does not parse is refused. Audited as ``admin.business_hours_changed``."""
    now = now or utcnow()
    before = business_hours_of(session)
    wanted = " ".join(str(spec or "").split()) or None
    if wanted is not None:
        if len(wanted) > MAX_SPEC:
            raise InvalidField("spec", WHY_HOURS)
        try:
            business_hours.parse(wanted, before.timezone)
        except ConfigurationError:
            raise InvalidField("spec", WHY_HOURS) from None
    if wanted == (before.spec if before.custom else None):
        return before
    row = session.get(DeskSetting, sla.BUSINESS_HOURS_SETTING)
    if wanted is None:
        if row is not None:
            session.delete(row)
    else:
        if row is None:
            row = DeskSetting(key=sla.BUSINESS_HOURS_SETTING)
            session.add(row)
        row.value, row.updated_at, row.updated_by = {"spec": wanted}, now, by_agent_id
    session.flush()
    after = business_hours_of(session)
    audit.by_agent(session, BUSINESS_HOURS_CHANGED, by_agent_id=by_agent_id, target_type="desk_setting",
            target_id=sla.BUSINESS_HOURS_SETTING, ip=ip, now=now,
            details={"from": before.spec, "to": after.spec, "custom": after.custom,
                     "timezone": after.timezone})
    return after


# --- canned replies -------------------------------------------------------------------------------
@dataclass(frozen=True)
class CannedEntry:
    """One reply as the admin page lists it: shipped with Kefu (``built_in``), changed or
    written by an admin (``custom``), hidden from agents when not ``active``."""

    key: str
    title: Text
    body: Text
    active: bool
    built_in: bool
    custom: bool


def canned_entries(session: Session) -> list[CannedEntry]:
    """The built-ins in their order (with admins' changes), then admins' own replies by key."""
    rows = {r.key: r for r in session.scalars(select(CannedReplyRow).order_by(CannedReplyRow.key))}
    entries = []
    for key, reply in canned_replies.REPLIES.items():
        row = rows.pop(key, None)
        shown = canned_replies.reply_of(row) if row is not None else reply
        entries.append(CannedEntry(key, shown.title, shown.body, row.active if row else True,
                                   built_in=True, custom=row is not None))
    for key, row in rows.items():
        reply = canned_replies.reply_of(row)
        entries.append(CannedEntry(key, reply.title, reply.body, row.active, built_in=False,
                                   custom=True))
    return entries


def _body(name: str, value: str) -> str:
    body = str(value or "").strip()
    if not body or len(body) > 4000:
        raise InvalidField(name)
    unknown = canned_replies.placeholders_in(body) - set(canned_replies.PLACEHOLDERS)
    if unknown:
        names = ", ".join("{" + p + "}" for p in canned_replies.PLACEHOLDERS)
        raise InvalidField(name, Text(WHY_PLACEHOLDER.zh.format(names=names),
                                      WHY_PLACEHOLDER.en.format(names=names)))
    return body


def _clip(value: object) -> object:
    if isinstance(value, str) and len(value) > AUDIT_TEXT:
        return value[:AUDIT_TEXT - 1] + "…"
    return value


def save_canned_reply(
    session: Session, *, by_agent_id: int, key: str, title_zh: str, title_en: str,
    body_zh: str, body_en: str, active: bool = True, ip: str | None = None,
    now: datetime | None = None,
) -> CannedEntry:
    """Write reply ``key`` in both languages: a built-in's key replaces it for agents, a new
    key adds a reply; ``active`` False hides it. Bodies may use only the known placeholders.
    Audited as ``admin.canned_reply_created`` / ``_updated`` with what changed (clipped)."""
    now = now or utcnow()
    key = str(key or "").strip()
    if not _KEY.match(key):
        raise InvalidField("key", WHY_KEY)
    new: dict[str, object] = {
        "title_zh": " ".join(str(title_zh or "").split()),
        "title_en": " ".join(str(title_en or "").split()),
        "body_zh": _body("body_zh", body_zh), "body_en": _body("body_en", body_en),
        "active": bool(active)}
    for field in ("title_zh", "title_en"):
        if not new[field] or len(str(new[field])) > 120:
            raise InvalidField(field)
    row = session.scalar(select(CannedReplyRow).where(CannedReplyRow.key == key))
    built_in = canned_replies.REPLIES.get(key)
    if row is not None:
        old: dict[str, object] = {name: getattr(row, name) for name in new}
    elif built_in is not None:
        old = {"title_zh": built_in.title.zh, "title_en": built_in.title.en,
               "body_zh": built_in.body.zh, "body_en": built_in.body.en, "active": True}
    else:
        old = {}
    changed = {name: {"from": _clip(old.get(name)), "to": _clip(value)}
               for name, value in new.items() if old.get(name) != value}
    if changed:
        if row is None:
            row = CannedReplyRow(key=key)
            session.add(row)
        for name, value in new.items():
            setattr(row, name, value)
        row.updated_at, row.updated_by = now, by_agent_id
        session.flush()
        audit.by_agent(session, CANNED_REPLY_UPDATED if old else CANNED_REPLY_CREATED,
                by_agent_id=by_agent_id, target_type="canned_reply", target_id=key, ip=ip,
                now=now, details={"key": key, "built_in": built_in is not None,
                                  "changed": changed})
    return next(e for e in canned_entries(session) if e.key == key)


def delete_canned_reply(session: Session, *, by_agent_id: int, key: str,
                        ip: str | None = None, now: datetime | None = None) -> None:
    """Drop the admin's version of ``key``: a built-in comes back as shipped, an admin's own
    reply is gone. CannedReplyNotFound when there is no such row."""
    row = session.scalar(select(CannedReplyRow).where(CannedReplyRow.key == str(key)))
    if row is None:
        raise canned_replies.CannedReplyNotFound(key=key)
    details = {"key": row.key, "built_in": row.key in canned_replies.REPLIES,
               "title_zh": row.title_zh, "title_en": row.title_en, "active": row.active}
    session.delete(row)
    session.flush()
    audit.by_agent(session, CANNED_REPLY_DELETED, by_agent_id=by_agent_id, target_type="canned_reply",
            target_id=details["key"], ip=ip, now=now, details=details)
