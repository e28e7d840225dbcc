"""CSAT in the chat (ask, rate once, optional comment) and the follow-up (solved / reopen)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from actions.csat import (
    ActionAskCsatComment,
    ActionCsatComment,
    ActionCsatRate,
    ActionCsatRequest,
    is_skip,
)
from actions.followup import ActionFollowupAnswer, ActionFollowupAsk
from ticketing.desk import csat, ownership, tickets
from ticketing.shop import customers
from ticketing.core.clock import utcnow
from ticketing.core.models import (
    ChannelIdentity,
    Survey,
    Ticket,
    TicketMessage,
    TicketState,
)
from tests.actions.harness import run, tracker

CONVERSATION = "telegram:42"
STARS = [f'/rate{{"csat_score": {n}}}' for n in range(1, 6)]


@pytest.fixture
def agent(make):
    return make.agent(team=make.team(code="frontline"), name="Li")


def solved_ticket(session, agent, customer, *, conversation=CONVERSATION, language="zh",
                  subject="收到的耳机是坏的", ago=timedelta(hours=3)) -> Ticket:
    """A ticket opened in ``conversation``, owned by ``agent`` and solved: survey sent."""
    t0 = utcnow() - ago
    ticket = tickets.create_ticket(session, customer_id=customer.id, subject=subject,
                                   channel="telegram", language=language,
                                   conversation_id=conversation, now=t0)
    ownership.claim(session, ticket_id=ticket.id, agent_id=agent.id, now=t0 + timedelta(minutes=5))
    tickets.solve(session, ticket_id=ticket.id, agent_id=agent.id, resolution="已补发",
                  now=t0 + timedelta(hours=1))
    return ticket


@pytest.fixture
def alice(make, session):
    customer = make.customer()
    customers.link_identity(session, channel="telegram", external_id="42", customer_id=customer.id)
    return customer


@pytest.fixture
def rated_later(session, agent, alice):
    """Alice's solved ticket; returns its number and id (plain values, session committed)."""
    ticket = solved_ticket(session, agent, alice)
    number, ticket_id = ticket.number, ticket.id
    session.commit()
    return number, ticket_id


def survey_of(session, ticket_id) -> Survey:
    session.expire_all()
    return session.scalars(select(Survey).where(Survey.ticket_id == ticket_id)).one()


def rate(score=None, *, slots=None, text=None, language="zh"):
    entities = [] if score is None else [{"entity": "csat_score", "value": score}]
    text = text or (f'/rate{{"csat_score": {score}}}' if score is not None else "满意")
    return tracker("csat_request", slots={"language": language, **(slots or {})},
                   text=text, intent="rate", entities=entities)


# --- asking ----------------------------------------------------------------------------------
def test_request_asks_for_stars_with_the_ticket_number(rated_later, action_backend) -> None:
    number, _ = rated_later
    result = run(ActionCsatRequest(), tracker(
        "csat_request", entities=[{"entity": "ticket_number", "value": number}]))
    assert number in result.text and "打分" in result.text
    assert [b["payload"] for b in result.buttons] == STARS
    assert result.slots() == {"csat_ticket": number, "csat_rated": None}


def test_reminder_in_english(rated_later, action_backend) -> None:
    number, _ = rated_later
    state = tracker("csat_request", slots={"language": "en"}, intent="EXTERNAL_csat_reminder",
                    text="EXTERNAL: EXTERNAL_csat_reminder",
                    entities=[{"entity": "ticket_number", "value": number}])
    result = run(ActionCsatRequest(), state)
    assert "reminder" in result.text and number in result.text
    assert len(result.buttons) == 5


def test_request_is_silent_when_rated_or_not_this_customers(
        rated_later, make, session, agent, action_backend) -> None:
    number, ticket_id = rated_later
    bob = make.customer()
    bobs = solved_ticket(session, agent, bob, conversation="telegram:99")
    bobs_number = bobs.number
    csat.record_score(session, customer_id=survey_of(session, ticket_id).customer_id, score=5,
                      ticket_id=ticket_id)
    session.commit()
    for asked in (number, bobs_number, "T20990101999999"):
        result = run(ActionCsatRequest(), tracker(
            "csat_request", entities=[{"entity": "ticket_number", "value": asked}]))
        assert result.messages == [] and result.slots().get("csat_ticket") is None


