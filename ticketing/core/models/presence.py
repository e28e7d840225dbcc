"""Who has a ticket open in the desk right now (the collision hint), when Redis is not there.

One row per open ticket page (an SSE connection), refreshed every few seconds while it stays
open; a row not refreshed for half a minute no longer counts. With Redis the same lives in a
sorted set per ticket instead, and this table stays empty.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ticketing.core.models.base import Base


class TicketViewer(Base):
    __tablename__ = "ticket_viewers"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), primary_key=True)
    connection: Mapped[str] = mapped_column(String(32), primary_key=True)  # one open page
    seen_at: Mapped[datetime] = mapped_column(index=True)
