"""The admin screen for API tokens (issue 14): admins only, the secret shown once and never
listed, changes through ``ticketing.desk.accounts`` audited as the CLI's with the admin as actor,
a refusal writes nothing and says why in the admin's language."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.ticketing.web.conftest import sign_in
from ticketing.core.models import ApiToken, AuditLog
from ticketing.desk import accounts, directory
from ticketing.web.routes import admin_tokens

CREATED, REVOKED = "desk.api_token_created", "desk.api_token_revoked"


def token_state(session_factory) -> tuple:
    """Everything a token change may write: the tokens and the audit log."""
    with session_factory() as s:
        tokens = tuple(s.execute(select(ApiToken.id, ApiToken.revoked_at)
                                 .order_by(ApiToken.id)).tuples())
        return tokens, s.scalar(select(func.count()).select_from(AuditLog))


def audits(session_factory, action: str) -> list[AuditLog]:
    with session_factory() as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.action == action)
                              .order_by(AuditLog.id)))


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def bearer(app, secret: str) -> TestClient:
    return TestClient(app, base_url="http://desk.test",
                      headers={"Authorization": f"Bearer {secret}"})


def test_only_admins_see_or_change_tokens(app, client, people, session_factory) -> None:
    """Agents, supervisors and managers get 403 everywhere and change nothing; signed out is
    the sign-in redirect on the page and 401 on the API, as on the other admin pages."""
    paths = {route.path for route in admin_tokens.router.routes}
    assert paths == {"/admin/tokens", "/api/v1/admin/tokens",
                     "/api/v1/admin/tokens/{token_id}/revoke"}  # a new route joins the matrix
    d = people.desk
    body = {"agent_id": d.l1.id, "name": "feed", "scopes": ["shop:read"]}
    others = [sign_in(app, p) for p in (d.l1, d.supervisor, people.manager)]
    before = token_state(session_factory)
    for c in others:
        assert c.get("/admin/tokens").status_code == 403
        assert c.get("/api/v1/admin/tokens").status_code == 403
        refused = c.post("/api/v1/admin/tokens", json=body)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "permission_denied"
        assert c.post("/api/v1/admin/tokens/1/revoke").status_code == 403
    assert token_state(session_factory) == before
    page = client.get("/admin/tokens", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
    assert client.get("/api/v1/admin/tokens").status_code == 401
    assert client.post("/api/v1/admin/tokens", json=body).status_code == 401
    admin = sign_in(app, people.admin)
    assert admin.get("/admin/tokens").status_code == 200
    assert admin.get("/api/v1/admin/tokens").json() == []


def test_a_token_made_on_the_page_works_once_shown_and_stops_when_revoked(
        app, people, session_factory) -> None:
    admin = sign_in(app, people.admin)
    page = admin.get("/admin/tokens").text
    assert 'href="/admin/tokens"' in page and 'action="/api/v1/admin/tokens"' in page
    assert 'value="shop:write"' in page and 'value="desk:read"' in page
    token = csrf_of(page)
    admin.headers.pop("X-CSRF-Token")  # the form carries its token itself
    made = admin.post("/api/v1/admin/tokens", follow_redirects=False, data={
        "csrf_token": token, "name": "shop feed", "agent_id": str(people.desk.l1.id),
        "scopes": ["shop:write"]})
    assert made.status_code == 200, made.text
    assert made.headers["cache-control"] == "no-store"
    secret = re.search(r"<code[^>]*data-secret>(kefu_[^<]+)</code>", made.text).group(1)
    assert "it will not be shown again" in made.text or "不会再次显示" in made.text
    with session_factory() as s:
        row = s.scalar(select(ApiToken))
        assert (row.agent_id, row.scopes, row.name) == (people.desk.l1.id, ["shop:write"],
                                                        "shop feed")
        assert row.token_hash == accounts.token_hash(secret)
    [entry] = audits(session_factory, CREATED)
    assert (entry.actor_id, entry.target_id) == (people.admin.id, str(row.id))
    assert secret not in str(entry.details)
    # shown once: the page and the list never again show it or its hash
    for shown in (admin.get("/admin/tokens").text, admin.get("/api/v1/admin/tokens").text):
        assert secret not in shown and row.token_hash not in shown and "shop feed" in shown
    # it works with its scope, is refused (403) without one, and records its use
    script = bearer(app, secret)
    assert script.post("/api/v1/shop/products", json={"rows": []}).status_code == 200
    assert script.get("/api/v1/shop/products/P-1").status_code == 403
    listed = admin.get("/api/v1/admin/tokens").json()
    assert [(t["state"], t["scopes"]) for t in listed] == [("active", ["shop:write"])]
    assert listed[0]["last_used_at"] is not None and "secret" not in listed[0]
    # revoked with the page's form: back to the page, one audit row, and the token is dead
    revoked = admin.post(f"/api/v1/admin/tokens/{row.id}/revoke", follow_redirects=False,
                         data={"csrf_token": token})
    assert revoked.status_code == 303 and revoked.headers["location"] == "/admin/tokens"
    assert script.post("/api/v1/shop/products", json={"rows": []}).status_code == 401
    [entry] = audits(session_factory, REVOKED)
    assert (entry.actor_id, entry.target_id) == (people.admin.id, str(row.id))
    assert len(audits(session_factory, CREATED)) == 1
    assert admin.get("/api/v1/admin/tokens").json()[0]["state"] == "revoked"


def test_json_create_returns_the_secret_once_with_read_scope(app, people,
                                                             session_factory) -> None:
    admin = sign_in(app, people.admin)
    made = admin.post("/api/v1/admin/tokens", json={
        "agent_id": people.admin.id, "name": "reader", "scopes": ["shop:read", "shop:read"]})
    assert made.status_code == 201, made.text
    created = made.json()
    assert created["scopes"] == ["shop:read"] and created["state"] == "active"
    reader = bearer(app, created["secret"])
    assert reader.get("/api/v1/shop/products/P-1").status_code == 404  # allowed, no such product
    assert reader.post("/api/v1/shop/products", json={"rows": []}).status_code == 403
    revoked = admin.post(f"/api/v1/admin/tokens/{created['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert reader.get("/api/v1/shop/products/P-1").status_code == 401


@pytest.mark.parametrize("change, status, code", [
    ({"scopes": []}, 422, "no_scope"),
    ({"scopes": None}, 422, "invalid_input"),
    ({"scopes": ["shop:write", "shop:admin"]}, 422, "unknown_scope"),
    ({"agent_id": 999_999}, 422, "unknown_agent"),
    ({"name": "  "}, 422, "invalid_input"),
])
def test_a_refused_creation_writes_nothing(app, people, session_factory, change, status,
                                           code) -> None:
    admin = sign_in(app, people.admin)
    before = token_state(session_factory)
    body = {"agent_id": people.desk.l1.id, "name": "feed", "scopes": ["shop:read"], **change}
    response = admin.post("/api/v1/admin/tokens", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert token_state(session_factory) == before


def test_refusals_speak_the_admins_language(app, people, session_factory) -> None:
    """A deactivated agent, no scope ticked on the form, a second revocation, an unknown token:
    each its own sentence, in Chinese or English as the admin chose, and nothing written."""
    admin = sign_in(app, people.admin)
    with session_factory.begin() as s:
        directory.set_active(s, by_agent_id=people.admin.id, agent_id=people.desk.l2.id,
                             active=False)
    made = admin.post("/api/v1/admin/tokens", json={
        "agent_id": people.desk.l1.id, "name": "x", "scopes": ["desk:read"]}).json()
    admin.post(f"/api/v1/admin/tokens/{made['id']}/revoke")
    for language, words in (("zh", ("已停用", "至少选择一个", "已经撤销", "没有找到这个令牌")),
                            ("en", ("deactivated", "at least one scope", "already revoked",
                                    "no such token"))):
        admin.post("/api/v1/me/language", json={"language": language})
        before = token_state(session_factory)
        inactive = admin.post("/api/v1/admin/tokens", json={
            "agent_id": people.desk.l2.id, "name": "x", "scopes": ["desk:read"]})
        unticked = admin.post("/api/v1/admin/tokens", headers={"HX-Request": "true"}, data={
            "csrf_token": admin.headers["X-CSRF-Token"], "name": "x",
            "agent_id": str(people.desk.l1.id)})
        again = admin.post(f"/api/v1/admin/tokens/{made['id']}/revoke")
        unknown = admin.post("/api/v1/admin/tokens/999999/revoke")
        answers = (inactive, unticked, again, unknown)
        assert [r.status_code for r in answers] == [422, 422, 409, 404]
        for response, word in zip(answers, words):
            assert word in response.json()["error"]["message"], (language, response.text)
        assert token_state(session_factory) == before
    assert len(audits(session_factory, REVOKED)) == 1


def test_csrf_is_required(app, people, session_factory) -> None:
    admin = sign_in(app, people.admin)
    made = admin.post("/api/v1/admin/tokens", json={
        "agent_id": people.desk.l1.id, "name": "x", "scopes": ["shop:read"]}).json()
    admin.headers.pop("X-CSRF-Token")
    before = token_state(session_factory)
    for data in ({}, {"csrf_token": "forged"}):
        create = admin.post("/api/v1/admin/tokens", data={
            **data, "name": "y", "agent_id": str(people.desk.l1.id), "scopes": "shop:read"})
        revoke = admin.post(f"/api/v1/admin/tokens/{made['id']}/revoke", data=data)
        assert (create.status_code, revoke.status_code) == (403, 403)
    assert admin.post("/api/v1/admin/tokens", json={
        "agent_id": people.desk.l1.id, "name": "y", "scopes": ["shop:read"]}).status_code == 403
    assert token_state(session_factory) == before


def test_the_page_speaks_both_languages(app, people) -> None:
    admin = sign_in(app, people.admin)
    admin.post("/api/v1/admin/tokens", json={
        "agent_id": people.desk.l1.id, "name": "feed", "scopes": ["shop:read"]})
    for language, words in (("zh", ("API 令牌", "权限范围", "有效", "撤销")),
                            ("en", ("API tokens", "Scopes", "Active", "Revoke"))):
        admin.post("/api/v1/me/language", json={"language": language})
        page = admin.get("/admin/tokens").text
        assert all(word in page for word in words), language
        text = re.sub(r"<[^>]+>", " ", page)
        assert re.findall(r"\badmin\.[a-z_.:]+", text) == []  # no key shown as itself
        assert "style=" not in page and "<script>" not in page and "onclick" not in page
