"""The signed-in person's own settings: availability for dispatch, and the desk's language.

Both endpoints take JSON (scripts) or a form (the queue page's forms post here, with the
session's CSRF token, which the ``principal`` dependency checks). JSON gets JSON back; a form
is redirected back to the page it came from (``next``), or, sent by htmx, told to refresh.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel

from ticketing.core.models import Agent
from ticketing.desk import agents
from ticketing.web.api import Submitted, body_of, errors, is_form
from ticketing.web.security import local_path
from ticketing.web.deps import Principal, client_ip, desk_of, principal

router = APIRouter()

class AvailabilityIn(BaseModel):
    availability: Literal["online", "away", "offline"]


class LanguageIn(BaseModel):
    language: Literal["zh", "en"]


class MySettingsOut(BaseModel):
    id: int
    availability: Literal["online", "away", "offline"]
    language: Literal["zh", "en"]


def _answer(request: Request, sent: dict[str, Any], agent: Agent) -> Response | MySettingsOut:
    if not is_form(request):
        return MySettingsOut(id=agent.id, availability=agent.availability.value,
                             language=agent.language)
    if "hx-request" in request.headers:
        return Response(status_code=204, headers={"HX-Refresh": "true"})
    return RedirectResponse(local_path(sent.get("next")), status_code=303)


@router.post("/api/v1/me/availability", response_model=MySettingsOut, tags=["session"],
             responses=errors(), openapi_extra=body_of(AvailabilityIn))
def set_availability(
    request: Request, who: Annotated[Principal, Depends(principal)],
    sent: Submitted,
) -> Response | MySettingsOut:
    """Online, away or offline: the automatic dispatch assigns only to online agents (audited
    as ``desk.availability``)."""
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        agent = agents.set_availability(session, agent_id=who.agent_id,
                                        availability=sent.get("availability"),
                                        ip=client_ip(request), now=desk.clock())
        answer = _answer(request, sent, agent)
    return answer


@router.post("/api/v1/me/language", response_model=MySettingsOut, tags=["session"],
             responses=errors(), openapi_extra=body_of(LanguageIn))
def set_language(
    request: Request, who: Annotated[Principal, Depends(principal)],
    sent: Submitted,
) -> Response | MySettingsOut:
    """The language of the desk's screens for this person: ``zh`` or ``en``."""
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        agent = agents.set_language(session, agent_id=who.agent_id,
                                    language=sent.get("language") or "")
        answer = _answer(request, sent, agent)
    return answer