# --- rating ----------------------------------------------------------------------------------
def test_button_rating_is_stored_and_the_comment_is_next(rated_later, session, action_backend) -> None:
    number, ticket_id = rated_later
    result = run(ActionCsatRate(), rate(5, slots={"csat_ticket": number}))
    assert survey_of(session, ticket_id).score == 5
    assert "5 星好评" in result.text
    assert result.slots() == {"csat_rated": True, "csat_ticket": number, "csat_stars": 5.0}


@pytest.mark.parametrize(("value", "stored"), [("五", 5), ("four", 4), ("3", 3), (2.0, 2)])
def test_typed_scores_in_words_and_digits(rated_later, session, action_backend, value, stored) -> None:
    number, ticket_id = rated_later
    run(ActionCsatRate(), rate(value, slots={"csat_ticket": number}, text=f"{value}星"))
    assert survey_of(session, ticket_id).score == stored


def test_a_second_rating_is_refused_politely(rated_later, session, action_backend) -> None:
    number, ticket_id = rated_later
    run(ActionCsatRate(), rate(2, slots={"csat_ticket": number}))
    session.rollback()
    again = run(ActionCsatRate(), rate(5, slots={"csat_ticket": number, "csat_rated": True}))
    assert "已经评价过" in again.text
    assert again.slots()["csat_rated"] is False
    assert survey_of(session, ticket_id).score == 2


def test_invalid_score_explains_and_asks_again(rated_later, session, action_backend) -> None:
    number, ticket_id = rated_later
    result = run(ActionCsatRate(), rate(7, slots={"csat_ticket": number}, text="给7分"))
    assert "1到5" in result.text and [b["payload"] for b in result.buttons] == STARS
    assert result.slots() == {"csat_rated": False, "csat_ticket": number}
    assert survey_of(session, ticket_id).score is None


def test_satisfied_without_a_number_asks_for_the_stars(rated_later, session, action_backend) -> None:
    number, ticket_id = rated_later
    result = run(ActionCsatRate(), rate(None, slots={"csat_ticket": number}, text="very satisfied",
                                        language="en"))
    assert number in result.text and "stars" in result.text and len(result.buttons) == 5
    assert result.slots()["csat_rated"] is False
    assert survey_of(session, ticket_id).score is None


def test_rating_out_of_the_blue_goes_to_the_latest_solved_ticket(
        session, agent, alice, action_backend) -> None:
    older = solved_ticket(session, agent, alice, ago=timedelta(days=2), subject="退款慢")
    newer = solved_ticket(session, agent, alice, ago=timedelta(hours=2), subject="发错货")
    older_id, newer_id, newer_number = older.id, newer.id, newer.number
    session.commit()
    result = run(ActionCsatRate(), rate("4", text="4分"))
    assert result.slots()["csat_ticket"] == newer_number
    assert survey_of(session, newer_id).score == 4
    assert survey_of(session, older_id).score is None


def test_nothing_to_rate(alice, session, action_backend) -> None:
    session.commit()
    result = run(ActionCsatRate(), rate(5))
    assert "没有需要您评价" in result.text and result.slots()["csat_rated"] is False
    anonymous = run(ActionCsatRate(), tracker("base", text="5 stars", intent="rate",
                                              entities=[{"entity": "csat_score", "value": 5}],
                                              slots={"language": "en"}))
    assert "nothing waiting" in anonymous.text


def test_guest_who_verified_later_can_rate_the_ticket_of_this_conversation(
        make, session, agent, action_backend) -> None:
    guest = customers.guest_customer(session, conversation_id="widget:v-9")
    ticket = solved_ticket(session, agent, guest, conversation="widget:v-9")
    number, ticket_id = ticket.number, ticket.id
    real = make.customer()
    customers.link_identity(session, channel="widget", external_id="v-9", customer_id=real.id)
    session.commit()
    state = tracker("csat_request", sender_id="widget:v-9", slots={"csat_ticket": number},
                    text="/rate", intent="rate", entities=[{"entity": "csat_score", "value": 3}])
    result = run(ActionCsatRate(), state)
    assert result.slots()["csat_rated"] is True
    assert survey_of(session, ticket_id).score == 3


# --- comment ---------------------------------------------------------------------------------
def test_comment_question_has_a_skip_button_and_asks_why_after_a_low_score(action_backend) -> None:
    low = run(ActionAskCsatComment(), tracker("csat_request", slots={"csat_stars": 1.0}))
    assert "哪里做得不好" in low.text and low.buttons == [{"title": "跳过", "payload": "/deny"}]
    high = run(ActionAskCsatComment(), tracker("csat_request", slots={"csat_stars": 5.0,
                                                                      "language": "en"}))
    assert "Anything you'd like" in high.text and high.buttons[0]["title"] == "Skip"


