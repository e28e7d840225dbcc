"""The supervisors' live team board: ``/board``, its self-refreshing part ``/board/live`` and
``GET /api/v1/board``.

Who sees which teams: a supervisor their own team and the teams of lower tiers (a tier-2 CS
supervisor watches the frontline, as they may take its unclaimed tickets); managers and admins
every team, or the one chosen with ``?team=``; agents nothing (403), and a supervisor asking for
a team outside theirs is refused too (403). The page polls its live part every 30 seconds with htmx
(``hx-trigger="every 30s"``); without scripts it is a page to reload. The reads are in
``queries/board.py``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.core import local_time
from ticketing.core.errors import PermissionDenied
from ticketing.core.models import Role, Team
from ticketing.desk.directory import TeamNotFound
from ticketing.web.api import errors
from ticketing.web.deps import Principal, desk_of, principal
from ticketing.web.queries import board as reads
from ticketing.web.queries.board import BoardOut
from ticketing.web.texts import span

router = APIRouter()

SEE_ALL = frozenset({Role.MANAGER, Role.ADMIN})
TeamParam = Annotated[str | None, Query(max_length=12, description="A team id; managers and "
                                                                   "admins only (blank: all)")]


def supervised_teams(session: Session, team_id: int | None) -> list[int]:
    """A supervisor's own team and every team of a lower tier."""
    own = session.get(Team, team_id) if team_id is not None else None
    if own is None:
        return []
    lower = session.scalars(select(Team.id).where(Team.tier < own.tier).order_by(Team.tier,
                                                                                Team.id))
    return [own.id, *lower]


def _team_ids(session: Session, who: Principal, team: str | None) -> list[int] | None:
    """The teams ``who`` may watch, narrowed by ``team``; None means every team."""
    if who.role is not Role.SUPERVISOR and who.role not in SEE_ALL:
        raise PermissionDenied("the team board is for supervisors and managers")
    wanted: int | None = None
    if team is not None and team.strip():
        text = team.strip()
        if not (text.isascii() and text.isdigit()):  # isdigit alone takes "²", int() does not
            raise TeamNotFound(team=team)
        wanted = int(text)
    if who.role is Role.SUPERVISOR:
        mine = supervised_teams(session, who.team_id)
        if wanted is not None and wanted not in mine:
            raise PermissionDenied("a supervisor watches their own team and lower tiers")
        return [wanted] if wanted is not None else mine
    if wanted is None:
        return None
    if session.get(Team, wanted) is None:
        raise TeamNotFound(team_id=wanted)
    return [wanted]


def _read(request: Request, who: Principal, team: str | None
          ) -> tuple[BoardOut, list[tuple[int, str]], int | None]:
    """The board, the teams a manager may pick from, and the one picked (None: all)."""
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        ids = _team_ids(session, who, team)
        found = reads.board(session, team_ids=ids, now=desk.clock())
        if who.role not in SEE_ALL:
            return found, [], None
        choices = [(t.id, t.name_zh if who.language == "zh" else t.name_en) for t in
                   session.scalars(select(Team).order_by(Team.tier, Team.code))]
    return found, choices, ids[0] if ids else None


def _render(request: Request, who: Principal, template: str, team: str | None) -> Response:
    desk = desk_of(request)
    found, choices, chosen = _read(request, who, team)
    response = desk.templates.TemplateResponse(request, template, {
        "language": who.language, "who": who, "csrf_token": who.csrf_token, "board": found,
        "choices": choices, "chosen": chosen,
        "live_href": "/board/live" + (f"?team={chosen}" if chosen is not None else ""),
        "waited": lambda since: span((found.at - since).total_seconds(), who.language),
        "updated": f"{local_time.local(found.at, desk.settings.timezone):%H:%M:%S}"})
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/board", include_in_schema=False)
def board_page(request: Request, who: Annotated[Principal, Depends(principal)],
               team: TeamParam = None) -> Response:
    return _render(request, who, "board.html", team)


@router.get("/board/live", include_in_schema=False)
def board_live(request: Request, who: Annotated[Principal, Depends(principal)],
               team: TeamParam = None) -> Response:
    """The board's live part, fetched by the page every 30 seconds."""
    return _render(request, who, "partials/board_live.html", team)


@router.get("/api/v1/board", response_model=BoardOut, tags=["board"], responses=errors(404))
def board_json(request: Request, who: Annotated[Principal, Depends(principal)],
               team: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None) -> BoardOut:
    """Each team's people (availability, open load against their cap, breaches now, longest
    customer wait) and the team's unclaimed tickets and breaches now. Supervisors: their own
    team; managers and admins: every team or ``team``; agents: 403."""
    found, _, _ = _read(request, who, str(team) if team is not None else None)
    return found
