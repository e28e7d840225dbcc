"""The admin screens: admins only (rules §SEC-5), every change one audit row (§SEC-6), bad input
a 422 that changes nothing, forms that work with and without scripts."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.ticketing.web.conftest import PASSWORD, sign_in
from ticketing.core import local_time
from ticketing.core.models import (
    Agent, AuditLog, CannedReplyRow, DeskSession, DeskSetting, Role, SlaPolicyRow, Team,
)
from ticketing.core.passwords import verify_password
from ticketing.desk import directory, policies
from ticketing.web.routes import admin as admin_routes

NEW_PASSWORD = "a brand new secret"
PAGES = ["/admin", "/admin/agents", "/admin/agents/{agent}", "/admin/teams", "/admin/sla",
         "/admin/business-hours", "/admin/canned-replies", "/admin/audit"]
READS = ["/api/v1/admin/agents", "/api/v1/admin/teams", "/api/v1/admin/sla-policies",
         "/api/v1/admin/business-hours", "/api/v1/admin/canned-replies", "/api/v1/admin/audit"]


def writes(people) -> list[tuple[str, dict, int]]:
    """Every admin change with a valid body, in an order that works, and its success status."""
    agent, team = people.desk.l1b.id, people.desk.logistics.id
    return [
        ("/api/v1/admin/agents", {"login": "new.hire", "display_name": "New Hire",
                                  "password": NEW_PASSWORD, "team_id": team}, 201),
        (f"/api/v1/admin/agents/{agent}", {"role": "supervisor", "max_open_tickets": 9}, 200),
        (f"/api/v1/admin/agents/{agent}/password", {"password": NEW_PASSWORD}, 200),
        (f"/api/v1/admin/agents/{agent}/deactivate", {}, 200),
        (f"/api/v1/admin/agents/{agent}/reactivate", {}, 200),
        ("/api/v1/admin/teams", {"code": "vip_care", "name_zh": "VIP 组", "name_en": "VIP care",
                                 "tier": 2, "categories": ["refund", "order"]}, 201),
        (f"/api/v1/admin/teams/{team}", {"tier": 3, "categories": ["*"]}, 200),
        ("/api/v1/admin/sla-policies/urgent/vip", {"first_response_minutes": 30,
                                                   "next_response_minutes": 20,
                                                   "resolution_minutes": 600}, 200),
        ("/api/v1/admin/sla-policies/urgent/vip/reset", {}, 200),
        ("/api/v1/admin/business-hours", {"spec": "mon-sat 09:00-21:00"}, 200),
        ("/api/v1/admin/canned-replies", {"key": "coupon", "title_zh": "优惠券",
                                          "title_en": "Coupon", "body_zh": "送您一张优惠券。",
                                          "body_en": "Here is a coupon."}, 200),
        ("/api/v1/admin/canned-replies/coupon/delete", {}, 204),
    ]


def audit_count(session_factory) -> int:
    with session_factory() as s:
        return s.scalar(select(func.count()).select_from(AuditLog))


def state(session_factory) -> tuple:
    """Everything an admin change may write."""
    with session_factory() as s:
        counts = tuple(s.scalar(select(func.count()).select_from(model)) for model in
                       (Agent, Team, SlaPolicyRow, DeskSetting, CannedReplyRow, AuditLog))
        agents = tuple(s.execute(select(Agent.role, Agent.team_id, Agent.max_open_tickets,
                                        Agent.availability, Agent.active, Agent.password_hash)
                                 .order_by(Agent.id)).tuples())
        teams = tuple(s.execute(select(Team.tier, Team.categories, Team.name_en)
                                .order_by(Team.id)).tuples())
    return counts, agents, teams


def paths(router) -> set[str]:
    """The paths of a router and the routers it includes."""
    found: set[str] = set()
    for route in router.routes:
        inner = getattr(route, "original_router", None)
        found |= paths(inner) if inner is not None else {route.path}
    return found


def test_admin_routes_are_only_for_admins(app, people, session_factory) -> None:
    """Agents, supervisors and managers get 403 on every admin page and API call, reads and
    writes alike, and change nothing; the admin gets each page and each change, and every
    change leaves exactly one audit row."""
    covered = {path for path in PAGES + READS} | {path for path, _, _ in writes(people)}
    assert len(paths(admin_routes.router)) == len(covered)  # new admin routes join the matrix
    d = people.desk
    pages = [p.format(agent=d.l1.id) for p in PAGES]
    others = [sign_in(app, person) for person in (d.l1, d.supervisor, people.manager)]
    before = state(session_factory)  # signed in (audited): from here on nothing may change
    for person, c in zip((d.l1, d.supervisor, people.manager), others):
        for path in pages + READS:
            assert c.get(path).status_code == 403, (person.role, path)
        for path, body, _ in writes(people):
            response = c.post(path, json=body)
            assert response.status_code == 403, (person.role, path)
            assert response.json()["error"]["code"] == "permission_denied"
    assert state(session_factory) == before
    admin = sign_in(app, people.admin)
    for path in pages + READS:
        assert admin.get(path).status_code == 200, path
    for path, body, status in writes(people):
        audits = audit_count(session_factory)
        response = admin.post(path, json=body)
        assert response.status_code == status, (path, response.text)
        assert audit_count(session_factory) == audits + 1, path


def test_signed_out_is_sent_to_sign_in_or_401(client, people) -> None:
    page = client.get("/admin/sla", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
    assert client.get("/api/v1/admin/sla-policies").status_code == 401
    assert client.post("/api/v1/admin/business-hours", json={"spec": ""}).status_code == 401


@pytest.mark.parametrize("path, body", [
    ("/api/v1/admin/agents", {"login": "x y", "display_name": "A", "password": NEW_PASSWORD}),
    ("/api/v1/admin/agents", {"login": "short.pw", "display_name": "A", "password": "123456789"}),
    ("/api/v1/admin/agents", {"login": "no.name", "password": NEW_PASSWORD}),
    ("/api/v1/admin/agents", {"login": "bad.team", "display_name": "A", "team_id": 999_999,
                              "password": NEW_PASSWORD}),
    ("/api/v1/admin/agents/{agent}", {"role": "root"}),
    ("/api/v1/admin/agents/{agent}", {"max_open_tickets": 0}),
    ("/api/v1/admin/agents/{agent}", {"availability": "busy"}),
    ("/api/v1/admin/agents/{agent}", {"team_id": 999_999}),
    ("/api/v1/admin/agents/{agent}/password", {"password": "short"}),
    ("/api/v1/admin/teams", {"code": "x", "name_zh": "x", "name_en": "x", "tier": 1}),
    ("/api/v1/admin/teams", {"code": "ok_code", "name_zh": "x", "name_en": "x", "tier": 4}),
    ("/api/v1/admin/teams/{team}", {"categories": ["shoes"]}),
    ("/api/v1/admin/teams/{team}", {"categories": ["*", "refund"]}),
    ("/api/v1/admin/sla-policies/urgent/vip", {"first_response_minutes": 0,
                                               "next_response_minutes": 10,
                                               "resolution_minutes": 60}),
    ("/api/v1/admin/sla-policies/urgent/vip", {"first_response_minutes": 90,
                                               "next_response_minutes": 10,
                                               "resolution_minutes": 60}),
    ("/api/v1/admin/sla-policies/asap/vip", {"first_response_minutes": 10,
                                             "next_response_minutes": 10,
                                             "resolution_minutes": 60}),
    ("/api/v1/admin/business-hours", {"spec": "weekdays 9 to 5"}),
    ("/api/v1/admin/business-hours", {"spec": "mon-fri 18:00-09:00"}),
    ("/api/v1/admin/canned-replies", {"key": "coupon", "title_zh": "券", "title_en": "Coupon",
                                      "body_zh": "{coupon_code}", "body_en": "Coupon"}),
    ("/api/v1/admin/canned-replies", {"key": "Bad Key", "title_zh": "券", "title_en": "C",
                                      "body_zh": "x", "body_en": "x"}),
])
def test_bad_input_is_422_and_changes_nothing(app, people, session_factory, path, body) -> None:
    admin = sign_in(app, people.admin)
    before = state(session_factory)
    response = admin.post(path.format(agent=people.desk.l1.id, team=people.desk.logistics.id),
                          json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_input"
    assert state(session_factory) == before


def test_refusals_with_their_own_status(app, people, session_factory) -> None:
    admin = sign_in(app, people.admin)
    before = state(session_factory)
    own = admin.post(f"/api/v1/admin/agents/{people.admin.id}/deactivate")
    assert own.status_code == 409 and own.json()["error"]["code"] == "own_account"
    demote = admin.post(f"/api/v1/admin/agents/{people.admin.id}", json={"role": "agent"})
    assert demote.status_code == 409
    taken = admin.post("/api/v1/admin/agents", json={
        "login": people.desk.l1.login, "display_name": "Twin", "password": NEW_PASSWORD})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "login_taken"
    assert admin.post("/api/v1/admin/agents/999999", json={"role": "agent"}).status_code == 404
    assert admin.get("/admin/agents/999999").status_code == 404
    assert admin.post("/api/v1/admin/canned-replies/nothing/delete").status_code == 404
    assert state(session_factory) == before


def test_a_manager_cannot_change_settings_even_with_a_form(app, people, session_factory) -> None:
    manager = sign_in(app, people.manager)
    token = manager.headers.pop("X-CSRF-Token")
    before = state(session_factory)
    response = manager.post("/api/v1/admin/sla-policies/normal/regular", follow_redirects=False,
                            data={"csrf_token": token, "first_response_minutes": "5",
                                  "next_response_minutes": "5", "resolution_minutes": "5"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert state(session_factory) == before


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_forms_post_and_come_back_without_scripts_and_with_htmx(app, people,
                                                               session_factory) -> None:
    admin = sign_in(app, people.admin)
    page = admin.get("/admin/agents")
    assert 'action="/api/v1/admin/agents"' in page.text and 'hx-select="#admin-main"' in page.text
    token = csrf_of(page.text)
    admin.headers.pop("X-CSRF-Token")  # the form carries its token itself
    created = admin.post("/api/v1/admin/agents", follow_redirects=False, data={
        "csrf_token": token, "login": "form.hire", "display_name": "Form Hire", "first_name": "",
        "role": "agent", "team_id": str(people.desk.frontline.id), "language": "en",
        "max_open_tickets": "12", "password": NEW_PASSWORD})
    assert created.status_code == 303, created.text
    with session_factory() as s:
        hire = s.scalar(select(Agent).where(Agent.login == "form.hire"))
        assert (hire.first_name, hire.team_id, hire.max_open_tickets) == (
            "Form Hire", people.desk.frontline.id, 12)
    assert created.headers["location"] == f"/admin/agents/{hire.id}"
    assert "Form Hire" in admin.get(created.headers["location"]).text
    # the team select's empty option takes the agent out of any team; htmx gets the 303 too
    moved = admin.post(f"/api/v1/admin/agents/{hire.id}", follow_redirects=False,
                       headers={"HX-Request": "true"}, data={
                           "csrf_token": token, "display_name": "Form Hire",
                           "first_name": "Hire", "role": "agent", "team_id": "",
                           "language": "en", "max_open_tickets": "12",
                           "availability": "offline"})
    assert moved.status_code == 303 and moved.headers["location"] == f"/admin/agents/{hire.id}"
    with session_factory() as s:
        assert (s.get(Agent, hire.id).team_id, s.get(Agent, hire.id).first_name) == (None, "Hire")
    # team categories as checkboxes: the hidden empty value marks the list as sent
    serves_none = admin.post(f"/api/v1/admin/teams/{people.desk.logistics.id}",
                             follow_redirects=False, data={
                                 "csrf_token": token, "name_zh": "物流",
                                 "name_en": "Logistics", "tier": "2", "categories": ""})
    assert serves_none.status_code == 303
    two = admin.post(f"/api/v1/admin/teams/{people.desk.logistics.id}", follow_redirects=False,
                     data={"csrf_token": token, "tier": "2",
                           "categories": ["", "logistics", "quality"]})
    assert two.status_code == 303
    with session_factory() as s:
        assert s.get(Team, people.desk.logistics.id).categories == ["logistics", "quality"]
    # a canned reply hidden with its checkbox unticked (the hidden "false" stays)
    hidden = admin.post("/api/v1/admin/canned-replies", follow_redirects=False, data={
        "csrf_token": token, "key": "closing", "title_zh": "结束语", "title_en": "Closing",
        "body_zh": "再见", "body_en": "Bye", "active": "false"})
    assert hidden.status_code == 303 and hidden.headers["location"] == "/admin/canned-replies"
    with session_factory() as s:
        assert s.scalar(select(CannedReplyRow.active).where(CannedReplyRow.key == "closing")) \
            is False
    # a refused form change: the error body, whose message the desk's script shows as a toast
    bad = {"csrf_token": token, "spec": "whenever"}
    refused = admin.post("/api/v1/admin/business-hours", data=bad, headers={"HX-Request": "true"})
    assert refused.status_code == 422 and "mon-fri 09:00-18:00" in refused.json()["error"][
        "message"]
    assert admin.post("/api/v1/admin/business-hours", data={**bad, "csrf_token": "forged"}
                      ).status_code == 403


def test_deactivating_signs_the_agent_out_and_keeps_them_out(app, people,
                                                             session_factory) -> None:
    agent = sign_in(app, people.desk.l2)
    admin = sign_in(app, people.admin)
    response = admin.post(f"/api/v1/admin/agents/{people.desk.l2.id}/deactivate")
    assert response.status_code == 200 and response.json()["active"] is False
    assert agent.get("/api/v1/me").status_code == 401
    refused = agent.post("/api/v1/session", json={"login": people.desk.l2.login,
                                                  "password": PASSWORD})
    assert refused.status_code == 401
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(DeskSession).where(
            DeskSession.agent_id == people.desk.l2.id, DeskSession.revoked_at.is_(None))) == 0
    admin.post(f"/api/v1/admin/agents/{people.desk.l2.id}/reactivate")
    assert sign_in(app, people.desk.l2).get("/api/v1/me").status_code == 200


def test_password_reset_by_the_admin(app, people, session_factory) -> None:
    agent = sign_in(app, people.desk.l1)
    admin = sign_in(app, people.admin)
    assert admin.post(f"/api/v1/admin/agents/{people.desk.l1.id}/password",
                      json={"password": NEW_PASSWORD}).status_code == 200
    assert agent.get("/api/v1/me").status_code == 401
    with session_factory() as s:
        assert verify_password(NEW_PASSWORD, s.get(Agent, people.desk.l1.id).password_hash)
        [entry] = s.scalars(select(AuditLog).where(AuditLog.action == directory.PASSWORD_RESET))
    assert NEW_PASSWORD not in str(entry.details) and entry.ip == "testclient"


def test_an_sla_change_shows_on_the_audit_page(app, people, session_factory) -> None:
    admin = sign_in(app, people.admin)
    changed = admin.post("/api/v1/admin/sla-policies/high/regular", json={
        "first_response_minutes": 240, "next_response_minutes": 120,
        "resolution_minutes": 1440})
    assert changed.status_code == 200 and changed.json()["custom"] is True
    sla_page = admin.get("/admin/sla").text
    assert 'value="240"' in sla_page
    page = admin.get("/admin/audit?action=admin.sla").text
    assert policies.SLA_POLICY_CHANGED in page and "high/regular" in page
    assert "&#34;first_response_minutes&#34;: 240" in page and "Root" in page
    assert "desk.signed_in" not in page  # filtered out


def test_audit_filters_paging_and_order(app, people, session_factory, clock) -> None:
    for minutes in (30, 60, 90):  # one change a day (a session lasts 12 hours)
        admin = sign_in(app, people.admin)
        admin.post("/api/v1/admin/sla-policies/low/vip", json={
            "first_response_minutes": minutes, "next_response_minutes": minutes,
            "resolution_minutes": 600})
        clock.advance(days=1)
    admin = sign_in(app, people.admin)
    admin.post(f"/api/v1/admin/agents/{people.desk.l1.id}", json={"max_open_tickets": 3})
    api = "/api/v1/admin/audit"
    admin_changes = admin.get(api, params={"action": "admin."}).json()
    assert admin_changes["total"] == 4
    assert [r["action"] for r in admin_changes["rows"]] == [
        directory.AGENT_UPDATED] + [policies.SLA_POLICY_CHANGED] * 3  # newest first
    assert admin_changes["rows"][0]["actor_name"] == "Root"
    by_target = admin.get(api, params={"target_type": "agent",
                                       "target_id": str(people.desk.l1.id)}).json()
    assert [r["action"] for r in by_target["rows"]] == [directory.AGENT_UPDATED]
    zone = app.state.desk.settings.timezone
    day = local_time.local(clock.now - timedelta(days=2), zone).date().isoformat()
    one_day = admin.get(api, params={"action": "admin.sla", "since": day, "until": day}).json()
    assert one_day["total"] == 1
    mine = admin.get(api, params={"actor_id": people.admin.id, "limit": 2}).json()
    assert mine["total"] >= 5 and len(mine["rows"]) == 2
    nobody = admin.get(api, params={"actor_id": people.desk.l3.id, "action": "admin."}).json()
    assert nobody["total"] == 0
    assert admin.get(api, params={"since": "yesterday"}).status_code == 422
    assert admin.get("/admin/audit", params={"since": "31/12"}).status_code == 422
    page = admin.get("/admin/audit", params={"action": "admin.", "actor_id": "", "since": "",
                                             "until": ""})
    assert page.status_code == 200 and page.text.count('data-action="admin.') == 4
    assert "第 1–4 条，共 4 条" in page.text


def visible_keys(page: str) -> list[str]:
    """UI keys shown as themselves: a word missing from the text packs."""
    text = re.sub(r"<[^>]+>", " ", page)
    return re.findall(r"\b(?:admin|board|availability|tier|category|priority)\.[a-z_.]+", text)


def test_pages_speak_both_languages_and_have_no_inline_script_or_style(app, people) -> None:
    admin = sign_in(app, people.admin)
    for language, word in (("zh", "工作时间"), ("en", "Business hours")):
        admin.post("/api/v1/me/language", json={"language": language})
        for path in PAGES[:-1]:  # the audit page shows action names, which look like keys
            page = admin.get(path.format(agent=people.desk.l1.id)).text
            assert "style=" not in page and "<script>" not in page and "onclick" not in page
            assert visible_keys(page) == [], (path, visible_keys(page))
        assert word in admin.get("/admin").text


def test_openapi_documents_the_admin_api(client) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    create = spec["paths"]["/api/v1/admin/agents"]["post"]
    assert set(create["requestBody"]["content"]) == {"application/json",
                                                    "application/x-www-form-urlencoded"}
    assert {"201", "401", "403", "409", "422"} <= set(create["responses"])
    assert "get" in spec["paths"]["/api/v1/admin/audit"]
