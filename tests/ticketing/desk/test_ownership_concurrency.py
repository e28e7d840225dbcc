"""Claim race on PostgreSQL: many agents, one ticket, real threads and sessions."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from ticketing.core import errors
from ticketing.desk import ownership
from ticketing.core.models import Role, Ticket, TicketEvent, TicketState
from tests.ticketing.desk_setup import NOW, new_ticket

AGENTS = 20


def test_twenty_simultaneous_claims_have_exactly_one_winner(pg_engine, session, session_factory,
                                                            make) -> None:
    team = make.team(code="frontline", tier=1)
    agents = [make.agent(team=team) for _ in range(AGENTS)]
    ticket = new_ticket(session, make)
    session.commit()

    barrier = threading.Barrier(AGENTS)
    outcomes: dict[int, str] = {}

    def attempt(agent_id: int) -> None:
        try:
            barrier.wait(timeout=10)
            with session_factory.begin() as own:
                ownership.claim(own, ticket_id=ticket.id, agent_id=agent_id, now=NOW)
            outcomes[agent_id] = "won"
        except errors.AlreadyClaimed:
            outcomes[agent_id] = "lost"
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            outcomes[agent_id] = f"error: {exc!r}"

    threads = [threading.Thread(target=attempt, args=(a.id,)) for a in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes.values()) == ["lost"] * (AGENTS - 1) + ["won"]
    winner = next(a for a, result in outcomes.items() if result == "won")
    with session_factory() as check:
        stored = check.get(Ticket, ticket.id)
        assert stored.owner_id == winner and stored.state is TicketState.OPEN
        claimed = check.scalar(select(func.count()).select_from(TicketEvent).where(
            TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "claimed"))
        assert claimed == 1


def test_concurrent_transfer_and_claim_leave_one_consistent_owner(pg_engine, session,
                                                                  session_factory, make) -> None:
    """A supervisor assigning while an agent claims: one wins, the other is refused."""
    team = make.team(code="frontline", tier=1)
    claimer, target = make.agent(team=team), make.agent(team=team)
    boss = make.agent(team=team, role=Role.SUPERVISOR)
    ticket = new_ticket(session, make)
    session.commit()
    barrier = threading.Barrier(2)
    results: dict[str, str] = {}

    def run(name: str, action) -> None:
        try:
            barrier.wait(timeout=10)
            with session_factory.begin() as own:
                action(own)
            results[name] = "ok"
        except (errors.AlreadyClaimed, errors.Conflict) as exc:
            results[name] = type(exc).__name__

    def claim(s) -> None:
        ownership.claim(s, ticket_id=ticket.id, agent_id=claimer.id, now=NOW)

    def assign(s) -> None:
        ownership.transfer(s, ticket_id=ticket.id, to_agent_id=target.id, by_agent_id=boss.id,
                           reason="分配", now=NOW)

    threads = [threading.Thread(target=run, args=("claim", claim)),
               threading.Thread(target=run, args=("assign", assign))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    with session_factory() as check:
        stored = check.get(Ticket, ticket.id)
        moves = check.scalars(select(TicketEvent.kind).where(
            TicketEvent.ticket_id == ticket.id, TicketEvent.kind.in_(["claimed", "transferred"]))
        ).all()
    assert "ok" in results.values()
    if list(results.values()).count("ok") == 1:
        assert stored.owner_id == (claimer.id if results["claim"] == "ok" else target.id)
        assert len(moves) == 1
    else:  # claim then transfer, in that order: both legitimately succeed
        assert stored.owner_id == target.id and sorted(moves) == ["claimed", "transferred"]
