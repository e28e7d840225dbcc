"""The audit log, for admins: ``/admin/audit`` and ``GET /api/v1/admin/audit``.

Newest first, 50 a page, narrowed by who acted, an action prefix (``admin.`` is every admin
change, ``desk.sign`` every sign-in), what it acted on and a date range in the shop's time
zone. The filters are a plain GET form and the pages plain links, so the page works without
scripts; details are shown as stored (the services that write them mask personal data).
"""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ticketing.web.api import InvalidInput, errors
from ticketing.web.deps import desk_of
from ticketing.web.queries import admin as reads
from ticketing.web.queries.admin import AuditFilters, AuditPageOut
from ticketing.web.routes.admin_guard import AdminWho, render
from ticketing.web.texts import UI

router = APIRouter()

ActorId = Annotated[int | None, Query(ge=1, le=2_147_483_647, description="The acting agent.")]
Action = Annotated[str | None, Query(max_length=48, description="An action prefix, e.g. admin.")]
TargetType = Annotated[str | None, Query(max_length=32, description="e.g. agent, team, "
                                                                    "sla_policy, ticket")]
TargetId = Annotated[str | None, Query(max_length=64)]
Since = Annotated[date | None, Query(description="From this day (shop's time zone).")]
Until = Annotated[date | None, Query(description="Up to and including this day.")]
Limit = Annotated[int, Query(ge=1, le=reads.MAX_AUDIT_PAGE)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]


def _filters(actor_id: int | None, action: str | None, target_type: str | None,
             target_id: str | None, since: date | None, until: date | None) -> AuditFilters:
    def clean(value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    return AuditFilters(actor_id=actor_id, action=clean(action), target_type=clean(target_type),
                        target_id=clean(target_id), since=since, until=until)


@router.get("/api/v1/admin/audit", response_model=AuditPageOut, tags=["admin"],
            responses=errors())
def audit_json(request: Request, who: AdminWho, actor_id: ActorId = None, action: Action = None,
               target_type: TargetType = None, target_id: TargetId = None,
               since: Since = None, until: Until = None, limit: Limit = reads.AUDIT_PAGE,
               offset: Offset = 0) -> AuditPageOut:
    """One page of the audit log, newest first, filtered; dates are the shop's days."""
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        return reads.audit_page(session, filters=_filters(actor_id, action, target_type,
                                                          target_id, since, until),
                                timezone=desk.settings.timezone, limit=limit, offset=offset)


def _form_value(kind: type[int] | type[date], name: str, value: str | None) -> Any:
    """A filter from the page's GET form, where an empty field means no filter."""
    if value is None or not value.strip():
        return None
    try:
        parsed = int(value) if kind is int else date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput([name]) from None
    if kind is int and not 1 <= parsed <= 2_147_483_647:
        raise InvalidInput([name])
    return parsed


FormText = Annotated[str | None, Query(max_length=64)]


@router.get("/admin/audit", include_in_schema=False)
def audit_page(request: Request, who: AdminWho, actor_id: FormText = None, action: Action = None,
               target_type: TargetType = None, target_id: TargetId = None,
               since: FormText = None, until: FormText = None, offset: Offset = 0) -> Response:
    desk = desk_of(request)
    filters = _filters(_form_value(int, "actor_id", actor_id), action, target_type, target_id,
                       _form_value(date, "since", since), _form_value(date, "until", until))
    with desk.unit_of_work() as session:
        page = reads.audit_page(session, filters=filters, timezone=desk.settings.timezone,
                                offset=offset)
        actors = reads.audit_actors(session)
    end = page.offset + len(page.rows)

    def href(at: int) -> str:
        return "/admin/audit?" + urlencode({**filters.as_params(), "offset": str(at)})

    return render(
        request, who, "admin/audit.html", "audit", page=page, filters=filters, actors=actors,
        details={row.id: json.dumps(row.details, ensure_ascii=False, sort_keys=True)
                 for row in page.rows},
        range=UI["page.range"].get(who.language, start=page.offset + 1 if page.rows else 0,
                                   end=end, total=page.total),
        previous_href=href(max(0, page.offset - page.limit)) if page.offset > 0 else None,
        next_href=href(end) if end < page.total else None)
