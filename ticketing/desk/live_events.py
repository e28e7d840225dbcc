"""Live updates for the desk: what changed since a reader's cursor, and a wake-up after commit.

The database is the source of truth: the rows services already write are the feed —
:class:`TicketEvent` (created, claimed, transferred, escalated, state changes, CSAT…),
:class:`TicketMessage` (customer messages, replies, notes) and :class:`Notification` (an
agent's own: ``customer_message``, ``sla_warning``, ``sla_breach``, ``assigned``…). A reader
(one SSE connection of the desk web) keeps a :class:`Cursor` — the last id it has read of each
of the three tables — and asks :meth:`Follower.read` for what is new, filtered to the tickets
its agent may see (:func:`ticketing.desk.access.visible_tickets`) plus the agent's own
notifications. Nothing lives in process memory that another process needs: any desk process
resumes any cursor.

On PostgreSQL ids are handed out at insert and transactions commit in any order, so an id
below the cursor may still appear. A cursor therefore remembers the *gaps* below its last id
and looks at them again for up to :data:`GAP_WAIT` seconds; a rolled-back insert leaves a gap
that simply expires. SQLite has one writer at a time and never leaves such gaps open.

Wake-ups: :func:`install` hooks every session of a writing process (desk web, gateway, action
server, worker) and, after a commit that added feed rows, publishes one tiny message on the
Redis channel :data:`CHANNEL` — never failing the commit when Redis is down. Readers that
miss it (or run without Redis) find the rows on their next poll anyway.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ticketing.core.db import after_commit
from ticketing.core.i18n import Text
from ticketing.core.models import Agent, Notification, Ticket, TicketEvent, TicketMessage
from ticketing.desk import access

log = logging.getLogger(__name__)

CHANNEL = "kefu:live"
CHANGED = "changed"  # the message body: something was committed, look again
SOURCES = ("ticket", "message", "notification")  # the three parts of a cursor, in order
_MODELS: dict[str, Any] = {"ticket": TicketEvent, "message": TicketMessage,
                           "notification": Notification}
BATCH = 200  # ids read per source per step
GAP_WAIT = 30.0  # seconds a missing id below the cursor is looked for again
MAX_GAPS = 64  # per source; the newest are kept
MAX_RESUME = 5000  # a cursor further behind than this is not replayed: the page reloads
EXCERPT = 80
_PENDING = "kefu_live_pending"  # session.info key: this transaction added feed rows

try:  # redis is a dependency, but the single-machine set-up must import without a server
    from redis.exceptions import RedisError
except ImportError:  # pragma: no cover
    RedisError = OSError  # type: ignore[misc,assignment]

PUBLISH_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)

# --- what an agent reads -------------------------------------------------------------------
EVENT_TEXTS: dict[str, Text] = {
    "created": Text("新工单 {number}：{subject}", "New ticket {number}: {subject}"),
    "claimed": Text("{actor} 认领了 {number}", "{actor} claimed {number}"),
    "transferred": Text("{actor} 把 {number} 转给了 {target}",
                        "{actor} transferred {number} to {target}"),
    "escalated": Text("{number} 已升级到 L{tier}", "{number} escalated to L{tier}"),
    "reopened": Text("{number} 已重新打开", "{number} reopened"),
    "solved": Text("{number} 已解决", "{number} solved"),
    "closed": Text("{number} 已关闭", "{number} closed"),
    "state_changed": Text("{number} 状态变为 {state}", "{number} is now {state}"),
}
SOMETHING_CHANGED = Text("{number} 有更新", "{number} was updated")
MESSAGE_TEXTS: dict[str, Text] = {
    "customer_message": Text("{number} 客户：{excerpt}", "{number} customer: {excerpt}"),
    "agent_reply": Text("{actor} 回复了 {number}", "{actor} replied on {number}"),
    "note": Text("{actor} 在 {number} 写了内部备注", "{actor} added a note on {number}"),
    "bot_message": Text("{number} 机器人：{excerpt}", "{number} bot: {excerpt}"),
    "system_message": Text("{number}：{excerpt}", "{number}: {excerpt}"),
}
STATE_NAMES: dict[str, Text] = {
    "new": Text("新建", "new"), "open": Text("处理中", "open"),
    "waiting_customer": Text("等待客户", "waiting on the customer"),
    "solved": Text("已解决", "solved"), "closed": Text("已关闭", "closed"),
}
SOMEONE = Text("有人", "Someone")
ACTORS: dict[str, Text] = {"customer": Text("客户", "The customer"),
                           "bot": Text("机器人", "The bot"), "system": Text("系统", "The system")}
# events that concern the owner and helper personally: a toast, not just a refresh
_PERSONAL = frozenset({"claimed", "transferred", "escalated", "reopened", "closed"})


# --- cursors ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mark:
    """The last id read of one table, and the ids below it not seen yet (still in flight)."""

    last: int
    gaps: tuple[int, ...] = ()


_PART = re.compile(r"^\d{1,18}(~\d{1,18}){0,%d}$" % MAX_GAPS)


@dataclass(frozen=True)
class Cursor:
    """A reader's place in the three tables; its text form is the SSE event id."""

    marks: tuple[Mark, Mark, Mark]

    def encode(self) -> str:
        return ":".join("~".join(str(n) for n in (m.last, *m.gaps)) for m in self.marks)

    @classmethod
    def parse(cls, text: str | None) -> Cursor | None:
        """The cursor an event id names; None for anything else (the reader starts at now)."""
        parts = (text or "").strip().split(":")
        if len(parts) != len(SOURCES) or not all(_PART.match(p) for p in parts):
            return None
        marks = []
        for part in parts:
            last, *gaps = (int(n) for n in part.split("~"))
            marks.append(Mark(last, tuple(sorted({g for g in gaps if g < last}))))
        return cls(tuple(marks))  # type: ignore[arg-type]

    def behind(self, head: Cursor) -> bool:
        """Whether rows may wait past this cursor: newer ids at ``head``, or open gaps."""
        return any(m.gaps or m.last < h.last for m, h in zip(self.marks, head.marks))

    def distance(self, head: Cursor) -> int:
        return max(h.last - m.last for m, h in zip(self.marks, head.marks))


