"""A desk web app over the test database (SQLite and PostgreSQL), agents with passwords, and
HTTP clients signed in as each of them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import TEST_KEY
from tests.factories import Factory
from tests.ticketing.desk_setup import NOW, Desk, build_desk
from ticketing.core.models import Agent, Role
from ticketing.core.passwords import hash_password
from ticketing.core.pii import PiiCipher
from ticketing.core.settings import load_settings
from ticketing.web.app import create_app

PASSWORD = "correct horse 马"
PASSWORD_HASH = hash_password(PASSWORD)  # scrypt is slow on purpose: hash once


class Clock:
    """A clock the tests move by hand (lockout expiry, session expiry)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class People:
    desk: Desk
    manager: Agent
    admin: Agent


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def people(session_factory: sessionmaker[Session]) -> People:
    with session_factory.begin() as s:
        make = Factory(s, PiiCipher(TEST_KEY))
        desk = build_desk(make)
        manager = make.agent(role=Role.MANAGER, name="Boss")
        admin = make.agent(role=Role.ADMIN, name="Root")
        for agent in (desk.l1, desk.l1b, desk.l2, desk.supervisor, desk.l3, manager, admin):
            agent.password_hash = PASSWORD_HASH
        s.flush()
        s.expunge_all()
    return People(desk, manager, admin)


@pytest.fixture
def app(session_factory: sessionmaker[Session], clock: Clock, tmp_path):
    settings = load_settings({"KEFU_VAR_DIR": str(tmp_path), "KEFU_PII_KEY": ""})
    return create_app(settings=settings, session_factory=session_factory,
                      cipher=PiiCipher(TEST_KEY), clock=clock)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://desk.test") as c:
        yield c


def sign_in(app, agent: Agent) -> TestClient:
    """A new client signed in as ``agent``; its CSRF token is sent with every write."""
    c = TestClient(app, base_url="http://desk.test")
    response = c.post("/api/v1/session", json={"login": agent.login, "password": PASSWORD})
    assert response.status_code == 200, response.text
    c.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return c
