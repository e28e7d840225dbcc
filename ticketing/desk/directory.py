"""Who works at the desk, as admins set it up: agents and teams (rules §SEC-5, §SEC-6).

Every change is one audit row in the change's own transaction (``admin.*``, the admin as
actor, what changed from → to), and is checked completely before anything is written, so a
refused change leaves no trace. A change that changes nothing writes nothing. Passwords are
never in a detail, not even hashed.

Deactivating an agent signs them out everywhere and takes them out of dispatch, and nothing
else: the tickets they own stay theirs (首问负责制) until a supervisor transfers them, and the
audit row says how many. An admin may not deactivate or demote themself, so the desk always
keeps the admin who is making changes.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ticketing.core import audit
from ticketing.core.clock import utcnow
from ticketing.core.errors import Conflict, NotFound, ValidationError
from ticketing.core.i18n import Text
from ticketing.core.models import Agent, Availability, Category, Role, Team, Ticket, Tier
from ticketing.core.passwords import hash_password
from ticketing.desk import accounts, lifecycle, ownership

AGENT_CREATED = "admin.agent_created"
AGENT_UPDATED = "admin.agent_updated"
AGENT_DEACTIVATED = "admin.agent_deactivated"
AGENT_REACTIVATED = "admin.agent_reactivated"
PASSWORD_RESET = "admin.password_reset"
TEAM_CREATED = "admin.team_created"
TEAM_UPDATED = "admin.team_updated"

MIN_PASSWORD = 10
MAX_PASSWORD = 256
MAX_OPEN_TICKETS = 200
ALL_CATEGORIES = "*"  # what routing.serves reads as "every category"
LANGUAGES = ("zh", "en")
_LOGIN = re.compile(r"^[a-z0-9][a-z0-9._@-]{2,63}$")
_TEAM_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,31}$")


# --- errors ---------------------------------------------------------------------------------------
class InvalidField(ValidationError):
    """A field of an admin's change that is not allowed; the message names it and says why."""

    code = "invalid_input"

    def __init__(self, field: str, why: Text | None = None, **context: object) -> None:
        super().__init__(f"invalid {field}", field=field, **context)
        self.field, self.why = field, why

    def text(self, language: str = "en") -> str:
        head = CHECK.get(language, field=self.field)
        return f"{head} {self.why.get(language)}" if self.why is not None else head


CHECK = Text("请检查：{field}。", "Please check: {field}.")
WHY_PASSWORD = Text(f"密码至少 {MIN_PASSWORD} 个字符。",
                    f"A password needs at least {MIN_PASSWORD} characters.")
WHY_LOGIN = Text("账号为 3–64 个小写字母、数字或 . _ @ -。",
                 "A login is 3–64 lower-case letters, digits or . _ @ -.")
WHY_CODE = Text("代码为 2–32 个小写字母、数字、_ 或 -。",
                "A code is 2–32 lower-case letters, digits, _ or -.")
WHY_CATEGORIES = Text("类别须为工单类别之一，或 * 表示全部。",
                      "Categories are ticket categories, or * for all of them.")


class LoginTaken(Conflict):
    code = "login_taken"
    message_zh = "这个账号已被使用。"
    message_en = "That login is already taken."


class TeamCodeTaken(Conflict):
    code = "team_code_taken"
    message_zh = "这个团队代码已被使用。"
    message_en = "That team code is already taken."


class OwnAccount(Conflict):
    """An admin deactivating or demoting themself would leave nobody to undo it."""

    code = "own_account"
    message_zh = "不能停用自己的账号或取消自己的管理员角色，请由另一位管理员操作。"
    message_en = "You cannot deactivate or demote your own account; another admin must."


class TeamNotFound(NotFound):
    code = "team_not_found"
    message_zh = "没有找到该团队。"
    message_en = "Team not found."