def test_comment_is_stored_and_the_survey_forgotten(rated_later, session, action_backend) -> None:
    number, ticket_id = rated_later
    run(ActionCsatRate(), rate(4, slots={"csat_ticket": number}))
    session.rollback()
    words = "客服很耐心，就是物流慢了点"
    result = run(ActionCsatComment(), tracker("csat_request", slots={
        "csat_ticket": number, "csat_comment": words, "csat_rated": True}, text=words,
        intent="thank"))
    survey = survey_of(session, ticket_id)
    assert (survey.score, survey.comment) == (4, words)
    assert "感谢您的宝贵意见" in result.text
    assert result.slots() == {"csat_comment": None, "csat_ticket": None, "csat_rated": None,
                              "csat_stars": None}


@pytest.mark.parametrize(("comment", "intent"), [
    (None, None), ("跳过", None), ("skip", None), ("👍", None), ("🙏🙏", None), ("...", None),
    # a refusal, thanks or goodbye, however it is phrased, by the NLU's intent
    ("No.", "deny"), ("nothing more", "deny"), ("that's all, thanks", "thank"),
    ("没有了", "deny"), ("没什么要说的", "deny"), ("no thanks bye", "goodbye"),
    ("谢谢啦", "thank"),
])
def test_skipped_comment_stores_nothing(rated_later, session, action_backend, comment,
                                        intent) -> None:
    number, ticket_id = rated_later
    run(ActionCsatRate(), rate(5, slots={"csat_ticket": number}))
    session.rollback()
    typed = {"text": comment, "intent": intent} if comment and intent else {}
    result = run(ActionCsatComment(), tracker("csat_request", slots={
        "csat_ticket": number, "csat_comment": comment}, **typed))
    assert "再次感谢" in result.text
    assert survey_of(session, ticket_id).comment is None
    assert result.slots()["csat_ticket"] is None


@pytest.mark.parametrize(("comment", "intent"), [
    ("no, the agent was rude", "deny"),  # more than a refusal
    ("Thanks, the agent was very helpful", "thank"),
    ("没有按时发货，很失望", "deny"),
    ("No", "complaint"),  # the NLU did not read a refusal
])
def test_a_comment_that_says_something_is_kept(rated_later, session, action_backend, comment,
                                              intent) -> None:
    number, ticket_id = rated_later
    run(ActionCsatRate(), rate(2, slots={"csat_ticket": number}))
    session.rollback()
    run(ActionCsatComment(), tracker("csat_request", slots={
        "csat_ticket": number, "csat_comment": comment}, text=comment, intent=intent))
    assert survey_of(session, ticket_id).comment == comment


def test_overlong_comment_is_kept_up_to_the_limit(rated_later, session, action_backend) -> None:
    number, ticket_id = rated_later
    run(ActionCsatRate(), rate(3, slots={"csat_ticket": number}))
    session.rollback()
    run(ActionCsatComment(), tracker("csat_request", slots={
        "csat_ticket": number, "csat_comment": "慢" * (csat.COMMENT_MAX_CHARS + 50)}))
    assert len(survey_of(session, ticket_id).comment) == csat.COMMENT_MAX_CHARS


# --- follow-up -------------------------------------------------------------------------------
def followup_answer(number, *, intent, text, language="zh"):
    return tracker("csat_followup", slots={"followup_ticket": number, "language": language},
                   text=text, intent=intent)


def test_followup_question_with_yes_no_buttons(rated_later, action_backend) -> None:
    number, _ = rated_later
    result = run(ActionFollowupAsk(), tracker(
        "csat_followup", entities=[{"entity": "ticket_number", "value": number}]))
    assert number in result.text and "解决了吗" in result.text
    assert [b["payload"] for b in result.buttons] == ["/affirm", "/deny"]
    assert result.slots() == {"followup_ticket": number}


