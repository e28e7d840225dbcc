"""The agent's queues: the desk's home page and ``/api/v1/queues``.

The page (``GET /``) shows the tabs with their counts, the filters, the search box and one page
of rows. Tabs, filters, search and paging are plain links and a GET form, so the page works
without scripts; with htmx they fetch the same URL with ``HX-Request`` and get only the part
inside ``#queue-rows`` (tabs with counts, the table, paging) back. Each SLA clock is an element
with ``data-deadline`` (ISO 8601, UTC) and ``data-kind`` that the desk's script counts down;
the server renders the time left as the fallback text.

On the page a search looks through every ticket the person may see (any queue, any state);
on the API, ``q`` narrows the queue named in the path (``search`` is the every-ticket one).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as FastPath
from fastapi.responses import Response
from pydantic import BaseModel

from ticketing.core import local_time
from ticketing.core.models import Availability, Category, Channel, Priority, TicketState, Tier
from ticketing.web.api import errors
from ticketing.web.deps import Principal, desk_of, principal
from ticketing.web.queries import queues
from ticketing.web.texts import UI, span, ui

router = APIRouter()

SOON_SECONDS = 3600  # a clock with less than this left is shown as urgent


# --- what the page shows -------------------------------------------------------------------------
class Clocks:
    """Formats a row's times for one page: the shop's time zone, the agent's language, one now."""

    def __init__(self, *, language: str, timezone: str, now: datetime) -> None:
        self.language, self.timezone, self.now = language, timezone, now

    def moment(self, at: datetime | None) -> str:
        """``3月2日 10:00`` / ``2 Mar 10:00``."""
        if at is None:
            return ""
        return local_time.short_moment(at, language=self.language, timezone=self.timezone)

    def full(self, at: datetime | None) -> str:
        """``2026-03-02 10:00``."""
        return local_time.date_time(at, timezone=self.timezone) if at is not None else ""

    def left(self, deadline: queues.Deadline) -> str:
        """``剩 2小时15分`` / ``超时 5分钟`` / ``已暂停，剩 3小时0分``."""
        if deadline.paused:
            return UI["sla.paused"].get(self.language,
                                        time=span(deadline.remaining_seconds or 0, self.language))
        assert deadline.deadline_at is not None
        seconds = (deadline.deadline_at - self.now).total_seconds()
        if seconds <= 0:
            return UI["sla.overdue"].get(self.language, time=span(-seconds, self.language))
        return UI["sla.left"].get(self.language, time=span(seconds, self.language))

    def urgency(self, deadline: queues.Deadline) -> str:
        """A CSS class: ``paused``, ``overdue``, ``soon`` (under an hour) or ``ok``."""
        if deadline.paused:
            return "paused"
        if deadline.breached:
            return "overdue"
        assert deadline.deadline_at is not None
        return "soon" if (deadline.deadline_at - self.now).total_seconds() < SOON_SECONDS else "ok"


def _href(queue: str, filters: queues.Filters, offset: int = 0) -> str:
    params = {"queue": queue, **filters.as_params()}
    if offset:
        params["offset"] = str(offset)
    return "/?" + urlencode(params)


def _options(language: str) -> dict[str, list[tuple[str, str]]]:
    return {
        "category": [(c.value, ui(f"category.{c.value}", language)) for c in Category],
        "priority": [(p.value, ui(f"priority.{p.value}", language)) for p in reversed(Priority)],
        "tier": [(str(t.value), ui(f"tier.{t.value}", language)) for t in Tier],
        "channel": [(c.value, ui(f"channel.{c.value}", language)) for c in Channel],
        "state": [(s.value, ui(f"state.{s.value}", language)) for s in TicketState],
    }


