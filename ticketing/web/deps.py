"""What every desk request needs: the desk's parts, a unit of work, and who is asking.

Who is asking comes from the session cookie (browsers) or an ``Authorization: Bearer`` API
token (scripts), checked against the database on every request, so any desk process answers
any request. A request that changes something with the cookie must carry the session's CSRF
token. The unit of work is opened by the route itself (``with desk.unit_of_work() as s:``) so
the commit happens before the response leaves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker

from ticketing.core.clock import utcnow
from ticketing.core.errors import AuthenticationFailed, PermissionDenied
from ticketing.core.i18n import normalize_language
from ticketing.core.models import Agent, Role
from ticketing.core.pii import PiiCipher
from ticketing.core.settings import Settings
from ticketing.core.shared_tokens import same_token
from ticketing.desk import accounts
from ticketing.web.security import SAFE_METHODS

SESSION_COOKIE = "kefu_desk"
LOGIN_CSRF_COOKIE = "kefu_login_csrf"


@dataclass
class Desk:
    """The parts of one desk process, built once at its edge (``app.state.desk``)."""

    settings: Settings
    session_factory: sessionmaker[Session]
    templates: Jinja2Templates
    cipher: PiiCipher
    redis: Any = None
    clock: Callable[[], datetime] = utcnow
    extras: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on any error."""
        with self.session_factory.begin() as session:
            yield session


@dataclass(frozen=True)
class Principal:
    """The signed-in person, detached from any session: ids and role, not a live row."""

    agent_id: int
    role: Role
    team_id: int | None
    language: str
    name: str
    via: str  # "cookie" | "token"
    csrf_token: str | None = None
    scopes: frozenset[str] = frozenset()

    def agent(self, session: Session) -> Agent:
        """The agent row in ``session`` (the caller's unit of work)."""
        agent = session.get(Agent, self.agent_id)
        if agent is None:
            raise AuthenticationFailed()
        return agent


class SignInRequired(AuthenticationFailed):
    """No valid session on a page: the page answers with a redirect to the sign-in form."""


def desk_of(request: Request) -> Desk:
    return request.app.state.desk


def client_ip(request: Request) -> str | None:
    """The person's address: behind a trusted proxy uvicorn has already put X-Forwarded-For's
    address here (``ticketing.web.__main__.server_options``), never the proxy's own."""
    return request.client.host if request.client else None


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def _csrf_given(request: Request) -> str | None:
    given = request.headers.get("x-csrf-token")
    if given:
        return given
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get("csrf_token")
        return value if isinstance(value, str) else None
    return None


def _lookup(desk: Desk, *, secret: str | None, cookie: str | None, method: str,
            api: bool) -> Principal:
    """The database half of :func:`principal` (blocking: it runs in a worker thread)."""
    now = desk.clock()
    with desk.unit_of_work() as session:
        if secret is not None:
            scope = "desk:read" if method in SAFE_METHODS else "desk:write"
            token = accounts.token_for(session, secret=secret, scope=scope, now=now)
            agent = session.get(Agent, token.agent_id)
            if agent is None:
                raise AuthenticationFailed()
            return Principal(agent.id, agent.role, agent.team_id,
                             normalize_language(agent.language), agent.display_name, "token",
                             scopes=frozenset(token.scopes or []))
        try:
            live = accounts.session_for(session, token=cookie, now=now)
        except AuthenticationFailed:
            if api:
                raise
            raise SignInRequired() from None
        agent = session.get(Agent, live.agent_id)
        if agent is None:
            raise AuthenticationFailed()
        return Principal(agent.id, agent.role, agent.team_id, normalize_language(agent.language),
                         agent.display_name, "cookie", csrf_token=live.csrf_token)


async def principal(request: Request) -> Principal:
    """Who is asking; AuthenticationFailed (401, or a redirect on pages) when nobody valid is.

    The database lookup runs in a worker thread: on the event loop, a wait for a pooled
    connection under load would stall every request and live stream of the process.
    """
    found = await run_in_threadpool(
        _lookup, desk_of(request), secret=_bearer(request),
        cookie=request.cookies.get(SESSION_COOKIE), method=request.method,
        api=request.url.path.startswith("/api/"))
    request.state.language = found.language
    if found.via == "cookie" and request.method not in SAFE_METHODS and not same_token(
            found.csrf_token, await _csrf_given(request)):
        raise PermissionDenied("missing or wrong CSRF token")
    return found
