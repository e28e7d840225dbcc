"""Endpoints and the delivery log from the command line: admin only, audited, the secret shown
once and stored encrypted (ticketing.desk.webhooks.cli, endpoints, history)."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from ticketing.core.clock import utcnow
from ticketing.core.errors import PermissionDenied, ValidationError
from ticketing.core.models import (
    AuditLog,
    DeliveryStatus,
    Role,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from ticketing.desk import tickets
from ticketing.desk.webhooks import cli, endpoints


def command(session_factory, cipher, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.admin_command(cli.parser().parse_args(list(argv)), session_factory, cipher, out)
    return code, out.getvalue()


def audit_actions(session_factory) -> list[tuple[str, dict]]:
    with session_factory() as s:
        return [(a.action, a.details) for a in s.scalars(
            select(AuditLog).where(AuditLog.action.like("webhook.%")).order_by(AuditLog.id))]


def test_add_prints_the_secret_once_and_stores_it_encrypted(session, session_factory, cipher,
                                                             admin) -> None:
    session.commit()
    code, out = command(session_factory, cipher, "endpoints", "add",
                        "--url", "https://shop.example/hooks?key=shop-token",
                        "--event", "csat.received", "--event", "ticket.created",
                        "--description", "order system", "--by", admin.login)
    assert code == 0, out
    secret = out.split("signing secret: ")[1].split()[0]
    assert secret.startswith("whsec_") and len(secret) > 40
    with session_factory() as s:
        endpoint = s.scalars(select(WebhookEndpoint)).one()
        assert secret.encode() not in endpoint.secret_enc
        assert endpoints.secret_of(endpoint, cipher) == secret
        assert endpoint.events == ["ticket.created", "csat.received"]  # documented order
        assert endpoint.created_by == admin.id
    [(action, details)] = audit_actions(session_factory)
    assert action == "webhook.endpoint_created"
    assert details == {"url": "https://shop.example/hooks",
                       "events": ["ticket.created", "csat.received"]}
    code, listed = command(session_factory, cipher, "endpoints", "list")
    assert code == 0 and "https://shop.example/hooks\t" in listed
    assert secret not in listed and "shop-token" not in listed


def test_disable_and_enable_are_audited_once(session, session_factory, cipher, admin,
                                             add_endpoint) -> None:
    endpoint, _ = add_endpoint(events=("all",))
    for verb in ("disable", "disable", "enable"):
        code, out = command(session_factory, cipher, "endpoints", verb, str(endpoint.id),
                            "--by", admin.login)
        assert code == 0, out
    assert [a for a, _ in audit_actions(session_factory)] == [
        "webhook.endpoint_created", "webhook.endpoint_disabled", "webhook.endpoint_enabled"]
    code, out = command(session_factory, cipher, "endpoints", "disable", "999", "--by",
                        admin.login)
    assert code == 2 and "no webhook endpoint 999" in out


def test_only_an_admin_manages_endpoints_and_a_refusal_writes_nothing(session, make,
                                                                      session_factory,
                                                                      cipher) -> None:
    supervisor = make.agent(role=Role.SUPERVISOR, name="Chen")
    session.commit()
    code, out = command(session_factory, cipher, "endpoints", "add", "--url",
                        "https://shop.example/hooks", "--event", "all", "--by", supervisor.login)
    assert code == 2 and "only an admin" in out
    code, out = command(session_factory, cipher, "endpoints", "add", "--url",
                        "https://shop.example/hooks", "--event", "all", "--by", "nobody")
    assert code == 2 and "no agent" in out
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0
        assert s.scalar(select(func.count()).select_from(AuditLog)) == 0
    with pytest.raises(PermissionDenied):
        endpoints.require_admin(session, supervisor.id)


@pytest.mark.parametrize("url, allow_http, error", [
    ("ftp://shop.example/hooks", False, "http(s)"),
    ("https://user:pw@shop.example/hooks", False, "credentials"),
    ("http://shop.example/hooks", False, "use https"),
    ("/hooks", False, "http(s)"),
    ("https://shop.example/" + "x" * 500, False, "500"),
])
def test_bad_urls_are_refused(url: str, allow_http: bool, error: str) -> None:
    with pytest.raises(ValidationError, match=error.replace("(", r"\(").replace(")", r"\)")):
        endpoints.check_url(url, allow_http=allow_http)


def test_plain_http_only_to_this_machine_or_when_allowed() -> None:
    assert endpoints.check_url("http://127.0.0.1:9000/h") == "http://127.0.0.1:9000/h"
    assert endpoints.check_url("http://localhost/h") == "http://localhost/h"
    assert endpoints.check_url("http://[::1]/h") == "http://[::1]/h"
    assert endpoints.check_url("http://erp.lan/h", allow_http=True) == "http://erp.lan/h"


def test_event_types_are_checked() -> None:
    assert endpoints.check_events(["all"]) == [
        "ticket.created", "ticket.solved", "refund.requested", "csat.received"]
    with pytest.raises(ValidationError, match="unknown event types"):
        endpoints.check_events(["ticket.closed"])
    with pytest.raises(ValidationError, match="at least one"):
        endpoints.check_events([" "])


def test_log_shows_every_attempt_and_redeliver_revives_only_the_dead(
        session, make, session_factory, cipher, admin, add_endpoint) -> None:
    endpoint, _ = add_endpoint(url="https://shop.example/hooks?key=shop-token",
                               events=("ticket.created",))
    customer = make.customer()
    tickets.create_ticket(session, customer_id=customer.id, subject="x", channel="widget")
    session.commit()
    delivery = session.scalars(select(WebhookDelivery)).one()
    t0 = utcnow()
    delivery.status, delivery.attempts = DeliveryStatus.DEAD, 2
    session.add_all([
        WebhookAttempt(delivery_id=delivery.id, attempt=1, started_at=t0, duration_ms=41,
                       status_code=503, outcome="retry", error="HTTP 503"),
        WebhookAttempt(delivery_id=delivery.id, attempt=2, started_at=t0 + timedelta(seconds=30),
                       duration_ms=400, outcome="dead", error="timeout after 0.4s"),
    ])
    session.commit()
    code, out = command(session_factory, cipher, "log", "--status", "dead")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"delivery {delivery.id}\tticket.created\t")
    assert f"endpoint {endpoint.id} https://shop.example/hooks\tdead\tattempts 2" in lines[0]
    assert "shop-token" not in out
    assert lines[1].endswith("retry: 503 (41 ms)")
    assert lines[2].endswith("dead: timeout after 0.4s (400 ms)")
    assert command(session_factory, cipher, "log", "--status", "delivered")[1] == \
        "no deliveries\n"
    code, out = command(session_factory, cipher, "redeliver", str(delivery.id), "--by",
                        admin.login)
    assert code == 0, out
    code, out = command(session_factory, cipher, "redeliver", str(delivery.id), "--by",
                        admin.login)
    assert code == 2 and "is pending, not dead" in out
    with session_factory() as s:
        again = s.get(WebhookDelivery, delivery.id)
        assert (again.status, again.attempts) == (DeliveryStatus.PENDING, 0)
    assert [a for a, _ in audit_actions(session_factory)][-1] == "webhook.redelivered"
