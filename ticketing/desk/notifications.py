"""Agents' notifications: what an agent must see (a customer wrote back, an escalation, a breach).

Stored in the database so an agent who was offline still finds them; the desk shows the unread
ones. Texts are stored in both languages because the reader's language is the agent's choice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.core.clock import utcnow
from ticketing.core.errors import AgentNotFound, NotFound, PermissionDenied, ValidationError
from ticketing.core.i18n import Text
from ticketing.core.models import Agent, Notification


def notify(
    session: Session,
    *,
    agent_id: int,
    kind: str,
    text: Text,
    ticket_id: int | None = None,
    values: Mapping[str, object] | None = None,
    now: datetime | None = None,
) -> Notification:
    """Queue one notification for ``agent_id``; ``values`` fill the placeholders of ``text``."""
    if not kind or len(kind) > 32:
        raise ValidationError("notification kind must be 1-32 characters")
    if session.get(Agent, agent_id) is None:
        raise AgentNotFound(agent_id=agent_id)
    values = dict(values or {})
    note = Notification(
        agent_id=agent_id,
        ticket_id=ticket_id,
        kind=kind,
        text_zh=text.get("zh", **values),
        text_en=text.get("en", **values),
        created_at=now or utcnow(),
    )
    session.add(note)
    session.flush()
    return note


def unread(session: Session, *, agent_id: int, limit: int = 50) -> list[Notification]:
    """The agent's unread notifications, newest first."""
    stmt = (
        select(Notification)
        .where(Notification.agent_id == agent_id, Notification.read_at.is_(None))
        .order_by(Notification.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def mark_read(
    session: Session, *, notification_id: int, agent_id: int, now: datetime | None = None
) -> Notification:
    """Mark one of the agent's own notifications read (idempotent)."""
    note = session.get(Notification, notification_id)
    if note is None:
        raise NotFound(notification_id=notification_id)
    if note.agent_id != agent_id:
        raise PermissionDenied("not your notification")
    if note.read_at is None:
        note.read_at = now or utcnow()
    return note
