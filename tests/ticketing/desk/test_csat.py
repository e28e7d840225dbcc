"""CSAT survey (ticketing.desk.csat), on tickets built directly from the models; the last tests
run the whole loop with the follow-up (ticketing.desk.followup) and the worker."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from ticketing.core import errors
from ticketing.desk import csat, followup, ownership, tickets, timer_index, worker
from ticketing.core.models import (
    Category,
    Channel,
    OutboxMessage,
    Priority,
    Survey,
    Ticket,
    TicketEvent,
    TicketState,
)
from ticketing.reports import metrics
from ticketing.reports.scope import Filters, Period

NOW = datetime(2026, 3, 10, 8, 0, tzinfo=timezone.utc)
_numbers = itertools.count(1)


def make_ticket(make, *, customer=None, owner=None, team=None, state=TicketState.SOLVED,
                category=Category.LOGISTICS, channel=Channel.TELEGRAM, language="zh") -> Ticket:
    customer = customer or make.customer()
    ticket = Ticket(
        number=f"T{next(_numbers):08d}", customer_id=customer.id, channel=channel,
        conversation_id=f"conv-{customer.id}", category=category, priority=Priority.NORMAL,
        tier=1, state=state, subject="包裹还没到", language=language,
        team_id=team.id if team else None, owner_id=owner.id if owner else None,
        created_at=NOW - timedelta(days=1), solved_at=NOW,
    )
    make.session.add(ticket)
    make.session.flush()
    return ticket


def outbox_of(session, ticket, kind=None) -> list[OutboxMessage]:
    stmt = select(OutboxMessage).where(OutboxMessage.ticket_id == ticket.id)
    if kind:
        stmt = stmt.where(OutboxMessage.kind == kind)
    return list(session.scalars(stmt.order_by(OutboxMessage.id)))


def count_surveys(session) -> int:
    return session.scalar(select(func.count()).select_from(Survey))


@pytest.fixture
def solved(make):
    """A solved ticket owned by an agent of team 'frontline', with its survey sent."""
    team = make.team(code="frontline")
    agent = make.agent(team=team, name="Li")
    ticket = make_ticket(make, owner=agent, team=team)
    survey = csat.on_ticket_solved(make.session, ticket=ticket, now=NOW)
    return ticket, survey, agent, team


# --- sending ---------------------------------------------------------------------------------
def test_survey_is_credited_to_owner_and_copies_category_and_channel(make, session) -> None:
    team = make.team(code="aftersales", tier=2)
    other_team = make.team(code="logistics", tier=2)
    agent = make.agent(team=team)
    # the ticket sits with another team; the credit follows the owner's own team
    ticket = make_ticket(make, owner=agent, team=other_team, category=Category.QUALITY,
                         channel=Channel.WIDGET)
    survey = csat.on_ticket_solved(session, ticket=ticket, now=NOW)
    assert (survey.ticket_id, survey.customer_id) == (ticket.id, ticket.customer_id)
    assert (survey.agent_id, survey.team_id) == (agent.id, team.id)
    assert (survey.category, survey.channel) == ("quality", "widget")
    assert survey.sent_at == NOW and survey.score is None


def test_survey_request_goes_to_the_outbox_with_star_buttons(solved, session) -> None:
    ticket, _, _, _ = solved
    [message] = outbox_of(session, ticket)
    assert message.kind == "csat_request"
    assert message.customer_id == ticket.customer_id
    assert message.conversation_id == ticket.conversation_id
    assert message.language == "zh"
    assert ticket.number in message.text and "打分" in message.text
    assert message.payload["intent"] == "EXTERNAL_csat_request"
    assert message.payload["entities"] == {"ticket_number": ticket.number}
    buttons = message.payload["buttons"]
    assert [b["title"] for b in buttons] == ["1 ⭐", "2 ⭐⭐", "3 ⭐⭐⭐", "4 ⭐⭐⭐⭐", "5 ⭐⭐⭐⭐⭐"]
    assert buttons[0]["payload"] == '/rate{"csat_score": 1}'
    assert buttons[4]["payload"] == '/rate{"csat_score": 5}'


def test_survey_text_follows_the_customer_language(make, session) -> None:
    ticket = make_ticket(make, owner=make.agent(), language="en")
    csat.on_ticket_solved(session, ticket=ticket, now=NOW)
    [message] = outbox_of(session, ticket)
    assert message.language == "en"
    assert message.text.startswith("Your request (ticket " + ticket.number)


def test_resolve_after_reopen_creates_no_second_survey(solved, make, session) -> None:
    ticket, survey, agent, _ = solved
    ticket.owner_id = make.agent(team=make.team(code="l2", tier=2)).id  # transferred meanwhile
    again = csat.on_ticket_solved(session, ticket=ticket, now=NOW + timedelta(days=2))
    assert again.id == survey.id
    assert count_surveys(session) == 1
    assert len(outbox_of(session, ticket, "csat_request")) == 1
    assert (again.agent_id, again.sent_at) == (agent.id, NOW)


def test_credit_does_not_move_with_a_later_transfer_or_team_change(solved, make, session) -> None:
    ticket, survey, agent, team = solved
    ticket.owner_id = make.agent().id
    agent.team_id = make.team(code="moved", tier=1).id
    session.flush()
    session.expire_all()
    stored = session.get(Survey, survey.id)
    assert (stored.agent_id, stored.team_id) == (agent.id, team.id)


def test_ticket_without_owner_credits_the_ticket_team(make, session) -> None:
    team = make.team(code="bot")
    ticket = make_ticket(make, team=team)
    survey = csat.on_ticket_solved(session, ticket=ticket, now=NOW)
    assert (survey.agent_id, survey.team_id) == (None, team.id)


# --- score -----------------------------------------------------------------------------------
def test_record_score_by_id_and_by_number(make, session) -> None:
    agent = make.agent()
    first = make_ticket(make, owner=agent)
    second = make_ticket(make, owner=agent)
    csat.on_ticket_solved(session, ticket=first, now=NOW)
    csat.on_ticket_solved(session, ticket=second, now=NOW)
    a = csat.record_score(session, ticket_id=first.id, customer_id=first.customer_id, score=5,
                          comment="  很快，谢谢 ", now=NOW + timedelta(minutes=3))
    b = csat.record_score(session, ticket_number=f" {second.number} ",
                          customer_id=second.customer_id, score=2, now=NOW)
    assert (a.score, a.comment, a.answered_at) == (5, "很快，谢谢", NOW + timedelta(minutes=3))
    assert (b.score, b.comment) == (2, None)
    kinds = session.scalars(select(TicketEvent.kind).where(TicketEvent.ticket_id == first.id))
    assert "csat_rated" in list(kinds)


@pytest.mark.parametrize("score", ["5", " 4 ", 3.0, 1])
def test_slot_values_that_are_whole_numbers_are_accepted(solved, session, score) -> None:
    ticket, survey, _, _ = solved
    csat.record_score(session, ticket_id=ticket.id, customer_id=ticket.customer_id, score=score)
    assert survey.score == int(float(score))


@pytest.mark.parametrize(
    "score", ["6", "0", 0, 6, -1, True, False, 3.5, "3.5", "abc", "", None, "５", float("nan"),
              float("inf"), [5]],
)
def test_invalid_scores_are_refused_and_change_nothing(solved, session, score) -> None:
    ticket, survey, _, _ = solved
    with pytest.raises(errors.InvalidScore):
        csat.record_score(session, ticket_id=ticket.id, customer_id=ticket.customer_id,
                          score=score, now=NOW)
    assert (survey.score, survey.answered_at) == (None, None)


def test_another_customers_survey_is_not_found(solved, make, session) -> None:
    ticket, survey, _, _ = solved
    stranger = make.customer(name="王芳")
    with pytest.raises(errors.SurveyNotFound) as other:
        csat.record_score(session, ticket_id=ticket.id, customer_id=stranger.id, score=1)
    with pytest.raises(errors.SurveyNotFound) as missing:
        csat.record_score(session, ticket_id=ticket.id + 999, customer_id=stranger.id, score=1)
    with pytest.raises(errors.SurveyNotFound):
        csat.record_score(session, ticket_number=ticket.number, customer_id=stranger.id, score=1)
    assert type(other.value) is type(missing.value)
    assert other.value.text("zh") == missing.value.text("zh")
    assert survey.score is None


def test_second_score_is_refused_and_changes_nothing(solved, session) -> None:
    ticket, survey, _, _ = solved
    csat.record_score(session, ticket_id=ticket.id, customer_id=ticket.customer_id, score=4,
                      comment="ok", now=NOW)
    session.flush()
    events_before = session.scalar(select(func.count()).select_from(TicketEvent))
    with pytest.raises(errors.AlreadyAnswered):
        csat.record_score(session, ticket_id=ticket.id, customer_id=ticket.customer_id,
                          score=1, comment="changed my mind", now=NOW + timedelta(hours=1))
    session.flush()
    session.expire_all()
    stored = session.get(Survey, survey.id)
    assert (stored.score, stored.comment, stored.answered_at) == (4, "ok", NOW)
    assert session.scalar(select(func.count()).select_from(TicketEvent)) == events_before


def test_comment_after_the_score_once_and_within_the_limit(solved, session) -> None:
    ticket, survey, _, _ = solved
    who = {"ticket_id": ticket.id, "customer_id": ticket.customer_id}
    csat.record_score(session, score=3, now=NOW, **who)
    with pytest.raises(errors.ValidationError):
        csat.record_comment(session, comment="x" * (csat.COMMENT_MAX_CHARS + 1), **who)
    with pytest.raises(errors.ValidationError):
        csat.record_comment(session, comment="   ", **who)
    assert survey.comment is None
    csat.record_comment(session, comment="x" * csat.COMMENT_MAX_CHARS, **who)
    assert len(survey.comment) == csat.COMMENT_MAX_CHARS
    with pytest.raises(errors.AlreadyAnswered):
        csat.record_comment(session, comment="again", **who)
    assert survey.answered_at == NOW


def test_too_long_comment_with_the_score_refuses_the_score_too(solved, session) -> None:
    ticket, survey, _, _ = solved
    with pytest.raises(errors.ValidationError):
        csat.record_score(session, ticket_id=ticket.id, customer_id=ticket.customer_id,
                          score=5, comment="好" * 1001)
    assert survey.score is None


# --- reminder and follow-up ------------------------------------------------------------------
def test_reminder_is_sent_once_and_only_while_unanswered(solved, make, session) -> None:
    ticket, _, _, _ = solved
    message = csat.send_reminder(session, ticket=ticket, now=NOW + timedelta(hours=24))
    assert message is not None and message.kind == "csat_reminder"
    assert message.payload["intent"] == "EXTERNAL_csat_reminder"
    assert len(message.payload["buttons"]) == 5
    assert csat.send_reminder(session, ticket=ticket, now=NOW + timedelta(hours=48)) is None
    assert len(outbox_of(session, ticket, "csat_reminder")) == 1

    answered = make_ticket(make, owner=make.agent())
    csat.on_ticket_solved(session, ticket=answered, now=NOW)
    csat.record_score(session, ticket_id=answered.id, customer_id=answered.customer_id, score=5)
    assert csat.send_reminder(session, ticket=answered, now=NOW) is None
    assert outbox_of(session, answered, "csat_reminder") == []


def test_no_reminder_for_a_reopened_ticket(solved, session) -> None:
    ticket, _, _, _ = solved
    ticket.state = TicketState.OPEN
    assert csat.send_reminder(session, ticket=ticket, now=NOW) is None


def test_full_loop_survey_followup_reopen_and_resolve_keeps_one_credited_survey(
    make, session, session_factory
) -> None:
    t0 = NOW - timedelta(days=2)
    team = make.team(code="frontline")
    first, second = make.agent(team=team, name="Li"), make.agent(team=team, name="Wang")
    customer = make.customer()
    ticket = tickets.create_ticket(session, customer_id=customer.id, subject="快递三天没动了",
                                   channel="telegram", language="zh", category="logistics",
                                   conversation_id="tg-42", now=t0)
    ownership.claim(session, ticket_id=ticket.id, agent_id=first.id, now=t0 + timedelta(minutes=5))
    tickets.agent_reply(session, ticket_id=ticket.id, agent_id=first.id, body="正在联系快递",
                        now=t0 + timedelta(minutes=10))
    solved_at = t0 + timedelta(hours=1)
    tickets.solve(session, ticket_id=ticket.id, agent_id=first.id, resolution="已补发",
                  now=solved_at)
    session.commit()
    # plain values: touching an expired ORM object inside another session's write would make
    # this session start a transaction too, and SQLite allows one writer
    ticket_id, number, customer_id = ticket.id, ticket.number, customer.id
    first_id, second_id = first.id, second.id
    survey = csat.survey_for_ticket(session, ticket_id=ticket_id)
    assert (survey.agent_id, survey.team_id, survey.sent_at) == (first_id, team.id, solved_at)
    assert len(outbox_of(session, ticket, "csat_request")) == 1
    session.commit()  # end the read: SQLite's BEGIN IMMEDIATE would block the next writer

    with session_factory.begin() as s:
        csat.record_score(s, ticket_number=number, customer_id=customer_id, score=2,
                          now=solved_at + timedelta(hours=1))
    due = timer_index.DatabaseDueSource(session_factory)
    later = solved_at + timedelta(hours=25)
    report = worker.run_once(session_factory, due_source=due, now=later)
    assert report.fired == {"followup": 1, "csat_reminder": 1} and report.failed == 0
    session.expire_all()
    assert len(outbox_of(session, ticket, "followup")) == 1
    assert outbox_of(session, ticket, "csat_reminder") == []  # already rated
    assert session.get(Survey, survey.id).followup_sent_at == later
    session.commit()

    with session_factory.begin() as s:
        followup.answer_followup(s, ticket_id=ticket_id, customer_id=customer_id, solved=False,
                             now=later + timedelta(minutes=1))
    with session_factory.begin() as s:  # a double tap changes nothing
        followup.answer_followup(s, ticket_id=ticket_id, customer_id=customer_id, solved=False,
                             now=later + timedelta(minutes=2))
    session.expire_all()
    reopened = session.get(Ticket, ticket_id)
    assert (reopened.state, reopened.owner_id, reopened.reopen_count) == (
        TicketState.OPEN, first_id, 1)
    [event] = [e for e in reopened.events if e.kind == "reopened"]
    assert (event.actor_type, event.actor_id, event.reason) == (
        "customer", customer_id, followup.NOT_SOLVED_REASON)
    session.commit()

    with session_factory.begin() as s:
        ownership.transfer(s, ticket_id=ticket_id, to_agent_id=second_id, by_agent_id=first_id,
                           reason="物流专员接手", now=later + timedelta(hours=1))
        tickets.solve(s, ticket_id=ticket_id, agent_id=second_id, resolution="新包裹已签收",
                      now=later + timedelta(hours=2))
    session.expire_all()
    assert count_surveys(session) == 1
    assert len(outbox_of(session, ticket, "csat_request")) == 1
    stored = session.get(Survey, survey.id)
    assert (stored.agent_id, stored.score, stored.followup_solved) == (first_id, 2, False)
    # the reports' facts were refreshed as each of those transactions committed: the rating
    # stays with the agent the survey was credited to, not the one who solved the reopen
    period = Period.of_days(t0.date(), (later + timedelta(days=1)).date(), "UTC")
    _, by_agent = metrics.table(session, period, Filters(), "agent", now=later)
    assert {k: (v.responses, v.csat_pct) for k, v in by_agent.items()} == {first_id: (1, 0.0)}


def test_worker_sends_one_reminder_for_an_unanswered_survey(make, session, session_factory) -> None:
    agent = make.agent(team=make.team(code="frontline"))
    customer = make.customer(language="en")
    ticket = tickets.create_ticket(session, customer_id=customer.id, subject="Where is my parcel",
                                   channel="widget", language="en", category="logistics",
                                   conversation_id="web-7", now=NOW)
    ownership.claim(session, ticket_id=ticket.id, agent_id=agent.id, now=NOW)
    tickets.solve(session, ticket_id=ticket.id, agent_id=agent.id, resolution="Re-sent",
                  now=NOW + timedelta(hours=1))
    session.commit()
    due = timer_index.DatabaseDueSource(session_factory)
    for hours in (6, 7, 30):
        worker.run_once(session_factory, due_source=due, now=NOW + timedelta(hours=hours))
    session.expire_all()
    [reminder] = outbox_of(session, ticket, "csat_reminder")
    assert reminder.language == "en" and ticket.number in reminder.text
    assert len(outbox_of(session, ticket, "followup")) == 1
