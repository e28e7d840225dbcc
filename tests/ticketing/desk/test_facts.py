"""The reports' facts follow the real services in the same transaction, and can be rebuilt."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import TEST_KEY
from tests.factories import Factory
from tests.ticketing.desk_setup import NOW, build_desk
from ticketing.conversations import inbound
from ticketing.core.models import ConversationFact, ReplyWait, TicketFact
from ticketing.core.pii import PiiCipher
from ticketing.desk import csat, facts, handoffs, ownership, tickets

H = timedelta(hours=1)


def test_a_ticket_s_life_is_in_its_facts_at_each_commit(
        session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as s:
        make = Factory(s, PiiCipher(TEST_KEY))
        desk = build_desk(make)
        customer = make.customer()
        inbound.record(s, channel="telegram", conversation_id="tg-1", dedupe_key="1",
                       text="我要找人工", now=NOW - 0.2 * H)
        ticket = handoffs.open_for_conversation(s, conversation_id="tg-1", text="我的快递丢了",
                                                now=NOW)
        ticket_id, agent_id = ticket.id, desk.l1.id
    with session_factory.begin() as s:
        fact = s.get(TicketFact, ticket_id)
        assert fact is not None and fact.state == "new" and fact.handed_off
        assert fact.sla_first_response == "pending" and fact.first_response_s is None
        chat = s.scalars(select(ConversationFact)).one()
        assert (chat.ticket_id, chat.handed_off, chat.messages) == (ticket_id, True, 1)
        ownership.claim(s, ticket_id=ticket_id, agent_id=agent_id, now=NOW + 0.1 * H)
        tickets.agent_reply(s, ticket_id=ticket_id, agent_id=agent_id, body="正在查", now=NOW + H)
    with session_factory.begin() as s:
        fact = s.get(TicketFact, ticket_id)
        assert fact.owner_id == agent_id and fact.first_response_s == 3600
        assert fact.sla_first_response == "met"
        tickets.add_customer_message(s, ticket_id=ticket_id, body="还没到", now=NOW + 2 * H)
        tickets.agent_reply(s, ticket_id=ticket_id, agent_id=agent_id, body="补发了",
                            now=NOW + 2.5 * H)
        tickets.solve(s, ticket_id=ticket_id, agent_id=agent_id, resolution="已补发",
                      now=NOW + 3 * H)
    with session_factory.begin() as s:
        fact = s.get(TicketFact, ticket_id)
        assert (fact.state, fact.replies_waited, fact.resolution_first_s) == ("solved", 1, 3 * 3600)
        waits = s.scalars(select(ReplyWait).where(ReplyWait.ticket_id == ticket_id)
                          .order_by(ReplyWait.seq)).all()
        assert [w.seconds for w in waits] == [3600, 1800]
        assert fact.survey_sent_at is not None and fact.csat_score is None
        csat.record_score(s, customer_id=fact_customer(s, ticket_id), score=4,
                          ticket_id=ticket_id, now=NOW + 4 * H)
    with session_factory() as s:
        assert s.get(TicketFact, ticket_id).csat_score == 4


def fact_customer(s: Session, ticket_id: int) -> int:
    from ticketing.core.models import Ticket

    return s.get(Ticket, ticket_id).customer_id


def test_a_rolled_back_change_leaves_the_facts_as_they_were(
        session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as s:
        make = Factory(s, PiiCipher(TEST_KEY))
        desk = build_desk(make)
        ticket = tickets.create_ticket(s, customer_id=make.customer().id, subject="坏了",
                                       channel="widget", now=NOW)
        ticket_id, agent_id = ticket.id, desk.l1.id
    with session_factory() as s:
        ownership.claim(s, ticket_id=ticket_id, agent_id=agent_id, now=NOW + H)
        s.rollback()
    with session_factory.begin() as s:
        assert s.get(TicketFact, ticket_id).owner_id is None
        ownership.claim(s, ticket_id=ticket_id, agent_id=agent_id, now=NOW + H)
    with session_factory() as s:
        assert s.get(TicketFact, ticket_id).owner_id == agent_id


def test_a_rolled_back_savepoint_keeps_the_rest_of_the_transaction_counted(
        session_factory: sessionmaker[Session]) -> None:
    """A savepoint that rolls back (a lost race, a bad row in a batch) must not make the
    facts forget the tickets the rest of the transaction changed."""
    with session_factory.begin() as s:
        make = Factory(s, PiiCipher(TEST_KEY))
        desk = build_desk(make)
        first = tickets.create_ticket(s, customer_id=make.customer().id, subject="坏了",
                                      channel="widget", now=NOW)
        second = tickets.create_ticket(s, customer_id=make.customer().id, subject="没到",
                                       channel="widget", now=NOW)
        ids, agent_id = (first.id, second.id), desk.l1.id
    with session_factory.begin() as s:
        ownership.claim(s, ticket_id=ids[0], agent_id=agent_id, now=NOW + H)
        s.flush()
        savepoint = s.begin_nested()
        ownership.claim(s, ticket_id=ids[1], agent_id=agent_id, now=NOW + H)
        savepoint.rollback()
    with session_factory() as s:
        assert s.get(TicketFact, ids[0]).owner_id == agent_id
        assert s.get(TicketFact, ids[1]).owner_id is None


def test_backfill_and_rebuild_recompute_from_the_source_rows(
        session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as s:
        make = Factory(s, PiiCipher(TEST_KEY))
        ids = [tickets.create_ticket(s, customer_id=make.customer().id, subject=f"问题{i}",
                                     channel="widget", now=NOW).id for i in range(3)]
        inbound.record(s, channel="widget", conversation_id="w-1", dedupe_key="a", text="hi",
                       now=NOW)
        inbound.record(s, channel="widget", conversation_id="w-1", dedupe_key="b", text="hi",
                       now=NOW + 30 * H)  # after a day's silence: a second conversation
    with session_factory.begin() as s:
        s.execute(delete(TicketFact).where(TicketFact.ticket_id.in_(ids[:2])))
        s.execute(delete(ConversationFact))
    assert facts.backfill(session_factory) == 2
    with session_factory() as s:
        assert sorted(s.scalars(select(TicketFact.ticket_id))) == ids
        assert len(s.scalars(select(ConversationFact)).all()) == 2
    assert facts.rebuild(session_factory) == 3
    assert facts.backfill(session_factory) == 0


def test_messages_extend_their_conversation_until_a_day_of_silence(
        session_factory: sessionmaker[Session]) -> None:
    def record(key: str, at: timedelta) -> None:
        with session_factory.begin() as s:
            inbound.record(s, channel="widget", conversation_id="w-2", dedupe_key=key,
                           text="hi", now=NOW + at)

    record("a", 0 * H)
    record("b", 2 * H)
    record("c", 1 * H)  # arrives late: counted, the last message stays the latest
    with session_factory.begin() as s:  # two in one transaction
        for key, at in (("d", 3 * H), ("e", 4 * H)):
            inbound.record(s, channel="widget", conversation_id="w-2", dedupe_key=key,
                           text="hi", now=NOW + at)
    record("f", 29 * H)  # 25 hours after "e": a new conversation
    with session_factory() as s:
        rows = s.scalars(select(ConversationFact).where(ConversationFact.conversation_id == "w-2")
                         .order_by(ConversationFact.started_at)).all()
        assert [(r.started_at, r.last_message_at, r.messages) for r in rows] == [
            (NOW, NOW + 4 * H, 5), (NOW + 29 * H, NOW + 29 * H, 1)]


def test_a_message_stored_after_its_conversation_s_ticket_credits_that_ticket(
        session_factory: sessionmaker[Session]) -> None:
    """A replayed message (stored late, received before the bot's handoff ticket): the new
    conversation it starts is the ticket's, handed off."""
    with session_factory.begin() as s:
        ticket = handoffs.open_for_conversation(s, conversation_id="tg-9", text="人工",
                                                now=NOW + H)
        ticket_id = ticket.id
        s.execute(delete(ConversationFact))  # as if the chat had no facts yet
    with session_factory.begin() as s:
        inbound.record(s, channel="telegram", conversation_id="tg-9", dedupe_key="late",
                       text="我要找人工", now=NOW, assume_new=True)
    with session_factory() as s:
        chat = s.scalars(select(ConversationFact)
                         .where(ConversationFact.conversation_id == "tg-9")).one()
        assert (chat.started_at, chat.ticket_id, chat.handed_off, chat.messages) == (
            NOW, ticket_id, True, 1)