def head(session: Session) -> Cursor:
    """The cursor of "now": the newest id of each table (one round trip)."""
    row = session.execute(select(*(
        select(func.coalesce(func.max(_MODELS[s].id), 0)).scalar_subquery() for s in SOURCES
    ))).one()
    return Cursor(tuple(Mark(int(n)) for n in row))  # type: ignore[arg-type]


# --- events -------------------------------------------------------------------------------------
@dataclass
class LiveEvent:
    """One thing an agent's open pages should know about (JSON in the stream)."""

    source: str  # ticket | message | notification
    row_id: int
    kind: str  # the event's kind, customer_message/agent_reply/note/…, or the notification's
    ticket_id: int | None
    number: str | None
    text: str
    at: datetime
    actor_id: int | None = None
    toast: bool = False
    data: dict[str, object] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Unique per row: what a page uses to drop an event it was already shown."""
        return f"{self.source[0]}{self.row_id}"

    def as_dict(self) -> dict[str, object]:
        return {"key": self.key, "source": self.source, "kind": self.kind,
                "ticket_id": self.ticket_id, "number": self.number, "text": self.text,
                "at": self.at.isoformat(), "actor_id": self.actor_id, "toast": self.toast,
                **({"data": self.data} if self.data else {})}


class Follower:
    """One reader's place in the feed (one SSE connection): its cursor, and since when it has
    waited for each gap (gaps found again after a reconnect wait :data:`GAP_WAIT` afresh)."""

    def __init__(self, cursor: Cursor, *, gap_wait: float = GAP_WAIT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cursor = cursor
        self.gap_wait = gap_wait
        self.clock = clock
        self.more = False
        self._since: dict[tuple[int, int], float] = {}

    def read(self, session: Session, *, agent_id: int, language: str,
             limit: int = BATCH) -> list[LiveEvent]:
        """What is new for ``agent_id`` since the cursor, oldest first; advances the cursor.

        ``self.more`` tells whether a source had more than ``limit`` new rows (read again)."""
        agent = session.get(Agent, agent_id)
        if agent is None:
            return []
        now = self.clock()
        marks, fresh, self.more = [], {}, False
        for index, source in enumerate(SOURCES):
            mark, ids = self._advance(session, index, self.cursor.marks[index], limit, now)
            marks.append(mark)
            fresh[source] = ids
        self.cursor = Cursor(tuple(marks))  # type: ignore[arg-type]
        found = (_ticket_events(session, agent, fresh["ticket"])
                 + _messages(session, agent, fresh["message"])
                 + _notifications(session, agent, fresh["notification"], language))
        _name(session, found, agent, language)
        found.sort(key=lambda e: (e.at, SOURCES.index(e.source), e.row_id))
        return found

    def _advance(self, session: Session, index: int, mark: Mark, limit: int,
                 now: float) -> tuple[Mark, list[int]]:
        model = _MODELS[SOURCES[index]]
        new = list(session.scalars(select(model.id).where(model.id > mark.last)
                                   .order_by(model.id).limit(limit)))
        late = list(session.scalars(select(model.id).where(model.id.in_(mark.gaps)))) \
            if mark.gaps else []
        if len(new) == limit:
            self.more = True
        last = new[-1] if new else mark.last
        present = set(new)
        gaps = set(mark.gaps) - set(late)
        candidate, missing = last - 1, []
        while candidate > mark.last and len(missing) < MAX_GAPS:
            if candidate not in present:
                missing.append(candidate)
            candidate -= 1
        gaps.update(missing)
        kept = []
        for gap in sorted(gaps, reverse=True)[:MAX_GAPS]:
            since = self._since.setdefault((index, gap), now)
            if now - since < self.gap_wait:
                kept.append(gap)
        for key in [k for k in self._since if k[0] == index and k[1] not in kept]:
            del self._since[key]
        return Mark(last, tuple(sorted(kept))), sorted(late) + new


def _ticket_events(session: Session, agent: Agent, ids: list[int]) -> list[LiveEvent]:
    if not ids:
        return []
    rows = session.execute(
        select(TicketEvent, Ticket.number, Ticket.subject, Ticket.owner_id, Ticket.assignee_id)
        .join(Ticket, Ticket.id == TicketEvent.ticket_id)
        .where(TicketEvent.id.in_(ids), access.visible_tickets(session, agent)))
    found = []
    for ev, number, subject, owner_id, assignee_id in rows:
        by_other = ev.actor_id != agent.id or ev.actor_type != "agent"
        mine = agent.id in (owner_id, assignee_id)
        toast = by_other and access.works_tickets(agent) and (
            ev.kind == "created" or (mine and ev.kind in _PERSONAL))
        data = {"actor_type": ev.actor_type, "from": ev.from_value, "to": ev.to_value,
                "subject": subject}
        found.append(LiveEvent("ticket", ev.id, ev.kind, ev.ticket_id, number, "", ev.at,
                               actor_id=ev.actor_id, toast=toast, data=data))
    return found


def _message_kind(author_type: str, internal: bool) -> str:
    if author_type == "customer":
        return "customer_message"
    if author_type == "agent":
        return "note" if internal else "agent_reply"
    return "bot_message" if author_type == "bot" else "system_message"


def _messages(session: Session, agent: Agent, ids: list[int]) -> list[LiveEvent]:
    if not ids:
        return []
    rows = session.execute(
        select(TicketMessage.id, TicketMessage.ticket_id, TicketMessage.at,
               TicketMessage.author_type, TicketMessage.author_id, TicketMessage.internal,
               func.substr(TicketMessage.body, 1, EXCERPT + 1), Ticket.number)
        .join(Ticket, Ticket.id == TicketMessage.ticket_id)
        .where(TicketMessage.id.in_(ids), access.visible_tickets(session, agent)))
    found = []
    for row_id, ticket_id, at, author_type, author_id, internal, body, number in rows:
        excerpt = " ".join((body or "").split())
        excerpt = excerpt[:EXCERPT] + ("…" if len(excerpt) > EXCERPT else "")
        found.append(LiveEvent("message", row_id, _message_kind(author_type, internal),
                               ticket_id, number, "", at,
                               actor_id=author_id if author_type == "agent" else None,
                               data={"author_type": author_type, "excerpt": excerpt}))
    return found


def _notifications(session: Session, agent: Agent, ids: list[int],
                   language: str) -> list[LiveEvent]:
    if not ids:
        return []
    rows = session.execute(
        select(Notification, Ticket.number)
        .outerjoin(Ticket, Ticket.id == Notification.ticket_id)
        .where(Notification.id.in_(ids), Notification.agent_id == agent.id))
    return [LiveEvent("notification", note.id, note.kind, note.ticket_id, number,
                      note.text_zh if language == "zh" else note.text_en,
                      note.created_at, toast=True)
            for note, number in rows]


def _agent_ids(events: Iterable[LiveEvent]) -> set[int]:
    ids = set()
    for e in events:
        if e.actor_id is not None and e.data.get("actor_type", "agent") == "agent":
            ids.add(e.actor_id)
        if e.source == "ticket" and e.kind == "transferred" and str(e.data.get("to")).isdigit():
            ids.add(int(str(e.data["to"])))
    return ids


def _name(session: Session, events: list[LiveEvent], agent: Agent, language: str) -> None:
    """Fill in each event's text in ``language`` (notifications carry their own)."""
    ids = _agent_ids(events)
    query = select(Agent.id, Agent.display_name).where(Agent.id.in_(ids))
    names = dict(session.execute(query).tuples().all()) if ids else {}

    def who(agent_id: object, actor_type: object = "agent") -> str:
        if actor_type not in ("agent", None):
            return ACTORS.get(str(actor_type), ACTORS["system"]).get(language)
        name = names.get(agent_id) if isinstance(agent_id, int) else None
        return name or SOMEONE.get(language)

    for e in events:
        number = e.number or ""
        if e.source == "ticket":
            state = STATE_NAMES.get(str(e.data.get("to")))
            target = int(str(e.data["to"])) if str(e.data.get("to")).isdigit() else None
            e.text = EVENT_TEXTS.get(e.kind, SOMETHING_CHANGED).get(
                language, number=number, subject=e.data.get("subject") or "",
                actor=who(e.actor_id, e.data.get("actor_type")), target=who(target),
                tier=e.data.get("to") or "", state=state.get(language) if state else "")
        elif e.source == "message":
            e.text = MESSAGE_TEXTS[e.kind].get(language, number=number, actor=who(e.actor_id),
                                               excerpt=e.data.get("excerpt") or "")


