"""What the admin pages and ``/api/v1/admin/...`` read: agents, teams and the audit log.

Reads only, a fixed number of statements per page. Every model here is both the JSON API's
response and what the templates render. Audit details are shown exactly as stored: the
services that write them keep personal data and secrets out (rules §SEC-4, §SEC-6).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, and_, func, select, true
from sqlalchemy.orm import Session

from ticketing.core import local_time
from ticketing.core.clock import aware
from ticketing.core.models import Agent, AuditLog, Availability, Role, Team, Ticket
from ticketing.desk import lifecycle

AUDIT_PAGE = 50
MAX_AUDIT_PAGE = 200


class AgentOut(BaseModel):
    id: int
    login: str
    display_name: str
    first_name: str
    role: Role
    team_id: int | None
    team_code: str | None
    language: str
    max_open_tickets: int
    availability: Availability
    active: bool
    locked_until: datetime | None
    open_tickets: int


class TeamOut(BaseModel):
    id: int
    code: str
    name_zh: str
    name_en: str
    tier: int
    categories: list[str]
    agents: int


def agent_out(agent: Agent, *, team_code: str | None, open_tickets: int) -> AgentOut:
    return AgentOut(id=agent.id, login=agent.login, display_name=agent.display_name,
                    first_name=agent.first_name, role=agent.role, team_id=agent.team_id,
                    team_code=team_code, language=agent.language,
                    max_open_tickets=agent.max_open_tickets, availability=agent.availability,
                    active=agent.active,
                    locked_until=aware(agent.locked_until) if agent.locked_until else None,
                    open_tickets=open_tickets)


def _open_tickets(session: Session, agent_ids: list[int]) -> dict[int, int]:
    if not agent_ids:
        return {}
    return dict(session.execute(
        select(Ticket.owner_id, func.count()).where(
            Ticket.owner_id.in_(agent_ids), Ticket.state.in_(lifecycle.ACTIVE_STATES))
        .group_by(Ticket.owner_id)).tuples().all())


def agents(session: Session, *, agent_id: int | None = None) -> list[AgentOut]:
    """Every agent (or one), active first, by team and name, with live tickets owned."""
    stmt = (select(Agent, Team.code).outerjoin(Team, Team.id == Agent.team_id)
            .order_by(Agent.active.desc(), Team.tier, Team.code, Agent.display_name, Agent.id))
    if agent_id is not None:
        stmt = stmt.where(Agent.id == agent_id)
    rows = session.execute(stmt).tuples().all()
    counts = _open_tickets(session, [agent.id for agent, _ in rows])
    return [agent_out(agent, team_code=code, open_tickets=counts.get(agent.id, 0))
            for agent, code in rows]


def team_out(team: Team, members: int) -> TeamOut:
    return TeamOut(id=team.id, code=team.code, name_zh=team.name_zh, name_en=team.name_en,
                   tier=team.tier, categories=list(team.categories or []), agents=members)


def teams(session: Session) -> list[TeamOut]:
    """Every team by tier and code, with how many active agents it has."""
    members = dict(session.execute(
        select(Agent.team_id, func.count()).where(Agent.active.is_(True),
                                                  Agent.team_id.is_not(None))
        .group_by(Agent.team_id)).tuples().all())
    return [team_out(team, members.get(team.id, 0))
            for team in session.scalars(select(Team).order_by(Team.tier, Team.code))]


# --- the audit log --------------------------------------------------------------------------------
class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor_type: str
    actor_id: int | None
    actor_name: str | None
    action: str
    target_type: str | None
    target_id: str | None
    details: dict[str, Any]
    ip: str | None


class AuditPageOut(BaseModel):
    total: int
    limit: int
    offset: int
    rows: list[AuditEntryOut]


@dataclass(frozen=True)
class AuditFilters:
    """What narrows the audit log; dates are whole days in the shop's time zone."""

    actor_id: int | None = None
    action: str | None = None  # a prefix: "admin." finds every admin change
    target_type: str | None = None
    target_id: str | None = None
    since: date | None = None
    until: date | None = None  # inclusive

    def as_params(self) -> dict[str, str]:
        values = {"actor_id": self.actor_id, "action": self.action,
                  "target_type": self.target_type, "target_id": self.target_id,
                  "since": self.since, "until": self.until}
        return {key: str(value) for key, value in values.items() if value not in (None, "")}


def _day_start(day: date, timezone: str) -> datetime:
    return datetime.combine(day, time.min, tzinfo=local_time.zone(timezone))


def _where(filters: AuditFilters, timezone: str) -> ColumnElement[bool]:
    found: list[ColumnElement[bool]] = []
    if filters.actor_id is not None:
        found.append(and_(AuditLog.actor_type == "agent", AuditLog.actor_id == filters.actor_id))
    if filters.action:
        escaped = filters.action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        found.append(AuditLog.action.like(escaped + "%", escape="\\"))
    if filters.target_type:
        found.append(AuditLog.target_type == filters.target_type)
    if filters.target_id:
        found.append(AuditLog.target_id == filters.target_id)
    if filters.since is not None:
        found.append(AuditLog.at >= _day_start(filters.since, timezone))
    if filters.until is not None:
        found.append(AuditLog.at < _day_start(filters.until + timedelta(days=1), timezone))
    return and_(true(), *found)


def audit_page(session: Session, *, filters: AuditFilters, timezone: str,
               limit: int = AUDIT_PAGE, offset: int = 0) -> AuditPageOut:
    """One page of the audit log, newest first, with the acting agent's name (two queries
    and a count)."""
    where = _where(filters, timezone)
    total = int(session.scalar(select(func.count()).select_from(AuditLog).where(where)) or 0)
    entries = list(session.scalars(select(AuditLog).where(where)
                                   .order_by(AuditLog.at.desc(), AuditLog.id.desc())
                                   .limit(limit).offset(offset)))
    ids = {e.actor_id for e in entries if e.actor_id is not None and e.actor_type == "agent"}
    names = dict(session.execute(select(Agent.id, Agent.display_name)
                                 .where(Agent.id.in_(ids))).tuples().all()) if ids else {}
    rows = [AuditEntryOut(id=e.id, at=aware(e.at), actor_type=e.actor_type, actor_id=e.actor_id,
                          actor_name=names.get(e.actor_id) if e.actor_type == "agent" else None,
                          action=e.action, target_type=e.target_type, target_id=e.target_id,
                          details=dict(e.details or {}), ip=e.ip) for e in entries]
    return AuditPageOut(total=total, limit=limit, offset=offset, rows=rows)


def audit_actors(session: Session) -> list[tuple[int, str]]:
    """The agents the page's actor filter offers."""
    return [(agent_id, f"{name} ({login})") for agent_id, name, login in session.execute(
        select(Agent.id, Agent.display_name, Agent.login).order_by(Agent.display_name, Agent.id))]
