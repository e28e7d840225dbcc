"""Schemathesis against the desk's own OpenAPI document: generated requests to every JSON
operation, signed in as a supervisor, never get a 5xx and every response matches the schema
(status, content type, body). Schema-valid input may still break a business rule (a rejection
without a reason, a ticket in the wrong state): such a 4xx is right, so that check is off."""

from __future__ import annotations

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.ticketing.web.conftest import PASSWORD

EXAMPLES = 12  # per operation: enough to find a 5xx, lean enough for every CI run
SKIP = {
    ("DELETE", "/api/v1/session"),  # signing out mid-run would leave only 401s to test
    ("GET", "/api/v1/events"),  # a stream that stays open: tests/ticketing/web/test_live.py
}


def test_every_operation_answers_within_its_schema(app, people) -> None:
    with TestClient(app, base_url="http://desk.test") as client:
        opened = client.post("/api/v1/session",
                             json={"login": people.desk.supervisor.login, "password": PASSWORD})
    headers = {"X-CSRF-Token": opened.json()["csrf_token"],
               "Cookie": f"kefu_desk={opened.cookies.get('kefu_desk')}"}
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIP:
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            anonymous = (operation.method.upper(), operation.path) == ("POST", "/api/v1/session")
            case.call_and_validate(headers=None if anonymous else headers, allow_redirects=False,
                                  excluded_checks=[positive_data_acceptance])

        check()
        tested.append(f"{operation.method.upper()} {operation.path}")
    assert "GET /api/v1/me" in tested
