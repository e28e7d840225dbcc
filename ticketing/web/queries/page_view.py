"""Who reads a page, and the formatting every query of the ticket page shares.

Times are in the shop's zone (``core.local_time``), with the UTC instant alongside for machines
(``data-deadline``); labels are in the viewer's language (``web.texts``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from ticketing.core import local_time
from ticketing.core.clock import aware
from ticketing.core.models import Agent
from ticketing.core.pii import PiiCipher
from ticketing.web.queries.ticket_models import Moment
from ticketing.web.texts import ui


class View:
    """Who reads, in which language and zone: what every formatting step needs."""

    def __init__(self, session: Session, *, viewer: Agent, language: str, timezone: str,
                 cipher: PiiCipher, now: datetime) -> None:
        self.session, self.viewer, self.language = session, viewer, language
        self.timezone, self.cipher, self.now = timezone, cipher, now

    def moment(self, value: datetime | None) -> Moment | None:
        if value is None:
            return None
        return Moment(at=aware(value),
                      local=local_time.date_time(value, timezone=self.timezone))

    def label(self, group: str, value: str) -> str:
        return ui(f"ticket.{group}.{value}", self.language)


def enum_value(member: object) -> str:
    """An enum member's stored value (or the value itself, as rows may hold plain strings)."""
    return str(getattr(member, "value", member))
