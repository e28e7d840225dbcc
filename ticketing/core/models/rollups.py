"""The dashboard's day cells: a local day's ticket facts summed per owner and team.

A 30-day dashboard read every fact of the period four times over (this period, the one before,
by day, by agent), sorting each duration's ~80,000 values each time. A cell holds one day's
counts for one owner and team and its durations' values packed as bytes, so a period is a few
thousand cell rows whose values are concatenated and selected from, not sorted, in the reader
(:mod:`ticketing.reports.cells`). Cells are derived twice over (from the facts, which are
derived from the tickets) and are rebuilt by the reports job; a day whose facts changed since
its cells were built has a :class:`ReportMark` and is read from the facts until then.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from ticketing.core.clock import utcnow
from ticketing.core.models.base import Base


class ReportCell(Base):
    """One local day's tickets of one owner and team. Values are big-endian float64 seconds
    (``float8send``), unsorted; ``*_pending``: the due instants (epoch seconds) of clocks
    still running, so "breached" can be told at any later moment; ``categories``: each
    ticket's category as a big-endian int16, its place in ``Category`` (contact reasons)."""

    __tablename__ = "report_cells"
    __table_args__ = (Index("ix_report_cells_day", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[str] = mapped_column(String(10))
    owner_id: Mapped[int | None] = mapped_column(Integer)
    team_id: Mapped[int | None] = mapped_column(Integer)
    tickets: Mapped[int] = mapped_column(Integer, default=0)
    escalated: Mapped[int] = mapped_column(Integer, default=0)
    solved: Mapped[int] = mapped_column(Integer, default=0)
    reopened: Mapped[int] = mapped_column(Integer, default=0)
    handed_off: Mapped[int] = mapped_column(Integer, default=0)
    unanswered: Mapped[int] = mapped_column(Integer, default=0)
    sla_first_response_met: Mapped[int] = mapped_column(Integer, default=0)
    sla_first_response_breached: Mapped[int] = mapped_column(Integer, default=0)
    sla_first_response_pending: Mapped[bytes | None] = mapped_column(LargeBinary)
    sla_next_response_met: Mapped[int] = mapped_column(Integer, default=0)
    sla_next_response_breached: Mapped[int] = mapped_column(Integer, default=0)
    sla_next_response_pending: Mapped[bytes | None] = mapped_column(LargeBinary)
    sla_resolution_met: Mapped[int] = mapped_column(Integer, default=0)
    sla_resolution_breached: Mapped[int] = mapped_column(Integer, default=0)
    sla_resolution_pending: Mapped[bytes | None] = mapped_column(LargeBinary)
    first_response: Mapped[bytes | None] = mapped_column(LargeBinary)
    first_response_bh: Mapped[bytes | None] = mapped_column(LargeBinary)
    resolution_first: Mapped[bytes | None] = mapped_column(LargeBinary)
    resolution_first_bh: Mapped[bytes | None] = mapped_column(LargeBinary)
    resolution_last: Mapped[bytes | None] = mapped_column(LargeBinary)
    resolution_last_bh: Mapped[bytes | None] = mapped_column(LargeBinary)
    next_response: Mapped[bytes | None] = mapped_column(LargeBinary)
    next_response_bh: Mapped[bytes | None] = mapped_column(LargeBinary)
    categories: Mapped[bytes | None] = mapped_column(LargeBinary)  # int16 codes, one a ticket


class ReportDay(Base):
    """A local day whose cells are built (a day without tickets has a row and no cells)."""

    __tablename__ = "report_days"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    built_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReportMark(Base):
    """A ticket of ``day`` changed after the day's cells were built (written beside the fact,
    in the same transaction; append-only, so concurrent writers never wait on each other).
    The builder deletes exactly the marks it read before reading the facts."""

    __tablename__ = "report_marks"
    __table_args__ = (Index("ix_report_marks_day", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[str] = mapped_column(String(10))
