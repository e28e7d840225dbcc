"""The people side: teams with a tier and the categories they serve, and agents."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ticketing.core.clock import utcnow
from ticketing.core.models.base import Base, enum_column


class Tier(int, enum.Enum):
    L1 = 1  # frontline
    L2 = 2  # specialist teams and CS supervisor
    L3 = 3  # operations


class Role(str, enum.Enum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    MANAGER = "manager"
    ADMIN = "admin"


class Availability(str, enum.Enum):
    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name_zh: Mapped[str] = mapped_column(String(80))
    name_en: Mapped[str] = mapped_column(String(80))
    tier: Mapped[int] = mapped_column(Integer)  # Tier value
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)

    agents: Mapped[list[Agent]] = relationship(back_populates="team")


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(80))
    first_name: Mapped[str] = mapped_column(String(40))  # what customers see
    role: Mapped[Role] = mapped_column(enum_column(Role), default=Role.AGENT)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), index=True)
    availability: Mapped[Availability] = mapped_column(
        enum_column(Availability), default=Availability.OFFLINE
    )
    max_open_tickets: Mapped[int] = mapped_column(Integer, default=20)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8), default="zh")  # the desk UI's language
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())  # deactivated agents cannot sign in

    team: Mapped[Team | None] = relationship(back_populates="agents")

    @property
    def tier(self) -> int:
        return self.team.tier if self.team is not None else Tier.L1.value