# --- the wake-up after commit ------------------------------------------------------------------
def publish(client: Any, message: str = CHANGED, *, channel: str = CHANNEL) -> bool:
    """Tell every desk process to look again; False (logged) when Redis cannot be reached."""
    try:
        client.publish(channel, message)
        return True
    except PUBLISH_ERRORS as exc:
        log.warning("live wake-up not published (desk pages poll instead): %s", exc)
        return False


def install(target: sessionmaker[Session] | type[Session], client: Any, *,
            channel: str = CHANNEL) -> Callable[[], None]:
    """After every commit (of sessions made by ``target``) that added feed rows, publish a
    wake-up on ``channel``; returns an uninstaller. Like ``timer_index.install``: nothing is
    published for a rolled-back transaction, and a Redis error never fails the commit."""

    def collect(session: Session, pending: bool | None) -> bool:
        return bool(pending) or any(
            isinstance(obj, (TicketEvent, TicketMessage, Notification)) for obj in session.new)

    def deliver(_pending: bool) -> None:
        publish(client, CHANGED, channel=channel)

    return after_commit(target, key=_PENDING, collect=collect, deliver=deliver)


def start_at(session: Session, last_event_id: str | None) -> tuple[Cursor, bool]:
    """Where a reader starts: the cursor of ``last_event_id`` (a reconnect), else now.

    The flag says the reader must reload instead: its cursor is unknown or too far behind
    (more than :data:`MAX_RESUME` rows) to be replayed event by event. "Now" watches the
    ids missing just below it, which may belong to transactions still committing."""
    now = head(session)
    given = Cursor.parse(last_event_id)
    if given is not None:
        ahead = any(m.last > h.last for m, h in zip(given.marks, now.marks))
        if not ahead and given.distance(now) <= MAX_RESUME:
            return given, False
    marks = []
    for source, mark in zip(SOURCES, now.marks):
        model = _MODELS[source]
        floor = max(mark.last - MAX_GAPS, 0)
        present = set(session.scalars(select(model.id).where(model.id > floor)))
        marks.append(Mark(mark.last, tuple(i for i in range(floor + 1, mark.last)
                                           if i not in present)))
    return Cursor(tuple(marks)), bool(last_event_id)  # type: ignore[arg-type]


