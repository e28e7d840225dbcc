"""Deliver queued webhook events: claim with a lease, POST signed, record, retry with backoff.

One round (:func:`run_once`) is three steps, and no database connection is held while an
endpoint is being called:

1. :func:`claim` — in one short transaction, take up to ``batch`` due deliveries: on
   PostgreSQL ``SELECT … FOR UPDATE SKIP LOCKED`` so racing workers take disjoint rows, on
   SQLite (one writer at a time) a conditional ``UPDATE … WHERE status = <seen>``. Each claim
   counts an attempt and sets a lease (``lease_until``, a fresh ``lease_token``); a delivery
   whose lease ran out (its worker died mid-request) is due again and its lost attempt is
   logged.
2. :func:`send` — POST the event, signed, to each endpoint at once (a thread per claimed
   delivery, so a batch takes one timeout at most).
3. :func:`record` — 2xx is delivered; anything else (another status, a timeout, a refused
   connection) schedules the next attempt with exponential backoff and jitter, until
   ``max_attempts`` makes it dead. The result is written only under the claim's token:
   a worker that lost its lease cannot overwrite the one that took over.

So an event is delivered at least once and recorded as delivered once; a receiver that
keeps the ``Kefu-Event-Id`` of what it processed sees it exactly once.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ticketing.core.clock import utcnow
from ticketing.core.errors import ConfigurationError
from ticketing.core.models import (
    DUE_STATUSES,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from ticketing.core.pii import PiiCipher
from ticketing.desk.webhooks import signing
from ticketing.desk.webhooks.endpoints import secret_of
from ticketing.desk.webhooks.events import envelope
from ticketing.desk.webhooks.metrics import WebhookMetrics

log = logging.getLogger("ticketing.desk.webhooks")

USER_AGENT = "Kefu-Webhooks/1"
EVENT_ID_HEADER = "Kefu-Event-Id"
EVENT_TYPE_HEADER = "Kefu-Event-Type"
ATTEMPT_HEADER = "Kefu-Delivery-Attempt"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with "equal jitter": after failed attempt n the next waits
    ``d = min(cap, base · 2^(n-1))``, half of it fixed and half random, so a crowd of
    deliveries failing together does not come back together."""

    max_attempts: int = 12
    base_seconds: float = 30.0
    cap_seconds: float = 6 * 3600.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_seconds < 0 or self.cap_seconds < self.base_seconds:
            raise ConfigurationError("retry policy: max_attempts >= 1, 0 <= base <= cap")

    def delay(self, attempt: int, jitter: float) -> timedelta:
        """Wait after failed ``attempt`` (1-based); ``jitter`` is uniform in [0, 1)."""
        full = min(self.cap_seconds, self.base_seconds * 2.0 ** (attempt - 1))
        return timedelta(seconds=full / 2.0 + full / 2.0 * jitter)


@dataclass(frozen=True)
class DeliveryConfig:
    """How one worker delivers. The lease must outlast a request, or a slow but successful
    delivery would be taken over and sent twice (still deduplicated by the receiver)."""

    timeout_seconds: float = 10.0
    lease_seconds: float = 60.0
    batch: int = 10
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    excerpt_chars: int = 500

    def __post_init__(self) -> None:
        if self.timeout_seconds <= 0 or self.batch < 1:
            raise ConfigurationError("webhook delivery: timeout > 0 and batch >= 1")
        if self.lease_seconds <= self.timeout_seconds:
            raise ConfigurationError("webhook delivery: the lease must be longer than the timeout")


@dataclass(frozen=True)
class Claimed:
    """One delivery a worker holds: everything needed to send it without the database."""

    delivery_id: int
    token: str
    attempt: int
    url: str
    secret: str
    event_uid: str
    event_type: str
    body: bytes


@dataclass(frozen=True)
class Result:
    started_at: datetime
    duration_ms: int
    status_code: int | None = None
    error: str | None = None
    excerpt: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass
class RunReport:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    late: int = 0  # results that came back after the lease ran out (not applied)


class Sender(Protocol):
    """Sends one claimed delivery; never raises for the endpoint's failures."""

    def __call__(self, item: Claimed) -> Result: ...


