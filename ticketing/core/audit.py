"""Audit log of sensitive actions (rules §SEC-5, §SEC-6). Callers pass masked details, never raw PII."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from ticketing.core.clock import utcnow
from ticketing.core.models import AuditLog


def record(
    session: Session,
    *,
    action: str,
    actor_type: str,
    actor_id: int | None = None,
    target_type: str | None = None,
    target_id: object = None,
    details: dict[str, object] | None = None,
    ip: str | None = None,
    now: datetime | None = None,
) -> AuditLog:
    """Add one audit entry to the session's unit of work."""
    entry = AuditLog(
        at=now or utcnow(),
        actor_type=actor_type,
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        details=details or {},
        ip=ip,
    )
    session.add(entry)
    return entry


def by_agent(session: Session, action: str, *, by_agent_id: int, target_type: str,
             target_id: object, details: dict[str, object], ip: str | None = None,
             now: datetime | None = None) -> AuditLog:
    """An agent's own change (admins' settings, people and policies): the common case."""
    return record(session, action=action, actor_type="agent", actor_id=by_agent_id,
                  target_type=target_type, target_id=target_id, details=details, ip=ip, now=now)
