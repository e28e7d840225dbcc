"""The desk process's uvicorn options: behind the reverse proxy of docs/deploy.md the sign-in
lockout by address must see each person's address, not the proxy's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from tests.ticketing.web.conftest import PASSWORD, People
from ticketing.core.models import AuditLog
from ticketing.core.settings import load_settings
from ticketing.desk import accounts
from ticketing.web.__main__ import server_options

PROXY = ("127.0.0.1", 40000)  # nginx on the desk's machine, the default trusted address


def _served(app: FastAPI, tmp_path: Path, proxies: str | None = None) -> Any:
    """The desk app as uvicorn serves it with the desk's own options."""
    env = {"KEFU_VAR_DIR": str(tmp_path), "KEFU_PII_KEY": ""}
    if proxies is not None:
        env["KEFU_DESK_TRUSTED_PROXIES"] = proxies
    config = uvicorn.Config(app, **server_options(load_settings(env)))
    config.load()
    return config.loaded_app


def _sign_in(client: TestClient, login: str, password: str, forwarded: str) -> int:
    return client.post("/api/v1/session", json={"login": login, "password": password},
                       headers={"X-Forwarded-For": forwarded}).status_code


def test_the_options_trust_forwarded_addresses_from_the_configured_proxies(
        tmp_path: Path) -> None:
    default = server_options(load_settings({"KEFU_VAR_DIR": str(tmp_path), "KEFU_PII_KEY": ""}))
    assert default["proxy_headers"] is True and default["forwarded_allow_ips"] == "127.0.0.1"
    chosen = server_options(load_settings({"KEFU_VAR_DIR": str(tmp_path), "KEFU_PII_KEY": "",
                                           "KEFU_DESK_TRUSTED_PROXIES": "10.0.0.2,10.0.0.3"}))
    assert chosen["proxy_headers"] is True and chosen["forwarded_allow_ips"] == "10.0.0.2,10.0.0.3"


def test_behind_the_proxy_a_guesser_locks_out_only_their_own_address(
        app: FastAPI, people: People, session_factory: Any, tmp_path: Path) -> None:
    served = _served(app, tmp_path)
    assert isinstance(served, ProxyHeadersMiddleware)
    proxy = TestClient(served, base_url="http://desk.test", client=PROXY)
    for n in range(5):  # a different made-up login each time: only the address can lock
        assert _sign_in(proxy, f"guess{n}", "bad", "203.0.113.9") == 401
    login = people.desk.l1.login
    assert _sign_in(proxy, login, PASSWORD, "198.51.100.7") == 200
    assert _sign_in(proxy, login, PASSWORD, "203.0.113.9") == 429
    with session_factory() as s:
        signed_in = s.scalars(select(AuditLog.ip).where(
            AuditLog.action == accounts.SIGNED_IN)).all()
    assert signed_in == ["198.51.100.7"]


def test_a_forged_forwarded_address_from_anyone_else_is_ignored(app: FastAPI, people: People,
                                                              tmp_path: Path) -> None:
    served = _served(app, tmp_path, proxies="10.0.0.2")
    direct = TestClient(served, base_url="http://desk.test", client=("192.0.2.50", 5000))
    for n in range(5):  # a new forged address each try: the real one still locks
        assert _sign_in(direct, f"guess{n}", "bad", f"198.51.100.{n + 10}") == 401
    assert _sign_in(direct, people.desk.l1.login, PASSWORD, "198.51.100.99") == 429
    via_proxy = TestClient(served, base_url="http://desk.test", client=("10.0.0.2", 40000))
    assert _sign_in(via_proxy, people.desk.l1.login, PASSWORD, "198.51.100.7") == 200