# --- claiming ------------------------------------------------------------------------------
def claim(session_factory: sessionmaker[Session], *, cipher: PiiCipher, now: datetime,
          config: DeliveryConfig = DeliveryConfig()) -> list[Claimed]:
    """Take up to ``config.batch`` due deliveries of active endpoints, in one transaction."""
    lease_until = now + timedelta(seconds=config.lease_seconds)
    with session_factory.begin() as session:
        due = (select(WebhookDelivery.id, WebhookDelivery.status, WebhookDelivery.attempts,
                      WebhookDelivery.lease_until)
               .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
               .where(WebhookDelivery.status.in_(DUE_STATUSES),
                      WebhookDelivery.next_attempt_at <= now,
                      WebhookEndpoint.active.is_(True))
               .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
               .limit(config.batch))
        if session.get_bind().dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True, of=WebhookDelivery)
        taken: list[tuple[int, str, int]] = []
        for row in session.execute(due).all():
            lost = row.status is DeliveryStatus.DELIVERING
            out_of_attempts = lost and row.attempts >= config.retry.max_attempts
            token = uuid.uuid4().hex
            values: dict[str, object] = (
                {"status": DeliveryStatus.DEAD, "lease_token": None, "lease_until": None,
                 "last_error": "the worker stopped mid-delivery on the last attempt"}
                if out_of_attempts else
                {"status": DeliveryStatus.DELIVERING, "attempts": row.attempts + 1,
                 "lease_token": token, "lease_until": lease_until,
                 "next_attempt_at": lease_until})
            # the compare-and-set: on SQLite the claim itself, on PostgreSQL a backstop
            won = session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == row.id, WebhookDelivery.status == row.status,
                       WebhookDelivery.attempts == row.attempts)
                .values(**values).execution_options(synchronize_session=False)).rowcount
            if won != 1:
                continue
            if lost:
                session.add(WebhookAttempt(
                    delivery_id=row.id, attempt=row.attempts,
                    started_at=row.lease_until or now, outcome="lost",
                    error="the lease ran out before the worker recorded a result"))
            if not out_of_attempts:
                taken.append((row.id, token, row.attempts + 1))
        return _load(session, taken, cipher)


def _load(session: Session, taken: Sequence[tuple[int, str, int]],
          cipher: PiiCipher) -> list[Claimed]:
    if not taken:
        return []
    rows = {delivery.id: (event, endpoint) for delivery, event, endpoint in session.execute(
        select(WebhookDelivery, WebhookEvent, WebhookEndpoint)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.id.in_([delivery_id for delivery_id, _, _ in taken]))).tuples()}
    claimed = []
    for delivery_id, token, attempt in taken:
        event, endpoint = rows[delivery_id]
        claimed.append(Claimed(delivery_id=delivery_id, token=token, attempt=attempt,
                               url=endpoint.url, secret=secret_of(endpoint, cipher),
                               event_uid=event.uid, event_type=event.type, body=body_of(event)))
    return claimed


def body_of(event: WebhookEvent) -> bytes:
    """The exact bytes sent and signed: compact UTF-8 JSON with sorted keys."""
    return json.dumps(envelope(event), ensure_ascii=False, separators=(",", ":"),
                      sort_keys=True).encode("utf-8")


# --- sending -------------------------------------------------------------------------------
def headers_for(item: Claimed, *, timestamp: int | None = None) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        EVENT_ID_HEADER: item.event_uid,
        EVENT_TYPE_HEADER: item.event_type,
        ATTEMPT_HEADER: str(item.attempt),
        signing.HEADER: signing.sign(item.secret, item.body, timestamp=timestamp),
    }


class HttpSender:
    """POSTs with httpx: no redirects followed (a 3xx is a failure, the URL is the admin's
    to fix), and at most ``excerpt_chars`` of the answer kept for the log."""

    def __init__(self, client: httpx.Client, config: DeliveryConfig = DeliveryConfig()) -> None:
        self.client = client
        self.config = config

    def __call__(self, item: Claimed) -> Result:
        started, clock = utcnow(), time.monotonic()
        try:
            with self.client.stream("POST", item.url, content=item.body,
                                    headers=headers_for(item),
                                    timeout=self.config.timeout_seconds,
                                    follow_redirects=False) as response:
                excerpt = _excerpt(response, self.config.excerpt_chars)
                return Result(started, _ms(clock), status_code=response.status_code,
                              excerpt=excerpt)
        except httpx.TimeoutException as exc:
            error = f"timeout after {self.config.timeout_seconds:g}s ({type(exc).__name__})"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        return Result(started, _ms(clock), error=error[:1000])


def _excerpt(response: httpx.Response, limit: int) -> str:
    data = b""
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) >= limit * 4:  # a UTF-8 character is at most 4 bytes
            break
    return data.decode("utf-8", "replace")[:limit]


def _ms(since: float) -> int:
    return int((time.monotonic() - since) * 1000)


def send(items: Sequence[Claimed], sender: Sender) -> list[Result]:
    """Send every claimed delivery at once, so a batch costs one timeout, not ``batch``."""
    if len(items) <= 1:
        return [sender(item) for item in items]
    with ThreadPoolExecutor(max_workers=len(items), thread_name_prefix="webhook") as pool:
        return list(pool.map(sender, items))