class _Keep(enum.Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP  # an update's "leave this field as it is"


# --- checks ---------------------------------------------------------------------------------------
def _text(value: object, field: str, limit: int) -> str:
    text = " ".join(str(value or "").split())
    if not text or len(text) > limit:
        raise InvalidField(field)
    return text


def _role(value: Role | str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidField("role") from None


def _availability(value: Availability | str) -> Availability:
    try:
        return Availability(value)
    except ValueError:
        raise InvalidField("availability") from None


def _language(value: str) -> str:
    if value not in LANGUAGES:
        raise InvalidField("language")
    return value


def _max_open(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_OPEN_TICKETS:
        raise InvalidField("max_open_tickets")
    return value


def _team_id(session: Session, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or session.get(Team, value) is None:
        raise InvalidField("team_id")
    return value


def _password(value: str) -> str:
    if not isinstance(value, str) or not MIN_PASSWORD <= len(value) <= MAX_PASSWORD \
            or not value.strip():
        raise InvalidField("password", WHY_PASSWORD)
    return value


def _tier(value: object) -> int:
    try:
        return Tier(value).value
    except ValueError:
        raise InvalidField("tier") from None


def categories_of(values: Iterable[str]) -> list[str]:
    """Ticket categories in the enum's order, or ``["*"]`` for all; anything else refused."""
    wanted = {str(v).strip() for v in values if str(v).strip()}
    if ALL_CATEGORIES in wanted:
        if wanted != {ALL_CATEGORIES}:
            raise InvalidField("categories", WHY_CATEGORIES)
        return [ALL_CATEGORIES]
    known = {c.value for c in Category}
    if wanted - known:
        raise InvalidField("categories", WHY_CATEGORIES)
    return [c.value for c in Category if c.value in wanted]


def _changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {key: {"from": old[key], "to": value} for key, value in new.items()
            if old[key] != value}


# --- agents ---------------------------------------------------------------------------------------
def create_agent(
    session: Session, *, by_agent_id: int, login: str, display_name: str,
    first_name: str | None = None, role: Role | str = Role.AGENT, team_id: int | None = None,
    language: str = "zh", password: str, max_open_tickets: int = 20,
    ip: str | None = None, now: datetime | None = None,
) -> Agent:
    """A new agent who signs in with ``password`` (set by the admin, told to them in person).
    They start offline: dispatch sends them nothing until they go online."""
    login = str(login or "").strip()
    if not _LOGIN.match(login):
        raise InvalidField("login", WHY_LOGIN)
    name = _text(display_name, "display_name", 80)
    first = _text(first_name or name, "first_name", 40)
    wanted_role, lang = _role(role), _language(language)
    team, cap, secret = _team_id(session, team_id), _max_open(max_open_tickets), _password(password)
    if session.scalar(select(Agent.id).where(Agent.login == login)) is not None:
        raise LoginTaken(login=login)
    agent = Agent(login=login, display_name=name, first_name=first, role=wanted_role,
                  team_id=team, language=lang, max_open_tickets=cap,
                  availability=Availability.OFFLINE, password_hash=hash_password(secret),
                  active=True, created_at=now or utcnow())
    session.add(agent)
    session.flush()
    audit.by_agent(session, AGENT_CREATED, by_agent_id=by_agent_id, target_type="agent",
            target_id=agent.id, ip=ip, now=now, details={
                "login": login, "display_name": name, "first_name": first,
                "role": wanted_role.value, "team_id": team, "language": lang,
                "max_open_tickets": cap})
    return agent


def _agent_values(agent: Agent) -> dict[str, Any]:
    return {"display_name": agent.display_name, "first_name": agent.first_name,
            "role": agent.role.value, "team_id": agent.team_id, "language": agent.language,
            "max_open_tickets": agent.max_open_tickets,
            "availability": agent.availability.value}


def update_agent(
    session: Session, *, by_agent_id: int, agent_id: int,
    display_name: str | _Keep = KEEP, first_name: str | _Keep = KEEP,
    role: Role | str | _Keep = KEEP, team_id: int | None | _Keep = KEEP,
    language: str | _Keep = KEEP, max_open_tickets: int | _Keep = KEEP,
    availability: Availability | str | _Keep = KEEP,
    ip: str | None = None, now: datetime | None = None,
) -> Agent:
    """Change what is given (role, team, ticket cap, availability, names, language); audited
    as one ``admin.agent_updated`` with every field's from → to. Demoting oneself is refused."""
    agent = ownership.require_agent(session, agent_id)
    new: dict[str, Any] = {}
    if display_name is not KEEP:
        new["display_name"] = _text(display_name, "display_name", 80)
    if first_name is not KEEP:
        new["first_name"] = _text(first_name, "first_name", 40)
    if role is not KEEP:
        new["role"] = _role(role).value
    if team_id is not KEEP:
        new["team_id"] = _team_id(session, team_id)
    if language is not KEEP:
        new["language"] = _language(language)
    if max_open_tickets is not KEEP:
        new["max_open_tickets"] = _max_open(max_open_tickets)
    if availability is not KEEP:
        new["availability"] = _availability(availability).value
    changed = _changes(_agent_values(agent), new)
    if not changed:
        return agent
    if agent.id == by_agent_id and "role" in changed and agent.role is Role.ADMIN:
        raise OwnAccount(agent_id=agent.id)
    for key, change in changed.items():
        value = change["to"]
        if key == "role":
            value = Role(value)
        elif key == "availability":
            value = Availability(value)
        setattr(agent, key, value)
    session.flush()
    if "team_id" in changed:
        session.expire(agent, ["team"])  # the tier comes from the team: read the new one
    audit.by_agent(session, AGENT_UPDATED, by_agent_id=by_agent_id, target_type="agent",
            target_id=agent.id, ip=ip, now=now, details={"login": agent.login, **changed})
    return agent


def owned_live_tickets(session: Session, agent_id: int) -> int:
    return int(session.scalar(select(func.count()).select_from(Ticket).where(
        Ticket.owner_id == agent_id, Ticket.state.in_(lifecycle.ACTIVE_STATES))) or 0)


def set_active(session: Session, *, by_agent_id: int, agent_id: int, active: bool,
               ip: str | None = None, now: datetime | None = None) -> Agent:
    """Deactivate (signed out everywhere, offline, no sign-in, no dispatch; owned tickets stay
    owned) or reactivate (may sign in again; offline until they choose). Audited; the same
    state again changes nothing."""
    now = now or utcnow()
    agent = ownership.require_agent(session, agent_id)
    if agent.active is active:
        return agent
    if not active and agent.id == by_agent_id:
        raise OwnAccount(agent_id=agent.id)
    details: dict[str, object] = {"login": agent.login}
    if active:
        agent.active = True
        action = AGENT_REACTIVATED
    else:
        agent.active = False
        details["availability"] = {"from": agent.availability.value,
                                   "to": Availability.OFFLINE.value}
        agent.availability = Availability.OFFLINE
        details["sessions_ended"] = accounts.end_sessions_of(session, agent_id=agent.id, now=now)
        details["owned_tickets_kept"] = owned_live_tickets(session, agent.id)
        details["note"] = "owned tickets stay with the agent until a supervisor transfers them"
        action = AGENT_DEACTIVATED
    session.flush()
    audit.by_agent(session, action, by_agent_id=by_agent_id, target_type="agent", target_id=agent.id,
            ip=ip, now=now, details=details)
    return agent


def reset_password(session: Session, *, by_agent_id: int, agent_id: int, password: str,
                   ip: str | None = None, now: datetime | None = None) -> Agent:
    """Set the password the admin chose; the agent is signed out everywhere and a sign-in
    lockout is lifted (they will use the new password). The detail holds no password."""
    now = now or utcnow()
    secret = _password(password)
    agent = ownership.require_agent(session, agent_id)
    was_locked = agent.locked_until is not None
    agent.password_hash = hash_password(secret)
    agent.failed_logins, agent.locked_until = 0, None
    ended = accounts.end_sessions_of(session, agent_id=agent.id, now=now)
    session.flush()
    audit.by_agent(session, PASSWORD_RESET, by_agent_id=by_agent_id, target_type="agent",
            target_id=agent.id, ip=ip, now=now,
            details={"login": agent.login, "sessions_ended": ended, "unlocked": was_locked})
    return agent


# --- teams ----------------------------------------------------------------------------------------
def require_team(session: Session, team_id: int) -> Team:
    team = session.get(Team, team_id)
    if team is None:
        raise TeamNotFound(team_id=team_id)
    return team


def create_team(session: Session, *, by_agent_id: int, code: str, name_zh: str, name_en: str,
                tier: int, categories: Iterable[str], ip: str | None = None,
                now: datetime | None = None) -> Team:
    """A team serving ``categories`` (or ``*``) at ``tier`` (1–3); dispatch and the queues
    follow it at once."""
    code = str(code or "").strip()
    if not _TEAM_CODE.match(code):
        raise InvalidField("code", WHY_CODE)
    values = {"name_zh": _text(name_zh, "name_zh", 80), "name_en": _text(name_en, "name_en", 80),
              "tier": _tier(tier), "categories": categories_of(categories)}
    if session.scalar(select(Team.id).where(Team.code == code)) is not None:
        raise TeamCodeTaken(code=code)
    team = Team(code=code, **values)
    session.add(team)
    session.flush()
    audit.by_agent(session, TEAM_CREATED, by_agent_id=by_agent_id, target_type="team",
            target_id=team.id, ip=ip, now=now, details={"code": code, **values})
    return team


def update_team(session: Session, *, by_agent_id: int, team_id: int,
                name_zh: str | _Keep = KEEP, name_en: str | _Keep = KEEP,
                tier: int | _Keep = KEEP, categories: Iterable[str] | _Keep = KEEP,
                ip: str | None = None, now: datetime | None = None) -> Team:
    """Rename a team, move it to another tier or change what it serves; one audit row."""
    team = require_team(session, team_id)
    new: dict[str, Any] = {}
    if name_zh is not KEEP:
        new["name_zh"] = _text(name_zh, "name_zh", 80)
    if name_en is not KEEP:
        new["name_en"] = _text(name_en, "name_en", 80)
    if tier is not KEEP:
        new["tier"] = _tier(tier)
    if categories is not KEEP:
        new["categories"] = categories_of(categories)
    old = {"name_zh": team.name_zh, "name_en": team.name_en, "tier": team.tier,
           "categories": list(team.categories or [])}
    changed = _changes(old, new)
    if not changed:
        return team
    for key, change in changed.items():
        setattr(team, key, change["to"])
    session.flush()
    audit.by_agent(session, TEAM_UPDATED, by_agent_id=by_agent_id, target_type="team",
            target_id=team.id, ip=ip, now=now, details={"code": team.code, **changed})
    return team
