"""A yes/no with nothing left to answer: acknowledged in the customer's language, nothing run."""

from __future__ import annotations

from sqlalchemy import func, select

from actions.stale_answer import ALREADY_DONE, WHAT_NEXT, ActionStaleAnswer, previous_action
from tests.actions.harness import run, tracker
from ticketing.core.models import RefundRequest, Ticket


def _action(name: str) -> dict[str, object]:
    return {"event": "action", "name": name}


def _user(text: str) -> dict[str, object]:
    return {"event": "user", "text": text, "parse_data": {"intent": {"name": "affirm"}}}


def test_previous_action_skips_bookkeeping_and_the_latest_message() -> None:
    events = [_user("我要退款"), _action("action_identify_customer"), _action("refund_form"),
              _action("action_submit_refund"), _action("action_listen"), _user("/affirm"),
              _action("action_identify_customer")]
    assert previous_action(events) == "action_submit_refund"
    assert previous_action([_user("/affirm")]) is None


def test_a_double_clicked_confirm_says_it_is_done_and_submits_nothing(
        session, action_backend) -> None:
    state = tracker(slots={"language": "en"}, text="/affirm", intent="affirm",
                    events=[_action("action_submit_refund"), _action("action_listen")])
    # the harness appends the user event after the given events
    result = run(ActionStaleAnswer(), state)
    assert result.texts == [ALREADY_DONE.get("en")]
    assert result.events == []
    assert session.scalar(select(func.count()).select_from(RefundRequest)) == 0
    assert session.scalar(select(func.count()).select_from(Ticket)) == 0


def test_a_stray_no_in_chinese_invites_the_next_question(session, action_backend) -> None:
    state = tracker(slots={"language": "zh"}, text="/deny", intent="deny",
                    events=[_action("utter_greet"), _action("action_listen")])
    result = run(ActionStaleAnswer(), state)
    assert result.texts == [WHAT_NEXT.get("zh")]
    assert "不明白" not in result.text and "没理解" not in result.text