@router.get("/", include_in_schema=False)
def home(
    request: Request, who: Annotated[Principal, Depends(principal)],
    queue: str | None = None, category: str | None = None, priority: str | None = None,
    tier: str | None = None, channel: str | None = None, state: str | None = None,
    q: str | None = None, offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    desk = desk_of(request)
    language, now = who.language, desk.clock()
    filters = queues.parse_filters(category=category, priority=priority, tier=tier,
                                   channel=channel, state=state, q=q)
    with desk.unit_of_work() as session:
        agent = who.agent(session)
        names = queues.queues_for(agent)
        tab = queue if queue in names else names[0]
        if queue not in (None, "", queues.SEARCH):
            queues.check_queue(agent, queue)  # an unknown queue is a 404, not a silent default
        shown = queues.SEARCH if filters.q else tab
        counts = queues.counts(session, agent=agent, now=now)
        page = queues.queue_rows(session, agent=agent, queue=shown, filters=filters,
                                 cipher=desk.cipher, offset=offset, now=now)
        availability = agent.availability
    end = page.offset + len(page.rows)
    context = {
        "language": language, "who": who, "csrf_token": who.csrf_token, "page": page,
        "tab": tab, "filters": filters, "params": filters.as_params(),
        "tabs": [{"name": n, "count": counts.get(n, 0), "href": _href(n, replace(filters, q=None)),
                  "active": n == shown} for n in names],
        "clocks": Clocks(language=language, timezone=desk.settings.timezone, now=now),
        "options": _options(language),
        "availabilities": [a.value for a in Availability], "availability": availability.value,
        "range": UI["page.range"].get(language, start=page.offset + 1 if page.rows else 0,
                                      end=end, total=page.total),
        "previous_href": _href(tab, filters, max(0, page.offset - page.limit))
        if page.offset > 0 else None,
        "next_href": _href(tab, filters, end) if page.has_more else None,
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
    }
    partial = ("hx-request" in request.headers
               and "hx-history-restore-request" not in request.headers)
    response = desk.templates.TemplateResponse(
        request, "partials/queue_rows.html" if partial else "queue.html", context)
    response.headers["Vary"] = "HX-Request"
    return response


# --- JSON ----------------------------------------------------------------------------------------
class QueueCountOut(BaseModel):
    name: str
    label: str
    count: int


class QueuesOut(BaseModel):
    queues: list[QueueCountOut]


class DeadlineOut(BaseModel):
    kind: Literal["first_response", "next_response", "resolution"]
    status: Literal["active", "paused"]
    deadline_at: datetime | None  # running clocks
    remaining_seconds: float | None  # paused clocks: business seconds left
    breached: bool


class PreviewOut(BaseModel):
    text: str
    author_type: str
    at: datetime


class QueueRowOut(BaseModel):
    id: int
    number: str
    url: str
    subject: str
    state: TicketState
    priority: Priority
    tier: int
    category: Category
    channel: Channel
    language: str
    vip: bool
    customer_name: str
    owner_name: str | None
    assignee_name: str | None
    flags: list[str]
    created_at: datetime
    solved_at: datetime | None
    next_deadline: datetime | None
    deadlines: list[DeadlineOut]
    last_message: PreviewOut | None


class QueuePageOut(BaseModel):
    queue: str
    total: int
    limit: int
    offset: int
    rows: list[QueueRowOut]


SEARCH_HELP = ("a ticket number (T…), an order number (16–19 digits), a customer's phone "
               "(11+ digits, exact) or words of the subject or thread")


def _enum(kind: type) -> dict[str, object]:
    """The schema's list of a filter's values; empty means any, as the page's form sends it."""
    return {"enum": ["", *(str(member.value) for member in kind)]}  # type: ignore[attr-defined]


def _one_of(kind: type) -> str:
    return "one of: " + ", ".join(str(m.value) for m in kind)


def _row_out(row: queues.QueueRow) -> QueueRowOut:
    return QueueRowOut(
        id=row.id, number=row.number, url=f"/tickets/{row.id}", subject=row.subject,
        state=row.state, priority=row.priority, tier=row.tier, category=row.category,
        channel=row.channel, language=row.language, vip=row.vip,
        customer_name=row.customer_name, owner_name=row.owner_name,
        assignee_name=row.assignee_name, flags=list(row.flags), created_at=row.created_at,
        solved_at=row.solved_at, next_deadline=row.next_deadline,
        deadlines=[DeadlineOut(kind=d.kind.value, status=d.status.value,
                               deadline_at=d.deadline_at, remaining_seconds=d.remaining_seconds,
                               breached=d.breached) for d in row.deadlines],
        last_message=PreviewOut(text=row.last_message.text,
                                author_type=row.last_message.author_type,
                                at=row.last_message.at) if row.last_message else None)


@router.get("/api/v1/queues", response_model=QueuesOut, tags=["queues"],
            responses=errors())
def queue_counts(request: Request, who: Annotated[Principal, Depends(principal)]) -> QueuesOut:
    """The queues the signed-in person has, with how many tickets each holds."""
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        counts = queues.counts(session, agent=who.agent(session), now=desk.clock())
    return QueuesOut(queues=[QueueCountOut(name=n, label=ui(f"queue.{n}", who.language), count=c)
                             for n, c in counts.items()])


@router.get("/api/v1/queues/{name}", response_model=QueuePageOut, tags=["queues"],
            responses=errors(404))
def queue_page(
    request: Request, who: Annotated[Principal, Depends(principal)],
    name: Annotated[str, FastPath(max_length=40, description=", ".join(queues.NAMES))],
    category: Annotated[str | None, Query(description=_one_of(Category),
                                json_schema_extra=_enum(Category))] = None,
    priority: Annotated[str | None, Query(description=_one_of(Priority),
                                json_schema_extra=_enum(Priority))] = None,
    tier: Annotated[int | None, Query(ge=1, le=3, description=_one_of(Tier))] = None,
    channel: Annotated[str | None, Query(description=_one_of(Channel),
                               json_schema_extra=_enum(Channel))] = None,
    state: Annotated[str | None, Query(description=_one_of(TicketState),
                             json_schema_extra=_enum(TicketState))] = None,
    q: Annotated[str | None, Query(description=SEARCH_HELP,
                                   max_length=queues.MAX_QUERY_CHARS)] = None,
    limit: Annotated[int, Query(ge=1, le=queues.MAX_LIMIT)] = queues.DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> QueuePageOut:
    """One page of a queue, nearest SLA deadline first; ``search`` is every visible ticket.

    ``q`` finds a ticket number, an order number, a customer's phone (exact) or words of the
    subject or thread. Filters take the enum values; a bad one is a 422.
    """
    desk = desk_of(request)
    filters = queues.parse_filters(category=category, priority=priority, tier=tier,
                                   channel=channel, state=state, q=q)
    with desk.unit_of_work() as session:
        page = queues.queue_rows(session, agent=who.agent(session), queue=name, filters=filters,
                                 cipher=desk.cipher, limit=limit, offset=offset,
                                 now=desk.clock())
    return QueuePageOut(queue=page.queue, total=page.total, limit=page.limit, offset=page.offset,
                        rows=[_row_out(r) for r in page.rows])
