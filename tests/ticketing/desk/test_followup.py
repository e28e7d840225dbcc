"""The 回访 follow-up (ticketing.desk.followup): asked once while solved, "not solved" reopens."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ticketing.core import errors
from ticketing.core.models import TicketState
from ticketing.desk import csat, followup
from tests.ticketing.desk.test_csat import NOW, make_ticket, outbox_of, solved  # noqa: F401


def test_followup_is_sent_once_with_yes_no_buttons(solved, session) -> None:
    ticket, survey, _, _ = solved
    at = NOW + timedelta(hours=24)
    message = followup.send_followup(session, ticket=ticket, now=at)
    assert message.kind == "followup" and message.language == "zh"
    assert ticket.number in message.text and "解决" in message.text
    assert message.payload["intent"] == "EXTERNAL_followup"
    assert message.payload["entities"] == {"ticket_number": ticket.number}
    assert [b["payload"] for b in message.payload["buttons"]] == ["/affirm", "/deny"]
    assert [b["title"] for b in message.payload["buttons"]] == ["已解决 ✅", "还没解决 ❌"]
    assert survey.followup_sent_at == at
    assert followup.send_followup(session, ticket=ticket, now=at + timedelta(hours=1)) is None
    assert len(outbox_of(session, ticket, "followup")) == 1
    assert survey.followup_sent_at == at


def test_followup_in_english_and_not_for_unsolved_or_unsurveyed_tickets(make, session) -> None:
    agent = make.agent()
    english = make_ticket(make, owner=agent, language="en")
    csat.on_ticket_solved(session, ticket=english, now=NOW)
    message = followup.send_followup(session, ticket=english, now=NOW)
    assert [b["title"] for b in message.payload["buttons"]] == ["Yes, solved ✅",
                                                                 "No, not solved ❌"]
    reopened = make_ticket(make, owner=agent)
    survey = csat.on_ticket_solved(session, ticket=reopened, now=NOW)
    reopened.state = TicketState.OPEN
    assert followup.send_followup(session, ticket=reopened, now=NOW) is None
    assert survey.followup_sent_at is None
    never_surveyed = make_ticket(make, owner=agent)
    assert followup.send_followup(session, ticket=never_surveyed, now=NOW) is None
    assert outbox_of(session, never_surveyed) == []


def test_followup_answered_solved_keeps_the_ticket_solved(solved, session) -> None:
    ticket, survey, _, _ = solved
    followup.send_followup(session, ticket=ticket, now=NOW)
    followup.answer_followup(session, ticket_id=ticket.id, customer_id=ticket.customer_id,
                         solved=True, now=NOW)
    assert survey.followup_solved is True
    assert ticket.state is TicketState.SOLVED
    # the first answer stands: a later "not solved" tap neither flips it nor reopens
    followup.answer_followup(session, ticket_id=ticket.id, customer_id=ticket.customer_id,
                         solved=False, now=NOW)
    assert survey.followup_solved is True
    assert ticket.state is TicketState.SOLVED


def test_followup_answer_is_validated_before_anything_changes(solved, make, session) -> None:
    ticket, survey, _, _ = solved
    with pytest.raises(errors.SurveyNotFound):
        followup.answer_followup(session, ticket_id=ticket.id, customer_id=make.customer().id,
                             solved=False, now=NOW)
    with pytest.raises(errors.ValidationError):
        followup.answer_followup(session, ticket_id=ticket.id, customer_id=ticket.customer_id,
                             solved="no", now=NOW)  # type: ignore[arg-type]
    assert survey.followup_solved is None and ticket.state is TicketState.SOLVED


def test_not_solved_on_an_already_reopened_ticket_only_records_the_answer(solved, session) -> None:
    ticket, survey, _, _ = solved
    ticket.state = TicketState.OPEN  # the customer wrote back in the meantime
    reopen_count = ticket.reopen_count
    followup.answer_followup(session, ticket_id=ticket.id, customer_id=ticket.customer_id,
                         solved=False, now=NOW)
    assert survey.followup_solved is False
    assert (ticket.state, ticket.reopen_count) == (TicketState.OPEN, reopen_count)


# --- through tickets, ownership and the worker -----------------------------------------------
