"""Who may work at the desk: sign-in with lockout, sessions and API tokens (rules §SEC-1, §SEC-6).

- Five failed sign-ins lock the account for 15 minutes; five failures from one address lock
  that address for 15 minutes too, whatever logins it tries. Every sign-in, failure and refusal
  is in the audit log with the address, the browser and the time.
- A session is a random token in an HttpOnly cookie; the database keeps its SHA-256, its CSRF
  token and its expiry, so every desk process knows it and a sign-out ends it everywhere.
- API tokens for scripts are shown once and stored hashed, with scopes.
- A deactivated agent (``Agent.active`` False, ``ticketing.desk.directory``) cannot sign in, and
  their sessions and tokens are refused: the refusal is audited like a locked account's.

The lockout counts live in the database (the account's row, the audit log for addresses), so
several desk processes enforce one limit.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ticketing.core import audit
from ticketing.core.clock import aware, utcnow
from ticketing.core.errors import AccountLocked, AuthenticationFailed, ValidationError
from ticketing.core.models import Agent, ApiToken, AuditLog, DeskSession
from ticketing.core.passwords import hash_password, verify_password

MAX_FAILURES = 5
LOCK_FOR = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=12)
TOKEN_PREFIX = "kefu_"
SCOPES = frozenset({"desk:read", "desk:write", "shop:read", "shop:write"})

SIGNED_IN = "desk.signed_in"
SIGNIN_FAILED = "desk.signin_failed"
SIGNIN_REFUSED = "desk.signin_refused"  # locked: not even checked
IP_LOCKED = "desk.ip_locked"
SIGNED_OUT = "desk.signed_out"

# verified against when the login is unknown, so both answers take as long
_DUMMY_HASH = hash_password("kefu-no-such-agent")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SignIn:
    """A started session: the cookie value (shown once), its CSRF token and expiry."""

    agent: Agent
    token: str
    csrf_token: str
    expires_at: datetime


def _clip(value: str | None, limit: int) -> str | None:
    return None if value is None else value[:limit]


def _ip_locked(session: Session, ip: str | None, now: datetime) -> bool:
    if not ip:
        return False
    since = now - LOCK_FOR
    return session.scalar(
        select(func.count()).select_from(AuditLog)
        .where(AuditLog.action == IP_LOCKED, AuditLog.ip == ip, AuditLog.at > since)
    ) > 0


def _note_ip_failure(session: Session, ip: str | None, now: datetime) -> None:
    """The fifth failure from one address within the lock span locks the address."""
    if not ip:
        return
    recent = session.scalar(
        select(func.count()).select_from(AuditLog)
        .where(AuditLog.action == SIGNIN_FAILED, AuditLog.ip == ip,
               AuditLog.at > now - LOCK_FOR)
    )
    if recent >= MAX_FAILURES:
        audit.record(session, action=IP_LOCKED, actor_type="system", ip=ip, now=now,
                     details={"until": (now + LOCK_FOR).isoformat(), "failures": recent})


def _unknown_login(login: str) -> str:
    """What the audit keeps of a login that names no agent: its first character and length.
    People type their password into the login box; the audit log must not keep it whole."""
    return f"{login[:1]}…({len(login)})" if login else ""


def sign_in(
    session: Session, *, login: str, password: str, ip: str | None = None,
    user_agent: str | None = None, now: datetime | None = None,
) -> SignIn:
    """Check the password and start a session, or raise AuthenticationFailed / AccountLocked.

    A refusal still writes (the failure count and the audit line): the caller commits it.
    """
    now = now or utcnow()
    login = (login or "").strip()
    details = {"login": _unknown_login(login), "user_agent": _clip(user_agent, 200)}
    if _ip_locked(session, ip, now):
        audit.record(session, action=SIGNIN_REFUSED, actor_type="anonymous", ip=ip, now=now,
                     details={**details, "why": "address locked"})
        raise AccountLocked(ip=ip)
    agent = session.scalar(select(Agent).where(Agent.login == login).with_for_update())
    if agent is not None:
        details["login"] = login[:64]
    if agent is not None and agent.locked_until is not None and aware(agent.locked_until) > now:
        audit.record(session, action=SIGNIN_REFUSED, actor_type="agent", actor_id=agent.id,
                     ip=ip, now=now, details={**details, "why": "account locked"})
        raise AccountLocked(agent_id=agent.id)
    if agent is not None and not agent.active:
        verify_password(password or "x", _DUMMY_HASH)  # as long as a wrong password takes
        audit.record(session, action=SIGNIN_REFUSED, actor_type="agent", actor_id=agent.id,
                     ip=ip, now=now, details={**details, "why": "deactivated"})
        raise AuthenticationFailed()
    if agent is None or not verify_password(password, agent.password_hash or _DUMMY_HASH) \
            or agent.password_hash is None:
        if agent is None:
            verify_password(password or "x", _DUMMY_HASH)  # same time as a wrong password
        audit.record(session, action=SIGNIN_FAILED, actor_type="agent" if agent else "anonymous",
                     actor_id=agent.id if agent else None, ip=ip, now=now, details=details)
        if agent is not None:
            agent.failed_logins = (agent.failed_logins or 0) + 1
            if agent.failed_logins >= MAX_FAILURES:
                agent.locked_until = now + LOCK_FOR
                agent.failed_logins = 0
                audit.record(session, action="desk.account_locked", actor_type="system",
                             target_type="agent", target_id=agent.id, ip=ip, now=now,
                             details={"until": (now + LOCK_FOR).isoformat()})
        session.flush()
        _note_ip_failure(session, ip, now)
        raise AuthenticationFailed()
    agent.failed_logins = 0
    agent.locked_until = None
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires = now + SESSION_LIFETIME
    session.add(DeskSession(token_hash=token_hash(token), agent_id=agent.id, csrf_token=csrf,
                            created_at=now, expires_at=expires, ip=_clip(ip, 64),
                            user_agent=_clip(user_agent, 256)))
    audit.record(session, action=SIGNED_IN, actor_type="agent", actor_id=agent.id, ip=ip,
                 now=now, details=details)
    session.flush()
    return SignIn(agent, token, csrf, expires)


def session_for(session: Session, *, token: str | None, now: datetime | None = None
                ) -> DeskSession:
    """The live session of a cookie token; unknown, expired, ended or a deactivated agent's =
    AuthenticationFailed."""
    now = now or utcnow()
    if not token:
        raise AuthenticationFailed()
    found = session.scalar(
        select(DeskSession).join(Agent, Agent.id == DeskSession.agent_id)
        .where(DeskSession.token_hash == token_hash(token), Agent.active.is_(True)))
    if found is None or found.revoked_at is not None or aware(found.expires_at) <= now:
        raise AuthenticationFailed()
    return found


def sign_out(session: Session, *, token: str | None, ip: str | None = None,
             now: datetime | None = None) -> None:
    """End the session everywhere; signing out twice is harmless."""
    now = now or utcnow()
    if not token:
        return
    found = session.scalar(select(DeskSession).where(DeskSession.token_hash == token_hash(token)))
    if found is None or found.revoked_at is not None:
        return
    found.revoked_at = now
    audit.record(session, action=SIGNED_OUT, actor_type="agent", actor_id=found.agent_id,
                 ip=ip, now=now)


def end_sessions_of(session: Session, *, agent_id: int, now: datetime | None = None) -> int:
    """Sign an agent out everywhere (a password change, a removed account)."""
    result = session.execute(
        update(DeskSession).where(DeskSession.agent_id == agent_id,
                                  DeskSession.revoked_at.is_(None))
        .values(revoked_at=now or utcnow()).execution_options(synchronize_session=False))
    return int(result.rowcount or 0)


# --- API tokens ------------------------------------------------------------------------------
def create_api_token(
    session: Session, *, agent_id: int, name: str, scopes: Iterable[str],
    expires_at: datetime | None = None, created_by: int | None = None,
    now: datetime | None = None,
) -> tuple[ApiToken, str]:
    """A new token for scripts acting as ``agent_id``; the secret is returned once, only here."""
    now = now or utcnow()
    wanted = sorted(set(scopes))
    unknown = set(wanted) - SCOPES
    if unknown or not wanted:
        raise ValidationError(f"scopes must be some of {sorted(SCOPES)}")
    if not name or not name.strip():
        raise ValidationError("a token needs a name")
    if session.get(Agent, agent_id) is None:
        raise ValidationError("no such agent")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(agent_id=agent_id, name=name.strip()[:80], prefix=secret[:12],
                     token_hash=token_hash(secret), scopes=wanted, created_at=now,
                     expires_at=expires_at)
    session.add(token)
    session.flush()
    audit.record(session, action="desk.api_token_created", actor_type="agent",
                 actor_id=created_by or agent_id, target_type="api_token", target_id=token.id,
                 details={"agent_id": agent_id, "scopes": wanted, "name": token.name}, now=now)
    return token, secret


def token_for(session: Session, *, secret: str | None, scope: str,
              now: datetime | None = None) -> ApiToken:
    """The live token behind a bearer secret, if it carries ``scope``; else AuthenticationFailed
    (a missing scope is AuthenticationFailed too: a script learns nothing it may not)."""
    now = now or utcnow()
    if not secret or not secret.startswith(TOKEN_PREFIX):
        raise AuthenticationFailed()
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(secret)))
    if token is None or token.revoked_at is not None or (
            token.expires_at is not None and aware(token.expires_at) <= now):
        raise AuthenticationFailed()
    if scope not in (token.scopes or []):
        raise AuthenticationFailed("token lacks scope", scope=scope)
    owner = session.get(Agent, token.agent_id)
    if owner is None or not owner.active:
        raise AuthenticationFailed("the token's agent is deactivated")
    token.last_used_at = now
    return token


def revoke_api_token(session: Session, *, token_id: int, by_agent_id: int,
                     now: datetime | None = None) -> None:
    now = now or utcnow()
    token = session.get(ApiToken, token_id)
    if token is None or token.revoked_at is not None:
        return
    token.revoked_at = now
    audit.record(session, action="desk.api_token_revoked", actor_type="agent",
                 actor_id=by_agent_id, target_type="api_token", target_id=token_id, now=now)
