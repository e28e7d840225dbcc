"""API tokens for scripts, for admins (issue 14): ``/admin/tokens`` and its JSON twin
``/api/v1/admin/tokens``, the screen the CLI (``ticketing.web.tokens``) was standing in for.

Creation and revocation go through ``ticketing.desk.accounts``, so they are audited exactly as
the CLI's (``desk.api_token_created`` / ``desk.api_token_revoked``) with the admin as actor.
Refusals are checked here first, before the service writes anything, so each gets its own
bilingual sentence. The secret is in the create answer only (the page shows it once); lists
show the prefix, never the secret or its hash.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.core.clock import aware
from ticketing.core.errors import Conflict, NotFound, ValidationError
from ticketing.core.models import Agent, ApiToken
from ticketing.desk import accounts
from ticketing.web.api import Id, body_of, errors, is_form
from ticketing.web.deps import Principal, desk_of
from ticketing.web.routes.admin_guard import AdminBody, AdminWho, done, render
from ticketing.web.routes.tickets import Input, parse
from ticketing.web.texts import ui

router = APIRouter()
API = "/api/v1/admin/tokens"
PAGE = "/admin/tokens"
TAGS: list[str | Enum] = ["admin"]


class TokenRefused(ValidationError):
    """A token the service would refuse (or create uselessly): its reason in both languages."""

    def __init__(self, code: str) -> None:
        super().__init__(f"api token refused: {code}")
        self.code = code

    def text(self, language: str = "en") -> str:
        known = ", ".join(sorted(accounts.SCOPES))
        return ui(f"admin.token.error.{self.code}", language).format(scopes=known)


class TokenNotFound(NotFound):
    code = "token_not_found"

    def text(self, language: str = "en") -> str:
        return ui("admin.token.error.token_not_found", language)


class TokenAlreadyRevoked(Conflict):
    """The service ignores a second revocation silently; the admin is told instead."""

    code = "already_revoked"

    def text(self, language: str = "en") -> str:
        return ui("admin.token.error.already_revoked", language)


class TokenIn(Input):
    agent_id: Id = Field(description="The agent the token acts as (audit rows name them).")
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]
    scopes: list[Annotated[str, StringConstraints(max_length=32)]] = Field(
        default_factory=list, max_length=8,
        description=f"Some of {', '.join(sorted(accounts.SCOPES))}.")


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="The secret's first characters, to recognise it by.")
    agent_id: int
    agent_login: str
    agent_name: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    state: Literal["active", "expired", "revoked"]


class TokenCreatedOut(TokenOut):
    secret: str = Field(description="Shown once, in this answer only: store it now.")


async def token_body(request: Request, data: AdminBody) -> dict[str, Any]:
    """The admin body with a form's ticked ``scopes`` as a list (none ticked: an empty one)."""
    if is_form(request):
        form = await request.form()
        data = {**data, "scopes": [v for v in form.getlist("scopes") if isinstance(v, str) and v]}
    return data


TokenBody = Annotated[dict[str, Any], Depends(token_body)]


def _out(token: ApiToken, agent: Agent, now: datetime) -> TokenOut:
    state: Literal["active", "expired", "revoked"] = "active"
    if token.revoked_at is not None:
        state = "revoked"
    elif token.expires_at is not None and aware(token.expires_at) <= now:
        state = "expired"
    return TokenOut(id=token.id, name=token.name, prefix=token.prefix, agent_id=agent.id,
                    agent_login=agent.login, agent_name=agent.display_name,
                    scopes=list(token.scopes or []), created_at=token.created_at,
                    expires_at=token.expires_at, last_used_at=token.last_used_at,
                    revoked_at=token.revoked_at, state=state)


def _tokens(session: Session, now: datetime, token_id: int | None = None) -> list[TokenOut]:
    """Every token (or one), newest first, with its agent: one statement."""
    query = select(ApiToken, Agent).join(Agent, Agent.id == ApiToken.agent_id)
    if token_id is not None:
        query = query.where(ApiToken.id == token_id)
    rows = session.execute(query.order_by(ApiToken.id.desc())).tuples()
    return [_out(token, agent, now) for token, agent in rows]


def _page(request: Request, who: Principal, session: Session,
          created: TokenCreatedOut | None = None) -> Response:
    """The tokens page; after a form's creation, with the new secret (the only time)."""
    now = desk_of(request).clock()
    owners = session.scalars(select(Agent).where(Agent.active.is_(True))
                             .order_by(Agent.display_name)).all()
    return render(request, who, "admin/tokens.html", "tokens", tokens=_tokens(session, now),
                  owners=owners, scopes=sorted(accounts.SCOPES), created=created)


@router.get(PAGE, include_in_schema=False)
def tokens_page(request: Request, who: AdminWho) -> Response:
    with desk_of(request).unit_of_work() as session:
        return _page(request, who, session)


@router.get(API, response_model=list[TokenOut], tags=TAGS, responses=errors())
def list_tokens(request: Request, who: AdminWho) -> list[TokenOut]:
    """Every API token, revoked ones included, never a secret."""
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        return _tokens(session, desk.clock())


_CREATE_DOC = body_of(TokenIn)
_CREATE_DOC["responses"] = {"200": {"description": "A form post from the page: the page, "
                                                   "showing the secret once",
                                    "content": {"text/html": {}}}}


@router.post(API, response_model=TokenCreatedOut, status_code=201, tags=TAGS,
             responses=errors(), openapi_extra=_CREATE_DOC)
def create_token(request: Request, who: AdminWho, data: TokenBody) -> Any:
    """A token acting as an active agent, with some of the known scopes
    (``desk.api_token_created``, the admin as actor). The secret is in this answer only."""
    given = parse(TokenIn, data)
    if not given.scopes:
        raise TokenRefused("no_scope")
    if set(given.scopes) - accounts.SCOPES:
        raise TokenRefused("unknown_scope")
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        agent = session.get(Agent, given.agent_id)
        if agent is None:
            raise TokenRefused("unknown_agent")
        if not agent.active:  # its token would be refused on every use
            raise TokenRefused("agent_inactive")
        token, secret = accounts.create_api_token(
            session, agent_id=agent.id, name=given.name, scopes=given.scopes,
            created_by=who.agent_id, now=desk.clock())
        created = TokenCreatedOut(**_out(token, agent, desk.clock()).model_dump(), secret=secret)
        if is_form(request):
            return _page(request, who, session, created)
    return created


@router.post(f"{API}/{{token_id}}/revoke", response_model=TokenOut, tags=TAGS,
             responses=errors(404, 409))
def revoke_token(request: Request, token_id: Id, who: AdminWho) -> Any:
    """End a token at once: its next use is 401 (``desk.api_token_revoked``, the admin as
    actor). Revoking it again is a 409."""
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        token = session.get(ApiToken, token_id, with_for_update=True)
        if token is None:
            raise TokenNotFound(token_id=token_id)
        if token.revoked_at is not None:
            raise TokenAlreadyRevoked(token_id=token_id)
        accounts.revoke_api_token(session, token_id=token_id, by_agent_id=who.agent_id,
                                  now=desk.clock())
        session.flush()
        [result] = _tokens(session, desk.clock(), token_id)
    return done(request, result, PAGE)
