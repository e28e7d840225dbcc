"""The delivery log: what was sent where, every attempt's answer, and redelivering a dead one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.core import audit
from ticketing.core.clock import utcnow
from ticketing.core.errors import Conflict, NotFound, ValidationError
from ticketing.core.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from ticketing.desk.webhooks.endpoints import display_url, require_admin


@dataclass(frozen=True)
class LogEntry:
    delivery: WebhookDelivery
    event: WebhookEvent
    url: str  # without its query string
    attempts: list[WebhookAttempt]


def delivery_log(session: Session, *, endpoint_id: int | None = None,
                 status: str | None = None, event_uid: str | None = None,
                 limit: int = 20) -> list[LogEntry]:
    """The newest deliveries first, each with its attempts in order."""
    query = (select(WebhookDelivery, WebhookEvent, WebhookEndpoint.url)
             .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
             .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
             .order_by(WebhookDelivery.id.desc()).limit(max(1, min(limit, 1000))))
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        try:
            query = query.where(WebhookDelivery.status == DeliveryStatus(status))
        except ValueError:
            raise ValidationError(f"unknown status {status!r}") from None
    if event_uid is not None:
        query = query.where(WebhookEvent.uid == event_uid)
    rows = session.execute(query).tuples().all()
    attempts: dict[int, list[WebhookAttempt]] = {}
    if rows:
        for attempt in session.scalars(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id.in_([d.id for d, _, _ in rows]))
                .order_by(WebhookAttempt.id)):
            attempts.setdefault(attempt.delivery_id, []).append(attempt)
    return [LogEntry(delivery, event, display_url(url), attempts.get(delivery.id, []))
            for delivery, event, url in rows]


def redeliver(session: Session, *, delivery_id: int, by_agent_id: int,
              now: datetime | None = None) -> WebhookDelivery:
    """Queue a dead delivery again with a fresh set of attempts (after the shop fixed its
    endpoint); audited as ``webhook.redelivered``. A delivered one is never sent again."""
    now = now or utcnow()
    require_admin(session, by_agent_id)
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None:
        raise NotFound(f"no webhook delivery {delivery_id}", delivery_id=delivery_id)
    if delivery.status is not DeliveryStatus.DEAD:
        raise Conflict(f"delivery {delivery_id} is {delivery.status.value}, not dead",
                       delivery_id=delivery_id)
    delivery.status = DeliveryStatus.PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = now
    audit.by_agent(session, "webhook.redelivered", by_agent_id=by_agent_id,
                   target_type="webhook_delivery", target_id=delivery.id, now=now,
                   details={"endpoint_id": delivery.endpoint_id, "event_id": delivery.event_id})
    return delivery