def test_followup_solved_is_recorded_and_the_ticket_stays_solved(
        rated_later, session, action_backend) -> None:
    number, ticket_id = rated_later
    result = run(ActionFollowupAnswer(), followup_answer(number, intent="affirm", text="/affirm"))
    assert "感谢您的确认" in result.text and result.slots() == {"followup_ticket": None}
    assert survey_of(session, ticket_id).followup_solved is True
    assert session.get(Ticket, ticket_id).state is TicketState.SOLVED
    assert "pause" not in result.event_types()
    session.rollback()
    again = run(ActionFollowupAsk(), tracker(
        "csat_followup", entities=[{"entity": "ticket_number", "value": number}]))
    assert again.messages == []  # answered: a duplicate delivery asks nothing


def test_followup_not_solved_reopens_to_the_owner_and_hands_off(
        rated_later, agent, session, action_backend) -> None:
    number, ticket_id = rated_later
    agent_id = agent.id
    result = run(ActionFollowupAnswer(),
                 followup_answer(number, intent="deny", text="还没解决，耳机还是连不上"))
    session.expire_all()
    ticket = session.get(Ticket, ticket_id)
    assert (ticket.state, ticket.owner_id, ticket.reopen_count) == (TicketState.OPEN, agent_id, 1)
    assert survey_of(session, ticket_id).followup_solved is False
    assert number in result.text and "重新打开" in result.text and "小时内" in result.text
    marker = result.custom[0]["kefu"]
    assert marker["handoff"] is True and marker["ticket_number"] == number
    assert marker["reason"] == "followup_not_solved"
    assert result.event_types()[-1] == "pause"
    assert result.slots()["followup_ticket"] is None and result.slots()["ticket_number"] == number
    identity = session.scalars(select(ChannelIdentity).where(
        ChannelIdentity.conversation_id == CONVERSATION)).one()
    assert identity.handed_off_ticket_id == ticket_id
    bodies = session.scalars(select(TicketMessage.body).where(
        TicketMessage.ticket_id == ticket_id)).all()
    assert "还没解决，耳机还是连不上" in bodies
    assert len(session.scalars(select(Ticket)).all()) == 1  # no second ticket


def test_followup_not_solved_button_in_english(rated_later, session, action_backend) -> None:
    number, ticket_id = rated_later
    result = run(ActionFollowupAnswer(),
                 followup_answer(number, intent="deny", text="/deny", language="en"))
    assert "reopened ticket" in result.text and number in result.text
    session.expire_all()
    bodies = session.scalars(select(TicketMessage.body).where(
        TicketMessage.ticket_id == ticket_id)).all()
    assert "/deny" not in bodies  # a button tap is not the customer's words


def test_followup_not_solved_on_a_closed_ticket_opens_a_new_one(
        rated_later, agent, session, action_backend) -> None:
    number, ticket_id = rated_later
    tickets.close(session, ticket_id=ticket_id, actor_type="system", reason="auto-close")
    session.commit()
    result = run(ActionFollowupAnswer(), followup_answer(number, intent="deny", text="没有"))
    session.expire_all()
    assert session.get(Ticket, ticket_id).state is TicketState.CLOSED
    new = session.scalars(select(Ticket).where(Ticket.id != ticket_id)).one()
    assert new.number in result.text and result.custom[0]["kefu"]["ticket_number"] == new.number
    assert "pause" in result.event_types()


def test_followup_answer_without_a_question_records_nothing(rated_later, session, action_backend) -> None:
    _, ticket_id = rated_later
    result = run(ActionFollowupAnswer(), followup_answer(None, intent="deny", text="不用了"))
    assert result.responses == ["utter_anything_else"]
    assert survey_of(session, ticket_id).followup_solved is None


def test_a_decline_the_fallback_was_unsure_about_is_still_a_skip() -> None:
    """"nothing more, thanks": thank 0.49 vs deny 0.49, so the fallback took over; both
    readings decline, so nothing is stored. A fallback over a longer message is a comment."""
    unsure = {"intent": {"name": "nlu_fallback", "confidence": 0.5},
              "intent_ranking": [{"name": "nlu_fallback", "confidence": 0.5},
                                 {"name": "thank", "confidence": 0.49},
                                 {"name": "deny", "confidence": 0.49}]}
    assert is_skip("nothing more, thanks", unsure)
    assert not is_skip("the agent never read what I wrote and closed it", unsure)
    low = {"intent": {"name": "nlu_fallback", "confidence": 0.4},
           "intent_ranking": [{"name": "nlu_fallback", "confidence": 0.4},
                              {"name": "thank", "confidence": 0.2}]}
    assert not is_skip("thanks hmm", low)
