"""SLA targets, business hours and canned replies, for admins: ``/admin/sla``,
``/admin/business-hours``, ``/admin/canned-replies`` and their JSON twins under
``/api/v1/admin/``.

Every change goes through ``ticketing.desk.policies`` (checked whole, one audit row, nothing
written when refused). The desk reads the new values on its next ticket, timer or reply.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as FastPath
from fastapi.responses import Response
from pydantic import BaseModel, Field, StringConstraints

from ticketing.core.models import Priority, Segment
from ticketing.desk import canned_replies, policies
from ticketing.web.api import body_of, errors
from ticketing.web.deps import client_ip, desk_of
from ticketing.web.routes.admin_guard import AdminBody, AdminWho, done, render
from ticketing.web.routes.tickets import Input, parse

router = APIRouter()
API = "/api/v1/admin"
TAGS: list[str | Enum] = ["admin"]

Minutes = Annotated[int, Field(ge=1, le=policies.MAX_MINUTES)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
ReplyBody = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
Key = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=64,
                                       pattern=r"^[a-z0-9][a-z0-9_]*$")]


class SlaTargetIn(Input):
    first_response_minutes: Minutes
    next_response_minutes: Minutes
    resolution_minutes: Minutes = Field(description="Not shorter than the first response.")


class SlaTargetOut(BaseModel):
    priority: Priority
    segment: Segment
    first_response_minutes: int
    next_response_minutes: int
    resolution_minutes: int
    custom: bool
    updated_at: datetime | None
    updated_by: int | None


class BusinessHoursIn(Input):
    spec: Annotated[str, StringConstraints(strip_whitespace=True, max_length=policies.MAX_SPEC)] \
        | None = Field(default=None, description="Like 'mon-fri 09:00-18:00; sat 10:00-16:00' in "
                                                 "the shop's time zone; blank or null: the "
                                                 "deployment's KEFU_BUSINESS_HOURS again.")


class BusinessHoursOut(BaseModel):
    spec: str | None
    custom: bool
    default_spec: str | None
    timezone: str
    updated_at: datetime | None
    updated_by: int | None


class CannedReplyIn(Input):
    key: Key
    title_zh: Title
    title_en: Title
    body_zh: ReplyBody = Field(description="May use {customer_name}, {order_number}, "
                                           "{agent_name}.")
    body_en: ReplyBody
    active: bool = Field(default=True, description="False hides it from agents.")


class CannedReplyOut(BaseModel):
    key: str
    title_zh: str
    title_en: str
    body_zh: str
    body_en: str
    active: bool
    built_in: bool
    custom: bool


def _target_out(target: policies.SlaTarget) -> SlaTargetOut:
    return SlaTargetOut(priority=target.priority, segment=target.segment,
                        first_response_minutes=target.first_response_minutes,
                        next_response_minutes=target.next_response_minutes,
                        resolution_minutes=target.resolution_minutes, custom=target.custom,
                        updated_at=target.updated_at, updated_by=target.updated_by)


def _hours_out(hours: policies.BusinessHours) -> BusinessHoursOut:
    return BusinessHoursOut(spec=hours.spec, custom=hours.custom, default_spec=hours.default_spec,
                            timezone=hours.timezone, updated_at=hours.updated_at,
                            updated_by=hours.updated_by)


def _reply_out(entry: policies.CannedEntry) -> CannedReplyOut:
    return CannedReplyOut(key=entry.key, title_zh=entry.title.zh, title_en=entry.title.en,
                          body_zh=entry.body.zh, body_en=entry.body.en, active=entry.active,
                          built_in=entry.built_in, custom=entry.custom)


# --- pages ----------------------------------------------------------------------------------------
@router.get("/admin/sla", include_in_schema=False)
def sla_page(request: Request, who: AdminWho) -> Response:
    with desk_of(request).unit_of_work() as session:
        targets = [_target_out(t) for t in policies.sla_targets(session)]
    return render(request, who, "admin/sla.html", "sla", targets=targets,
                  max_minutes=policies.MAX_MINUTES)


@router.get("/admin/business-hours", include_in_schema=False)
def business_hours_page(request: Request, who: AdminWho) -> Response:
    with desk_of(request).unit_of_work() as session:
        hours = _hours_out(policies.business_hours_of(session))
    return render(request, who, "admin/business_hours.html", "business_hours", hours=hours,
                  max_spec=policies.MAX_SPEC)


@router.get("/admin/canned-replies", include_in_schema=False)
def canned_replies_page(request: Request, who: AdminWho) -> Response:
    with desk_of(request).unit_of_work() as session:
        replies = [_reply_out(e) for e in policies.canned_entries(session)]
    return render(request, who, "admin/canned_replies.html", "canned_replies", replies=replies,
                  placeholders=["{" + name + "}" for name in canned_replies.PLACEHOLDERS])


# --- SLA targets ----------------------------------------------------------------------------------
@router.get(f"{API}/sla-policies", response_model=list[SlaTargetOut], tags=TAGS,
            responses=errors())
def list_sla_targets(request: Request, who: AdminWho) -> list[SlaTargetOut]:
    """The targets in force for every priority and segment; ``custom`` marks an admin's."""
    with desk_of(request).unit_of_work() as session:
        return [_target_out(t) for t in policies.sla_targets(session)]


