"""The agent's queues: the desk's home page and ``/api/v1/queues``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ticketing.web.deps import Principal, desk_of, principal

router = APIRouter()


@router.get("/", include_in_schema=False)
def home(request: Request, who: Annotated[Principal, Depends(principal)]) -> Response:
    desk = desk_of(request)
    return desk.templates.TemplateResponse(
        request, "queue.html", {"language": who.language, "who": who,
                                "csrf_token": who.csrf_token})
