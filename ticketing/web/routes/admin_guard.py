"""Who may use the admin screens, and how their forms are read and answered.

Only the **admin** role: agents, supervisors and managers get 403 on every admin page and
every ``/api/v1/admin/...`` call, reads included (the audit log too: it holds sign-in
addresses and every permission change, which is admin business; managers read the numbers in
the reports instead). The role is checked before the body is read, so a refused request learns
nothing about its input.

Forms post to the JSON API's own URL with the session's CSRF token, like the ticket page's. A
form (with or without htmx) is answered with a 303 back to its page; htmx follows it and swaps
``#admin-main`` from the fresh page. A refused change is the typed error: JSON for scripts and
htmx (the desk's script shows it as a toast), the error page for a browser without scripts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel

from ticketing.core import local_time
from ticketing.core.errors import PermissionDenied
from ticketing.core.models import Role
from ticketing.web.api import is_form, submitted
from ticketing.web.deps import Principal, desk_of, principal

LIST_FIELDS = ("categories",)  # checkboxes: a form sends each ticked one under the same name


async def admin_only(who: Annotated[Principal, Depends(principal)]) -> Principal:
    """The signed-in admin; anyone else is refused (403)."""
    if who.role is not Role.ADMIN:
        raise PermissionDenied("the admin screens are for admins")
    return who


AdminWho = Annotated[Principal, Depends(admin_only)]


async def admin_body(request: Request) -> dict[str, Any]:
    """The request body as a dict (``api.submitted``). From a form, an empty field is
    None (an optional value left out) and the :data:`LIST_FIELDS` are lists; a form marks a
    list as sent with an empty hidden value first, so ticking nothing means an empty list."""
    data = await submitted(request)
    if not is_form(request):
        return data
    form = await request.form()
    cleaned: dict[str, Any] = {key: (value if value != "" else None) for key, value in data.items()}
    for name in LIST_FIELDS:
        if name in form:
            cleaned[name] = [v for v in form.getlist(name) if isinstance(v, str) and v]
    return cleaned


AdminBody = Annotated[dict[str, Any], Depends(admin_body)]


def done(request: Request, result: BaseModel | list[Any] | None, page: str) -> Any:
    """JSON for scripts; a 303 back to ``page`` for a form (htmx follows it)."""
    if is_form(request):
        return RedirectResponse(page, status_code=303)
    return result if result is not None else Response(status_code=204)


def render(request: Request, who: Principal, template: str, section: str,
           **context: Any) -> Response:
    """An admin page: the section's template with what every admin page shows."""
    desk = desk_of(request)
    timezone = desk.settings.timezone

    def when(at: datetime | None) -> str:
        """``2026-03-02 10:00`` in the shop's zone."""
        return local_time.date_time(at, timezone=timezone) if at is not None else ""

    response = desk.templates.TemplateResponse(request, template, {
        "language": who.language, "who": who, "csrf_token": who.csrf_token,
        "section": section, "timezone": timezone, "when": when, "now": desk.clock(),
        **context})
    response.headers["Cache-Control"] = "no-store"
    return response
