"""An agent's own settings: availability for the automatic dispatch, and the desk's language.

Availability (online / away / offline) decides whether :mod:`ticketing.desk.routing` hands an
agent new tickets; a change is audited (``desk.availability``), since it decides who gets work.
The language is the desk UI's (``zh`` or ``en``): the agent's own choice, not audited.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from ticketing.core import audit
from ticketing.core.clock import utcnow
from ticketing.core.errors import ValidationError
from ticketing.core.models import Agent, Availability
from ticketing.desk import ownership

AVAILABILITY_CHANGED = "desk.availability"
LANGUAGES = ("zh", "en")


def parse_availability(value: Availability | str | None) -> Availability:
    """``online`` | ``away`` | ``offline``; anything else is a ValidationError."""
    try:
        return Availability(value)
    except ValueError:
        raise ValidationError(
            f"availability must be one of {[a.value for a in Availability]}") from None


def set_availability(
    session: Session, *, agent_id: int, availability: Availability | str,
    ip: str | None = None, now: datetime | None = None,
) -> Agent:
    """Set the agent's availability; a real change is audited. Setting the same value again
    changes and records nothing."""
    wanted = parse_availability(availability)
    agent = ownership.require_agent(session, agent_id)
    previous = agent.availability
    if previous is wanted:
        return agent
    agent.availability = wanted
    audit.record(session, action=AVAILABILITY_CHANGED, actor_type="agent", actor_id=agent.id,
                 target_type="agent", target_id=agent.id, ip=ip, now=now or utcnow(),
                 details={"from": previous.value if previous else None, "to": wanted.value})
    session.flush()
    return agent


def set_language(session: Session, *, agent_id: int, language: str) -> Agent:
    """The language of the agent's desk screens: ``zh`` or ``en`` (else ValidationError)."""
    if language not in LANGUAGES:
        raise ValidationError(f"language must be one of {list(LANGUAGES)}")
    agent = ownership.require_agent(session, agent_id)
    agent.language = language
    session.flush()
    return agent
