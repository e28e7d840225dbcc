"""Agents and teams, for admins: ``/admin/agents``, ``/admin/agents/{id}``, ``/admin/teams`` and
their JSON twins under ``/api/v1/admin/``.

Every change goes through ``ticketing.desk.directory``, which checks it, writes it and its one
audit row in this request's unit of work; a refused change (422, 409, 404) writes nothing.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import Field, StringConstraints

from ticketing.core.errors import AgentNotFound
from ticketing.core.models import Availability, Category, Role, Tier
from ticketing.desk import directory
from ticketing.web.api import Id, body_of, errors
from ticketing.web.deps import client_ip, desk_of
from ticketing.web.queries import admin as reads
from ticketing.web.queries.admin import AgentOut, TeamOut
from ticketing.web.routes.admin_guard import AdminBody, AdminWho, done, render
from ticketing.web.routes.tickets import Input, parse

router = APIRouter()
API = "/api/v1/admin"
TAGS: list[str | Enum] = ["admin"]

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]
Password = Annotated[str, Field(min_length=1, max_length=directory.MAX_PASSWORD,
                                description=f"At least {directory.MIN_PASSWORD} characters.")]
RoleName = Literal["agent", "supervisor", "manager", "admin"]
AvailabilityName = Literal["online", "away", "offline"]
Language = Literal["zh", "en"]
CategoryName = Literal["*", "logistics", "quality", "payment", "refund", "order", "product",
                       "account", "other"]


class AgentIn(Input):
    login: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=64)]
    display_name: Name
    first_name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=40)] | None = \
        Field(default=None, description="What customers see (rules §TERMS-1); default: the "
                                        "display name.")
    role: RoleName = "agent"
    team_id: Id | None = None
    language: Language = "zh"
    max_open_tickets: Annotated[int, Field(ge=1, le=directory.MAX_OPEN_TICKETS)] = 20
    password: Password


class AgentChangeIn(Input):
    """Only the fields given change; ``team_id`` null takes the agent out of any team."""

    display_name: Name | None = None
    first_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                 max_length=40)] | None = None
    role: RoleName | None = None
    team_id: Id | None = None
    language: Language | None = None
    max_open_tickets: Annotated[int, Field(ge=1, le=directory.MAX_OPEN_TICKETS)] | None = None
    availability: AvailabilityName | None = None


class PasswordIn(Input):
    password: Password


class TeamIn(Input):
    code: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=32)]
    name_zh: Name
    name_en: Name
    tier: Annotated[int, Field(ge=1, le=3)]
    categories: list[CategoryName] = Field(
        default_factory=list, description='Ticket categories served, or ["*"] for all.')


class TeamChangeIn(Input):
    name_zh: Name | None = None
    name_en: Name | None = None
    tier: Annotated[int, Field(ge=1, le=3)] | None = None
    categories: list[CategoryName] | None = None


def _agent(session: Any, agent_id: int) -> AgentOut:
    found = reads.agents(session, agent_id=agent_id)
    if not found:
        raise AgentNotFound(agent_id=agent_id)
    return found[0]


def _options() -> dict[str, Any]:
    return {"roles": [r.value for r in Role], "availabilities": [a.value for a in Availability],
            "tiers": [t.value for t in Tier], "categories": [c.value for c in Category],
            "min_password": directory.MIN_PASSWORD, "max_open": directory.MAX_OPEN_TICKETS}


# --- pages ----------------------------------------------------------------------------------------
@router.get("/admin/agents", include_in_schema=False)
def agents_page(request: Request, who: AdminWho) -> Response:
    with desk_of(request).unit_of_work() as session:
        found, teams = reads.agents(session), reads.teams(session)
    return render(request, who, "admin/agents.html", "agents", agents=found, teams=teams,
                  **_options())


@router.get("/admin/agents/{agent_id}", include_in_schema=False)
def agent_page(request: Request, agent_id: Id, who: AdminWho) -> Response:
    with desk_of(request).unit_of_work() as session:
        agent, teams = _agent(session, agent_id), reads.teams(session)
    return render(request, who, "admin/agent.html", "agents", agent=agent, teams=teams,
                  **_options())


@router.get("/admin/teams", include_in_schema=False)
def teams_page(request: Request, who: AdminWho) -> Response:
    with desk_of(request).unit_of_work() as session:
        teams = reads.teams(session)
    return render(request, who, "admin/teams.html", "teams", teams=teams,
                  **_options())


# --- agents: JSON and forms -----------------------------------------------------------------------
@router.get(f"{API}/agents", response_model=list[AgentOut], tags=TAGS, responses=errors())
def list_agents(request: Request, who: AdminWho) -> list[AgentOut]:
    """Every agent, deactivated ones included, with the live tickets each owns."""
    with desk_of(request).unit_of_work() as session:
        return reads.agents(session)


@router.post(f"{API}/agents", response_model=AgentOut, status_code=201, tags=TAGS,
             responses=errors(409), openapi_extra=body_of(AgentIn))
def create_agent(request: Request, who: AdminWho, data: AdminBody) -> Any:
    """A new agent with the password the admin chose (audited as ``admin.agent_created``,
    without the password). A taken login is a 409."""
    given = parse(AgentIn, data)
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        agent = directory.create_agent(
            session, by_agent_id=who.agent_id, login=given.login,
            display_name=given.display_name, first_name=given.first_name or None,
            role=given.role, team_id=given.team_id, language=given.language,
            password=given.password, max_open_tickets=given.max_open_tickets,
            ip=client_ip(request), now=desk.clock())
        result = _agent(session, agent.id)
    return done(request, result, f"/admin/agents/{result.id}")


@router.post(f"{API}/agents/{{agent_id}}", response_model=AgentOut, tags=TAGS,
             responses=errors(404, 409), openapi_extra=body_of(AgentChangeIn))
def change_agent(request: Request, agent_id: Id, who: AdminWho, data: AdminBody) -> Any:
    """Change an agent's role, team, ticket cap, availability, names or language (audited as
    one ``admin.agent_updated``). An admin cannot demote themself (409)."""
    given = parse(AgentChangeIn, data)
    sent = given.model_fields_set
    changes = {name: getattr(given, name) for name in sent
               if name == "team_id" or getattr(given, name) is not None}
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        directory.update_agent(session, by_agent_id=who.agent_id, agent_id=agent_id,
                               ip=client_ip(request), now=desk.clock(), **changes)
        result = _agent(session, agent_id)
    return done(request, result, f"/admin/agents/{agent_id}")


def _set_active(request: Request, who: AdminWho, agent_id: int, active: bool) -> Any:
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        directory.set_active(session, by_agent_id=who.agent_id, agent_id=agent_id,
                             active=active, ip=client_ip(request), now=desk.clock())
        result = _agent(session, agent_id)
    return done(request, result, f"/admin/agents/{agent_id}")


@router.post(f"{API}/agents/{{agent_id}}/deactivate", response_model=AgentOut, tags=TAGS,
             responses=errors(404, 409))
def deactivate_agent(request: Request, agent_id: Id, who: AdminWho) -> Any:
    """Sign the agent out everywhere and stop their sign-ins, API tokens and dispatch; the
    tickets they own stay theirs. Not oneself (409)."""
    return _set_active(request, who, agent_id, False)


@router.post(f"{API}/agents/{{agent_id}}/reactivate", response_model=AgentOut, tags=TAGS,
             responses=errors(404))
def reactivate_agent(request: Request, agent_id: Id, who: AdminWho) -> Any:
    """The agent may sign in again (offline until they choose otherwise)."""
    return _set_active(request, who, agent_id, True)


@router.post(f"{API}/agents/{{agent_id}}/password", response_model=AgentOut, tags=TAGS,
             responses=errors(404), openapi_extra=body_of(PasswordIn))
def reset_password(request: Request, agent_id: Id, who: AdminWho, data: AdminBody) -> Any:
    """Set a new password chosen by the admin: the agent's sessions end, a lockout is lifted
    (``admin.password_reset``, no password in the audit)."""
    given = parse(PasswordIn, data)
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        directory.reset_password(session, by_agent_id=who.agent_id, agent_id=agent_id,
                                 password=given.password, ip=client_ip(request),
                                 now=desk.clock())
        result = _agent(session, agent_id)
    return done(request, result, f"/admin/agents/{agent_id}")


# --- teams ----------------------------------------------------------------------------------------
@router.get(f"{API}/teams", response_model=list[TeamOut], tags=TAGS, responses=errors())
def list_teams(request: Request, who: AdminWho) -> list[TeamOut]:
    """Every team with its tier, the categories it serves and its active agents."""
    with desk_of(request).unit_of_work() as session:
        return reads.teams(session)


def _team(session: Any, team_id: int) -> TeamOut:
    return next(t for t in reads.teams(session) if t.id == team_id)


@router.post(f"{API}/teams", response_model=TeamOut, status_code=201, tags=TAGS,
             responses=errors(409), openapi_extra=body_of(TeamIn))
def create_team(request: Request, who: AdminWho, data: AdminBody) -> Any:
    """A new team serving some categories (or ``*``) at a tier (``admin.team_created``)."""
    given = parse(TeamIn, data)
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        team = directory.create_team(session, by_agent_id=who.agent_id, code=given.code,
                                     name_zh=given.name_zh, name_en=given.name_en,
                                     tier=given.tier, categories=given.categories,
                                     ip=client_ip(request), now=desk.clock())
        result = _team(session, team.id)
    return done(request, result, "/admin/teams")


@router.post(f"{API}/teams/{{team_id}}", response_model=TeamOut, tags=TAGS,
             responses=errors(404), openapi_extra=body_of(TeamChangeIn))
def change_team(request: Request, team_id: Id, who: AdminWho, data: AdminBody) -> Any:
    """Rename a team, move its tier or change what it serves (``admin.team_updated``)."""
    given = parse(TeamChangeIn, data)
    changes = {name: getattr(given, name) for name in given.model_fields_set
               if getattr(given, name) is not None}
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        directory.update_team(session, by_agent_id=who.agent_id, team_id=team_id,
                              ip=client_ip(request), now=desk.clock(), **changes)
        result = _team(session, team_id)
    return done(request, result, "/admin/teams")