PriorityPath = Annotated[Priority, FastPath(description="low, normal, high or urgent")]
SegmentPath = Annotated[Segment, FastPath(description="vip, regular or potential")]


@router.post(f"{API}/sla-policies/{{priority}}/{{segment}}", response_model=SlaTargetOut,
             tags=TAGS, responses=errors(), openapi_extra=body_of(SlaTargetIn))
def set_sla_target(request: Request, priority: PriorityPath, segment: SegmentPath,
                   who: AdminWho, data: AdminBody) -> Any:
    """New targets in minutes for tickets of this priority from this segment; timers started
    from now on use them (``admin.sla_policy_changed``)."""
    given = parse(SlaTargetIn, data)
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        target = policies.set_sla_target(
            session, by_agent_id=who.agent_id, priority=priority, segment=segment,
            first_response_minutes=given.first_response_minutes,
            next_response_minutes=given.next_response_minutes,
            resolution_minutes=given.resolution_minutes, ip=client_ip(request),
            now=desk.clock())
    return done(request, _target_out(target), "/admin/sla")


@router.post(f"{API}/sla-policies/{{priority}}/{{segment}}/reset", response_model=SlaTargetOut,
             tags=TAGS, responses=errors())
def reset_sla_target(request: Request, priority: PriorityPath, segment: SegmentPath,
                     who: AdminWho) -> Any:
    """Back to the built-in targets (``admin.sla_policy_reset``)."""
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        target = policies.reset_sla_target(session, by_agent_id=who.agent_id,
                                           priority=priority, segment=segment,
                                           ip=client_ip(request), now=desk.clock())
    return done(request, _target_out(target), "/admin/sla")


# --- business hours -------------------------------------------------------------------------------
@router.get(f"{API}/business-hours", response_model=BusinessHoursOut, tags=TAGS,
            responses=errors())
def get_business_hours(request: Request, who: AdminWho) -> BusinessHoursOut:
    """The hours SLA clocks count, and whether an admin set them."""
    with desk_of(request).unit_of_work() as session:
        return _hours_out(policies.business_hours_of(session))


@router.post(f"{API}/business-hours", response_model=BusinessHoursOut, tags=TAGS,
             responses=errors(), openapi_extra=body_of(BusinessHoursIn))
def set_business_hours(request: Request, who: AdminWho, data: AdminBody) -> Any:
    """Set the staffed hours (a spec that does not parse is a 422), or blank for the
    deployment's (``admin.business_hours_changed``)."""
    given = parse(BusinessHoursIn, data)
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        hours = policies.set_business_hours(session, by_agent_id=who.agent_id, spec=given.spec,
                                            ip=client_ip(request), now=desk.clock())
    return done(request, _hours_out(hours), "/admin/business-hours")


# --- canned replies -------------------------------------------------------------------------------
@router.get(f"{API}/canned-replies", response_model=list[CannedReplyOut], tags=TAGS,
            responses=errors())
def list_canned_replies(request: Request, who: AdminWho) -> list[CannedReplyOut]:
    """Built-in and admins' replies, hidden ones included."""
    with desk_of(request).unit_of_work() as session:
        return [_reply_out(e) for e in policies.canned_entries(session)]


@router.post(f"{API}/canned-replies", response_model=CannedReplyOut, tags=TAGS,
             responses=errors(), openapi_extra=body_of(CannedReplyIn))
def save_canned_reply(request: Request, who: AdminWho, data: AdminBody) -> Any:
    """Write a reply by key: a built-in's key replaces it, a new key adds one, ``active``
    false hides it (``admin.canned_reply_created`` / ``_updated``)."""
    given = parse(CannedReplyIn, data)
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        entry = policies.save_canned_reply(
            session, by_agent_id=who.agent_id, key=given.key, title_zh=given.title_zh,
            title_en=given.title_en, body_zh=given.body_zh, body_en=given.body_en,
            active=given.active, ip=client_ip(request), now=desk.clock())
    return done(request, _reply_out(entry), "/admin/canned-replies")


@router.post(f"{API}/canned-replies/{{key}}/delete", status_code=204, tags=TAGS,
             response_class=Response, responses=errors(404))
def delete_canned_reply(request: Request, who: AdminWho,
                        key: Annotated[str, FastPath(max_length=64)]) -> Response:
    """Drop the admin's version: a built-in comes back as shipped, an admin's own reply goes
    (``admin.canned_reply_deleted``)."""
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        policies.delete_canned_reply(session, by_agent_id=who.agent_id, key=key,
                                     ip=client_ip(request), now=desk.clock())
    return done(request, None, "/admin/canned-replies")