# --- recording -----------------------------------------------------------------------------
def record(session_factory: sessionmaker[Session], item: Claimed, result: Result, *,
           now: datetime, config: DeliveryConfig = DeliveryConfig(),
           jitter: Callable[[], float] = random.random) -> str:
    """Write the attempt's result under the claim's token; returns the attempt's outcome."""
    values: dict[str, object] = {"lease_token": None, "lease_until": None,
                                 "last_status_code": result.status_code,
                                 "last_error": None if result.ok else _why(result)}
    if result.ok:
        outcome = "delivered"
        values.update(status=DeliveryStatus.DELIVERED, delivered_at=now)
    elif item.attempt >= config.retry.max_attempts:
        outcome = "dead"
        values.update(status=DeliveryStatus.DEAD)
    else:
        outcome = "retry"
        values.update(status=DeliveryStatus.FAILED,
                      next_attempt_at=now + config.retry.delay(item.attempt, jitter()))
    with session_factory.begin() as session:
        applied = session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == item.delivery_id,
                   WebhookDelivery.lease_token == item.token)
            .values(**values).execution_options(synchronize_session=False)).rowcount
        if applied != 1:
            outcome = "late"
            log.warning("webhook delivery %d: lease lost before its result (%s) was recorded",
                        item.delivery_id, result.status_code or result.error)
        session.add(WebhookAttempt(
            delivery_id=item.delivery_id, attempt=item.attempt, started_at=result.started_at,
            duration_ms=result.duration_ms, status_code=result.status_code, outcome=outcome,
            error=None if result.ok else _why(result), response_excerpt=result.excerpt))
    return outcome


def _why(result: Result) -> str:
    return result.error or f"HTTP {result.status_code}"


# --- the loop ------------------------------------------------------------------------------
def run_once(session_factory: sessionmaker[Session], *, cipher: PiiCipher, sender: Sender,
             config: DeliveryConfig = DeliveryConfig(), now: datetime | None = None,
             jitter: Callable[[], float] = random.random,
             metrics: WebhookMetrics | None = None) -> RunReport:
    """Claim, send and record one batch. ``now`` pins the clock (tests); else real time."""
    items = claim(session_factory, cipher=cipher, now=now or utcnow(), config=config)
    report = RunReport(claimed=len(items))
    for item, result in zip(items, send(items, sender)):
        outcome = record(session_factory, item, result, now=now or utcnow(), config=config,
                         jitter=jitter)
        if metrics is not None:
            metrics.attempted(attempt=item.attempt, outcome=outcome,
                              duration_ms=result.duration_ms)
        if outcome == "delivered":
            report.delivered += 1
        elif outcome == "retry":
            report.retried += 1
        elif outcome == "dead":
            report.dead += 1
        else:
            report.late += 1
        if not result.ok:
            log.info("webhook %s to %s attempt %d: %s (%s)", item.event_uid,
                     item.url.split("?")[0], item.attempt, _why(result), outcome)
    return report


class DeliveryWorker:
    """Rounds back to back while full batches keep coming, else every ``interval_seconds``;
    a failed round (the database restarting) is retried; SIGTERM stops it between rounds."""

    def __init__(self, session_factory: sessionmaker[Session], *, cipher: PiiCipher,
                 sender: Sender, config: DeliveryConfig = DeliveryConfig(),
                 interval_seconds: float = 2.0, metrics: WebhookMetrics | None = None) -> None:
        if interval_seconds <= 0:
            raise ConfigurationError("the webhook poll interval must be positive")
        self.session_factory = session_factory
        self.cipher = cipher
        self.sender = sender
        self.config = config
        self.interval_seconds = interval_seconds
        self.metrics = metrics
        self.stopping = threading.Event()

    def run(self) -> None:
        log.info("webhook delivery started (every %gs, batch %d)", self.interval_seconds,
                 self.config.batch)
        while not self.stopping.is_set():
            try:
                report = run_once(self.session_factory, cipher=self.cipher, sender=self.sender,
                                  config=self.config, metrics=self.metrics)
                if self.metrics is not None:
                    self.metrics.round_done()
            except Exception:
                log.exception("webhook round failed; next try in %gs", self.interval_seconds)
                report = RunReport()
                if self.metrics is not None:
                    self.metrics.round_failed()
            if report.claimed < self.config.batch:
                self.stopping.wait(self.interval_seconds)
        log.info("webhook delivery stopped")

    def stop(self, *_args: object) -> None:
        self.stopping.set()
