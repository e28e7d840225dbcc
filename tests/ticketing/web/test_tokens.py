"""The API-token command line: create (secret shown once, works at the API), list, revoke."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient

from ticketing.web import tokens


def test_create_list_and_revoke_a_token(app, people, session_factory) -> None:
    out = io.StringIO()
    assert tokens.run(["create", "--login", people.desk.l1.login, "--name", "report",
                       "--scope", "desk:read"], session_factory, out) == 0
    secret = out.getvalue().splitlines()[1]
    c = TestClient(app, base_url="http://desk.test")
    assert c.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).json()["id"] == \
        people.desk.l1.id
    listed = io.StringIO()
    tokens.run(["list"], session_factory, listed)
    assert "report" in listed.getvalue() and secret not in listed.getvalue()
    token_id = listed.getvalue().split("\t")[0]
    assert tokens.run(["revoke", token_id, "--by", people.admin.login], session_factory,
                      io.StringIO()) == 0
    assert c.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_unknown_login_is_an_error_and_creates_nothing(session_factory, people) -> None:
    out = io.StringIO()
    assert tokens.run(["create", "--login", "nobody", "--name", "x", "--scope", "desk:read"],
                      session_factory, out) == 2
    assert out.getvalue().startswith("error:")
    listed = io.StringIO()
    tokens.run(["list"], session_factory, listed)
    assert listed.getvalue() == ""
