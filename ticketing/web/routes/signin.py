"""Signing in and out: the form for browsers, ``/api/v1/session`` for scripts and tests.

A failed sign-in is committed before the error is answered: the failure count and the audit
line are what the lockout counts.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from ticketing.core.errors import KefuError, PermissionDenied
from ticketing.core.shared_tokens import same_token
from ticketing.desk import accounts
from ticketing.web.language import language_for
from ticketing.web.api import errors
from ticketing.web.deps import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Principal,
    client_ip,
    desk_of,
    principal,
)
from ticketing.web.security import local_path

router = APIRouter()


def _start(request: Request, *, login: str, password: str) -> accounts.SignIn:
    desk = desk_of(request)
    failure: KefuError | None = None
    with desk.unit_of_work() as session:
        try:
            started = accounts.sign_in(session, login=login, password=password,
                                       ip=client_ip(request),
                                       user_agent=request.headers.get("user-agent"),
                                       now=desk.clock())
        except KefuError as exc:  # committed: the failure counts
            failure = exc
    if failure is not None:
        raise failure
    return started


def _set_session_cookie(request: Request, response: Response, started: accounts.SignIn) -> None:
    desk = desk_of(request)
    max_age = int((started.expires_at - desk.clock()).total_seconds())
    response.set_cookie(SESSION_COOKIE, started.token, max_age=max_age, httponly=True,
                        samesite="lax", secure=desk.settings.desk_secure_cookies, path="/")


@router.get("/login", include_in_schema=False)
def login_form(request: Request, next: str | None = None, failed: str | None = None) -> Response:
    desk = desk_of(request)
    token = secrets.token_urlsafe(24)
    response = desk.templates.TemplateResponse(
        request, "login.html",
        {"language": language_for(request), "csrf_token": token, "next": local_path(next),
         "failed": failed})
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, httponly=True, samesite="strict",
                        secure=desk.settings.desk_secure_cookies, path="/login")
    return response


@router.post("/login", include_in_schema=False)
def login_submit(
    request: Request,
    login: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    csrf_token: Annotated[str, Form(max_length=64)] = "",
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    if not same_token(request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token):
        raise PermissionDenied("missing or wrong CSRF token")
    started = _start(request, login=login, password=password)
    response = RedirectResponse(local_path(next), status_code=303)
    _set_session_cookie(request, response, started)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout", include_in_schema=False)
def logout(request: Request, who: Annotated[Principal, Depends(principal)]) -> Response:
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        accounts.sign_out(session, token=request.cookies.get(SESSION_COOKIE),
                          ip=client_ip(request), now=desk.clock())
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- JSON ----------------------------------------------------------------------------------------
class Credentials(BaseModel):
    login: str = Field(max_length=64)
    password: str = Field(max_length=256)


class AgentOut(BaseModel):
    id: int
    name: str
    role: str
    team_id: int | None
    language: str


class SessionOut(BaseModel):
    agent: AgentOut
    csrf_token: str
    expires_at: str


def _agent_out(who: Principal) -> AgentOut:
    return AgentOut(id=who.agent_id, name=who.name, role=who.role.value, team_id=who.team_id,
                    language=who.language)


@router.post("/api/v1/session", response_model=SessionOut, tags=["session"],
             responses=errors(429))
def open_session(request: Request, credentials: Credentials, response: Response) -> SessionOut:
    """Sign in; the session cookie is set and the CSRF token for later writes returned."""
    started = _start(request, login=credentials.login, password=credentials.password)
    _set_session_cookie(request, response, started)
    agent = started.agent
    return SessionOut(
        agent=AgentOut(id=agent.id, name=agent.display_name, role=agent.role.value,
                       team_id=agent.team_id, language=agent.language),
        csrf_token=started.csrf_token, expires_at=started.expires_at.isoformat())


@router.delete("/api/v1/session", status_code=204, tags=["session"],
               responses=errors())
def close_session(request: Request, who: Annotated[Principal, Depends(principal)]) -> Response:
    """Sign out (the session ends in every desk process)."""
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        accounts.sign_out(session, token=request.cookies.get(SESSION_COOKIE),
                          ip=client_ip(request), now=desk.clock())
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/api/v1/me", response_model=AgentOut, tags=["session"], responses=errors())
def me(who: Annotated[Principal, Depends(principal)]) -> AgentOut:
    """Who the session or token belongs to."""
    return _agent_out(who)
