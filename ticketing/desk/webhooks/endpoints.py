"""The shop's webhook endpoints: added, listed, disabled and enabled by an admin, each audited.

An endpoint sends ticket and refund data out of Kefu, so only an admin manages them and every
change is an audit entry (``webhook.endpoint_created``, ``webhook.endpoint_disabled``,
``webhook.endpoint_enabled``) with the URL shown without its query string, which may hold a
token of the shop's. The signing secret is generated here, returned once, and stored only
encrypted (see :class:`~ticketing.core.models.WebhookEndpoint`).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.core import audit
from ticketing.core.clock import utcnow
from ticketing.core.errors import AgentNotFound, NotFound, PermissionDenied, ValidationError
from ticketing.core.hosts import is_loopback
from ticketing.core.models import Agent, Role, WebhookEndpoint
from ticketing.core.pii import PiiCipher
from ticketing.desk.webhooks.events import EVENT_TYPES

SECRET_FIELD = "webhook_secret"  # the AES-GCM associated data: a secret cannot pose as a phone
SECRET_PREFIX = "whsec_"
ALL_EVENTS = "all"
URL_MAX_CHARS = 500


def new_secret() -> str:
    """``whsec_`` + 43 URL-safe characters (256 random bits)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def secret_of(endpoint: WebhookEndpoint, cipher: PiiCipher) -> str:
    """The endpoint's signing secret, decrypted for signing a request."""
    return cipher.decrypt(endpoint.secret_enc, field=SECRET_FIELD)


def check_url(url: str, *, allow_http: bool = False) -> str:
    """An absolute http(s) URL; plain http only to this machine or when ``allow_http`` says
    the network between is trusted (signatures prove the sender, not secrecy)."""
    url = (url or "").strip()
    if not url or len(url) > URL_MAX_CHARS:
        raise ValidationError(f"the URL must have 1 to {URL_MAX_CHARS} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("the URL must be http(s)://host/...")
    if parts.username or parts.password:
        raise ValidationError("no credentials in the URL: the signature authenticates Kefu")
    if parts.scheme == "http" and not allow_http and not is_loopback(parts.hostname):
        raise ValidationError("use https (plain http only to localhost, or with allow_http)")
    return url


def check_events(names: Iterable[str]) -> list[str]:
    """Known event types, deduplicated in the documented order; ``all`` means every one."""
    chosen = {name.strip() for name in names if name and name.strip()}
    if ALL_EVENTS in chosen:
        return list(EVENT_TYPES)
    unknown = sorted(chosen - set(EVENT_TYPES))
    if unknown:
        raise ValidationError(f"unknown event types {unknown}; known: {list(EVENT_TYPES)}")
    if not chosen:
        raise ValidationError("subscribe to at least one event type")
    return [name for name in EVENT_TYPES if name in chosen]


def add_endpoint(
    session: Session, *, cipher: PiiCipher, url: str, events: Iterable[str], by_agent_id: int,
    description: str = "", allow_http: bool = False, now: datetime | None = None,
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its secret, which is never shown again."""
    now = now or utcnow()
    require_admin(session, by_agent_id)
    url = check_url(url, allow_http=allow_http)
    chosen = check_events(events)
    secret = new_secret()
    endpoint = WebhookEndpoint(url=url, description=(description or "").strip()[:200],
                               secret_enc=cipher.encrypt(secret, field=SECRET_FIELD),
                               events=chosen, active=True, created_at=now,
                               created_by=by_agent_id)
    session.add(endpoint)
    session.flush()
    audit.by_agent(session, "webhook.endpoint_created", by_agent_id=by_agent_id,
                   target_type="webhook_endpoint", target_id=endpoint.id, now=now,
                   details={"url": display_url(url), "events": chosen})
    return endpoint, secret


def set_active(session: Session, *, endpoint_id: int, active: bool, by_agent_id: int,
               now: datetime | None = None) -> WebhookEndpoint:
    """Disable (its deliveries wait, nothing new is queued for it) or enable an endpoint.

    Asking for the state it already has changes nothing and writes no audit entry.
    """
    now = now or utcnow()
    require_admin(session, by_agent_id)
    endpoint = session.get(WebhookEndpoint, endpoint_id, with_for_update=True)
    if endpoint is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}", endpoint_id=endpoint_id)
    if endpoint.active is active:
        return endpoint
    endpoint.active = active
    endpoint.disabled_at = None if active else now
    action = "webhook.endpoint_enabled" if active else "webhook.endpoint_disabled"
    audit.by_agent(session, action, by_agent_id=by_agent_id, target_type="webhook_endpoint",
                   target_id=endpoint.id, now=now,
                   details={"url": display_url(endpoint.url), "active": active})
    return endpoint


def list_endpoints(session: Session) -> list[WebhookEndpoint]:
    return list(session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def require_admin(session: Session, agent_id: int) -> Agent:
    """Only an active admin sends the shop's data somewhere new."""
    agent = session.get(Agent, agent_id)
    if agent is None or not agent.active:
        raise AgentNotFound(agent_id=agent_id)
    if agent.role is not Role.ADMIN:
        raise PermissionDenied("only an admin manages webhooks", agent_id=agent_id)
    return agent


def display_url(url: str) -> str:
    """The URL without query string or fragment, for logs and audit details."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"

