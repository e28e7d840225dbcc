"""An agent's own availability (audited: dispatch follows it) and desk language."""

from __future__ import annotations

import re

from sqlalchemy import select

from tests.ticketing.web.conftest import sign_in
from ticketing.core.models import Agent, AuditLog, Availability
from ticketing.desk import agents


def stored(session_factory, agent_id: int) -> Agent:
    with session_factory() as s:
        return s.get(Agent, agent_id)


def availability_audits(session_factory) -> list[AuditLog]:
    with session_factory() as s:
        return list(s.scalars(select(AuditLog).where(
            AuditLog.action == agents.AVAILABILITY_CHANGED).order_by(AuditLog.id)))


def test_availability_by_json_is_stored_and_audited(app, people, session_factory) -> None:
    c = sign_in(app, people.desk.l1)
    response = c.post("/api/v1/me/availability", json={"availability": "away"})
    assert response.status_code == 200, response.text
    assert response.json() == {"id": people.desk.l1.id, "availability": "away", "language": "zh"}
    assert stored(session_factory, people.desk.l1.id).availability is Availability.AWAY
    [entry] = availability_audits(session_factory)
    assert entry.actor_id == people.desk.l1.id and entry.target_id == str(people.desk.l1.id)
    assert entry.details == {"from": "online", "to": "away"} and entry.ip == "testclient"
    # the same value again changes nothing and records nothing
    assert c.post("/api/v1/me/availability", json={"availability": "away"}).status_code == 200
    assert len(availability_audits(session_factory)) == 1


def test_the_page_form_posts_and_redirects_back(app, people, session_factory) -> None:
    c = sign_in(app, people.desk.l1)
    page = c.get("/?queue=team")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    assert 'action="/api/v1/me/availability"' in page.text
    c.headers.pop("X-CSRF-Token")  # the form carries its token itself
    response = c.post("/api/v1/me/availability", follow_redirects=False,
                      data={"availability": "offline", "csrf_token": token,
                            "next": "/?queue=team"})
    assert response.status_code == 303 and response.headers["location"] == "/?queue=team"
    assert stored(session_factory, people.desk.l1.id).availability is Availability.OFFLINE
    evil = c.post("/api/v1/me/language", follow_redirects=False,
                  data={"language": "en", "csrf_token": token, "next": "//evil.example/"})
    assert evil.status_code == 303 and evil.headers["location"] == "/"
    assert "Mine" in c.get("/").text  # the next page speaks the new language
    htmx = c.post("/api/v1/me/language", headers={"HX-Request": "true"},
                  data={"language": "zh", "csrf_token": token})
    assert htmx.status_code == 204 and htmx.headers["hx-refresh"] == "true"
    forged = c.post("/api/v1/me/availability", data={"availability": "online",
                                                    "csrf_token": "forged"})
    assert forged.status_code == 403
    assert stored(session_factory, people.desk.l1.id).availability is Availability.OFFLINE


def test_language_by_json(app, people, session_factory) -> None:
    c = sign_in(app, people.desk.l1)
    response = c.post("/api/v1/me/language", json={"language": "en"})
    assert response.status_code == 200 and response.json()["language"] == "en"
    assert stored(session_factory, people.desk.l1.id).language == "en"
    assert c.get("/api/v1/me").json()["language"] == "en"


def test_bad_values_are_422_and_nothing_changes(app, people, session_factory) -> None:
    c = sign_in(app, people.desk.l1)
    for path, body in (("availability", {"availability": "busy"}), ("availability", {}),
                       ("language", {"language": "fr"}), ("language", ["en"])):
        response = c.post(f"/api/v1/me/{path}", json=body)
        assert response.status_code == 422, (path, body)
        assert response.json()["error"]["code"] == "invalid_input"
    assert c.post("/api/v1/me/language", content=b"{oops",
                  headers={"content-type": "application/json"}).status_code == 422
    agent = stored(session_factory, people.desk.l1.id)
    assert agent.availability is Availability.ONLINE and agent.language == "zh"
    assert availability_audits(session_factory) == []


def test_signed_out_is_401(client, people) -> None:
    assert client.post("/api/v1/me/availability", json={"availability": "away"}).status_code == 401
    assert client.post("/api/v1/me/language", json={"language": "en"}).status_code == 401


def test_openapi_documents_both_bodies(client) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    operation = spec["paths"]["/api/v1/me/availability"]["post"]
    assert set(operation["requestBody"]["content"]) == {
        "application/json", "application/x-www-form-urlencoded"}
    assert {"200", "401", "403", "422"} <= set(operation["responses"])
