"""Admins' changes to agents and teams: checked whole, audited once, never locking the desk out
(rules §SEC-5, §SEC-6)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.ticketing.desk_setup import NOW, build_desk, new_ticket, snapshot
from ticketing.core.errors import AuthenticationFailed, Conflict, NotFound, ValidationError
from ticketing.core.models import (
    Agent, AuditLog, Availability, DeskSession, Role, Team, TicketState,
)
from ticketing.core.passwords import hash_password, verify_password
from ticketing.desk import accounts, directory, ownership, routing

PASSWORD = "a long secret 10+"


def audits(session, action: str | None = None) -> list[AuditLog]:
    stmt = select(AuditLog).order_by(AuditLog.id)
    if action is not None:
        stmt = stmt.where(AuditLog.action == action)
    return list(session.scalars(stmt))


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def desk(make):
    return build_desk(make)


@pytest.fixture
def admin(make):
    return make.agent(role=Role.ADMIN, name="Root")


def test_create_agent_hashes_the_password_and_audits_without_it(session, desk, admin) -> None:
    agent = directory.create_agent(
        session, by_agent_id=admin.id, login="new.agent", display_name="  New   Agent ",
        role="supervisor", team_id=desk.frontline.id, language="en", password=PASSWORD,
        max_open_tickets=8, ip="10.0.0.1", now=NOW)
    assert (agent.display_name, agent.first_name, agent.role, agent.team_id, agent.language,
            agent.max_open_tickets, agent.availability, agent.active) == (
        "New Agent", "New Agent", Role.SUPERVISOR, desk.frontline.id, "en", 8,
        Availability.OFFLINE, True)
    assert verify_password(PASSWORD, agent.password_hash)
    [entry] = audits(session, directory.AGENT_CREATED)
    assert (entry.actor_id, entry.target_type, entry.target_id, entry.ip) == (
        admin.id, "agent", str(agent.id), "10.0.0.1")
    assert entry.details["login"] == "new.agent" and entry.details["role"] == "supervisor"
    assert "password" not in str(entry.details) and agent.password_hash not in str(entry.details)
    assert accounts.sign_in(session, login="new.agent", password=PASSWORD, now=NOW).agent is agent


@pytest.mark.parametrize("field, changes", [
    ("password", {"password": "short"}),
    ("login", {"login": "Has Spaces"}),
    ("login", {"login": "ab"}),
    ("role", {"role": "owner"}),
    ("team_id", {"team_id": 999_999}),
    ("language", {"language": "fr"}),
    ("max_open_tickets", {"max_open_tickets": 0}),
    ("display_name", {"display_name": "   "}),
])
def test_bad_agent_input_is_refused_and_writes_nothing(session, desk, admin, field,
                                                      changes) -> None:
    before = snapshot(session), count(session, Agent)
    values = {"login": "fine.login", "display_name": "Fine", "password": PASSWORD, **changes}
    with pytest.raises(ValidationError) as refused:
        directory.create_agent(session, by_agent_id=admin.id, now=NOW, **values)
    assert refused.value.context["field"] == field
    assert field in refused.value.text("en") and field in refused.value.text("zh")
    assert (snapshot(session), count(session, Agent)) == before


def test_a_taken_login_is_a_conflict(session, desk, admin) -> None:
    with pytest.raises(directory.LoginTaken):
        directory.create_agent(session, by_agent_id=admin.id, login=desk.l1.login,
                               display_name="Twin", password=PASSWORD, now=NOW)
    assert audits(session) == []


def test_update_records_every_change_from_to_in_one_row(session, desk, admin) -> None:
    agent = directory.update_agent(
        session, by_agent_id=admin.id, agent_id=desk.l1.id, role="supervisor",
        team_id=desk.logistics.id, max_open_tickets=5, availability="away", now=NOW)
    assert (agent.role, agent.team_id, agent.tier, agent.max_open_tickets, agent.availability) == (
        Role.SUPERVISOR, desk.logistics.id, 2, 5, Availability.AWAY)
    [entry] = audits(session)
    assert entry.action == directory.AGENT_UPDATED and entry.target_id == str(desk.l1.id)
    assert entry.details["role"] == {"from": "agent", "to": "supervisor"}
    assert entry.details["team_id"] == {"from": desk.frontline.id, "to": desk.logistics.id}
    assert entry.details["availability"] == {"from": "online", "to": "away"}
    assert "language" not in entry.details  # only what changed
    # the same values again change nothing and record nothing
    directory.update_agent(session, by_agent_id=admin.id, agent_id=desk.l1.id, role="supervisor",
                           max_open_tickets=5, now=NOW)
    assert len(audits(session)) == 1
    # out of any team
    directory.update_agent(session, by_agent_id=admin.id, agent_id=desk.l1.id, team_id=None,
                           now=NOW)
    assert desk.l1.team_id is None and audits(session)[-1].details["team_id"]["to"] is None


def test_an_admin_cannot_demote_or_deactivate_themself(session, desk, admin) -> None:
    with pytest.raises(directory.OwnAccount):
        directory.update_agent(session, by_agent_id=admin.id, agent_id=admin.id, role="manager")
    with pytest.raises(directory.OwnAccount):
        directory.set_active(session, by_agent_id=admin.id, agent_id=admin.id, active=False)
    assert admin.role is Role.ADMIN and admin.active and audits(session) == []
    # other changes to oneself are fine
    directory.update_agent(session, by_agent_id=admin.id, agent_id=admin.id, language="en")
    assert admin.language == "en"


def test_deactivation_signs_out_keeps_tickets_and_stops_dispatch(session, make, desk,
                                                                admin) -> None:
    desk.l1.password_hash = hash_password(PASSWORD)
    accounts.sign_in(session, login=desk.l1.login, password=PASSWORD, now=NOW)
    _, secret = accounts.create_api_token(session, agent_id=desk.l1.id, name="script",
                                          scopes=["desk:read"], now=NOW)
    owned = new_ticket(session, make)
    ownership.claim(session, ticket_id=owned.id, agent_id=desk.l1.id, now=NOW)
    directory.set_active(session, by_agent_id=admin.id, agent_id=desk.l1.id, active=False,
                         now=NOW)
    assert not desk.l1.active and desk.l1.availability is Availability.OFFLINE
    assert session.scalar(select(func.count()).select_from(DeskSession).where(
        DeskSession.revoked_at.is_(None))) == 0
    assert owned.owner_id == desk.l1.id and owned.state is TicketState.OPEN
    entry = audits(session, directory.AGENT_DEACTIVATED)[0]
    assert entry.details["sessions_ended"] == 1 and entry.details["owned_tickets_kept"] == 1
    assert "stay" in entry.details["note"]
    # no sign-in (audited as a refusal), no token, no dispatch
    with pytest.raises(AuthenticationFailed):
        accounts.sign_in(session, login=desk.l1.login, password=PASSWORD, ip="1.2.3.4", now=NOW)
    refusal = audits(session, accounts.SIGNIN_REFUSED)[-1]
    assert refusal.details["why"] == "deactivated" and refusal.actor_id == desk.l1.id
    with pytest.raises(AuthenticationFailed):
        accounts.token_for(session, secret=secret, scope="desk:read", now=NOW)
    desk.l1b.availability = Availability.OFFLINE
    desk.l1.availability = Availability.ONLINE  # even if the row said online
    assert routing.pick_agent(session, tier=1, category="order",
                              supervisor_fallback=False) is None
    assert not routing.is_available(session, desk.l1)
    # deactivating twice records nothing more; reactivating lets them sign in again
    directory.set_active(session, by_agent_id=admin.id, agent_id=desk.l1.id, active=False)
    assert len(audits(session, directory.AGENT_DEACTIVATED)) == 1
    directory.set_active(session, by_agent_id=admin.id, agent_id=desk.l1.id, active=True,
                         now=NOW)
    assert len(audits(session, directory.AGENT_REACTIVATED)) == 1
    assert accounts.sign_in(session, login=desk.l1.login, password=PASSWORD,
                            now=NOW + timedelta(minutes=1)).agent is desk.l1


def test_a_deactivated_agents_live_session_is_refused(session, desk, admin) -> None:
    desk.l2.password_hash = hash_password(PASSWORD)
    started = accounts.sign_in(session, login=desk.l2.login, password=PASSWORD, now=NOW)
    desk.l2.active = False  # even a session the deactivation did not end
    session.flush()
    with pytest.raises(AuthenticationFailed):
        accounts.session_for(session, token=started.token, now=NOW)


def test_reset_password_ends_sessions_and_lifts_a_lockout(session, desk, admin) -> None:
    desk.l1.password_hash = hash_password(PASSWORD)
    accounts.sign_in(session, login=desk.l1.login, password=PASSWORD, now=NOW)
    desk.l1.locked_until = NOW + timedelta(minutes=10)
    with pytest.raises(ValidationError):
        directory.reset_password(session, by_agent_id=admin.id, agent_id=desk.l1.id,
                                 password="123456789")
    directory.reset_password(session, by_agent_id=admin.id, agent_id=desk.l1.id,
                             password="another long one", now=NOW)
    assert verify_password("another long one", desk.l1.password_hash)
    assert desk.l1.locked_until is None
    [entry] = audits(session, directory.PASSWORD_RESET)
    assert entry.details == {"login": desk.l1.login, "sessions_ended": 1, "unlocked": True}
    with pytest.raises(NotFound):
        directory.reset_password(session, by_agent_id=admin.id, agent_id=999_999,
                                 password="another long one")


def test_teams_create_and_update(session, desk, admin) -> None:
    team = directory.create_team(session, by_agent_id=admin.id, code="vip_care",
                                 name_zh="VIP 组", name_en="VIP care", tier=2,
                                 categories=["refund", "order", "refund"], now=NOW)
    assert (team.tier, team.categories) == (2, ["refund", "order"])  # the enum's order
    directory.update_team(session, by_agent_id=admin.id, team_id=team.id, tier=3,
                          categories=["*"], name_en="VIP care desk", now=NOW)
    assert (team.tier, team.categories, team.name_en) == (3, ["*"], "VIP care desk")
    created, updated = audits(session)
    assert (created.action, created.target_type, created.details["categories"]) == (
        directory.TEAM_CREATED, "team", ["refund", "order"])
    assert updated.details["tier"] == {"from": 2, "to": 3}
    assert updated.details["categories"] == {"from": ["refund", "order"], "to": ["*"]}
    directory.update_team(session, by_agent_id=admin.id, team_id=team.id, tier=3)
    assert len(audits(session)) == 2
    for bad in ({"tier": 4}, {"categories": ["*", "refund"]}, {"categories": ["shoes"]},
                {"name_zh": ""}):
        with pytest.raises(ValidationError):
            directory.update_team(session, by_agent_id=admin.id, team_id=team.id, **bad)
    with pytest.raises(Conflict):
        directory.create_team(session, by_agent_id=admin.id, code="vip_care", name_zh="x",
                              name_en="x", tier=1, categories=[])
    with pytest.raises(ValidationError):
        directory.create_team(session, by_agent_id=admin.id, code="Bad Code", name_zh="x",
                              name_en="x", tier=1, categories=[])
    with pytest.raises(directory.TeamNotFound):
        directory.update_team(session, by_agent_id=admin.id, team_id=999_999, tier=1)
    assert len(audits(session)) == 2 and count(session, Team) == 5
