"""The refund form and refund answers against the real test databases, in both languages.

Validator runs are given their slot candidates the way Rasa hands them over: ``slot`` events
after the latest user message (see :func:`validate`).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from rasa_sdk import Tracker
from sqlalchemy import func, select

from actions.refund_form import ActionRefundStart, ActionRefundStop, ValidateRefundForm
from actions.refund_questions import (
    ActionAskRefundAmount,
    ActionAskRefundConfirm,
    ActionAskRefundOrder,
    ActionAskRefundReason,
    ActionAskRefundReasonText,
)
from actions.refunds import ActionRefundStatus, ActionSubmitRefund, idempotency_key
from tests.actions.harness import Result, run, tracker
from ticketing.shop import customers
from ticketing.shop.refunds import flow as refunds
from ticketing.core.clock import utcnow
from ticketing.core.models import (
    Category,
    Customer,
    OrderState,
    RefundRequest,
    RefundState,
    Ticket,
)

SENDER = "telegram:5001"


def verified(session, make, *, language: str = "zh", external_id: str = "5001") -> Customer:
    customer = make.customer(language=language)
    customers.link_identity(session, channel="telegram", external_id=external_id,
                            customer_id=customer.id)
    return customer


def form(*, text: str, intent: str = "request_refund", requested: str = "order_id",
         language: str = "zh", entities: list[dict[str, Any]] | None = None,
         **slots: Any) -> Tracker:
    return tracker("refunds_form", slots={"language": language, **slots}, text=text,
                   intent=intent, entities=entities, requested_slot=requested,
                   active_loop="refund_form")


def validate(state: Tracker, **candidates: Any) -> Result:
    """Run the validator as Rasa does: candidates are slot events after the user message."""
    for name, value in candidates.items():
        state.events.append({"event": "slot", "name": name, "value": value,
                             "timestamp": time.time()})
        state.slots[name] = value
    return run(ValidateRefundForm(), state)


def submitted(*, language: str = "zh", **slots: Any) -> Tracker:
    return tracker("refunds_submitted", slots={"language": language, **slots})


def count_refunds(session) -> int:
    return session.scalar(select(func.count()).select_from(RefundRequest))


# --- the order decides the route ---------------------------------------------------------------
@pytest.mark.parametrize("language, words", [("zh", "全额退款"), ("en", "full refund")])
def test_unshipped_order_is_cancel_and_refund_with_the_full_amount(
        session, make, action_backend, language, words) -> None:
    customer = verified(session, make, language=language)
    order = make.order(customer=customer, state=OrderState.PAID)
    session.commit()
    result = validate(form(text=order.number, language=language), order_id=order.number)
    slots = result.slots()
    assert slots["refund_route"] == "cancel_and_refund"
    assert slots["refund_amount"] == order.paid_cents == slots["refund_refundable"]
    assert slots["requested_slot"] == "refund_reason"  # no amount question for a cancellation
    assert order.number in result.text and words in result.text


@pytest.mark.parametrize("language", ["zh", "en"])
def test_delivered_order_is_return_and_refund_and_asks_the_reason(
        session, make, action_backend, language) -> None:
    customer = verified(session, make, language=language)
    order = make.order(customer=customer, state=OrderState.DELIVERED)
    session.commit()
    result = validate(form(text=f"订单号 {order.number}", language=language),
                      order_id=f"订单号 {order.number}")
    slots = result.slots()
    assert slots["order_id"] == order.number  # normalised
    assert slots["refund_route"] == "return_and_refund" and slots["refund_amount"] is None
    assert slots["requested_slot"] == "refund_reason"
    assert ("七天无理由" in result.text) if language == "zh" else ("7-day" in result.text)


def test_cancelling_a_shipped_order_offers_return_and_refund(session, make, action_backend) -> None:
    customer = verified(session, make)
    order = make.order(customer=customer, state=OrderState.SHIPPED)
    session.commit()
    result = validate(form(text="取消订单", intent="cancel_order", refund_intent="cancel_order"),
                      order_id=order.number)
    assert "无法取消" in result.text and "退货退款" in result.text
    assert result.slots()["refund_route"] == "return_and_refund"
    assert result.slots()["requested_slot"] == "refund_reason"


@pytest.mark.parametrize("language", ["zh", "en"])
def test_nothing_to_refund_ends_the_form(session, make, action_backend, language) -> None:
    customer = verified(session, make, language=language)
    order = make.order(customer=customer, state=OrderState.CANCELLED)
    session.commit()
    result = validate(form(text=order.number, language=language), order_id=order.number)
    assert result.slots()["refund_route"] == "nothing_to_refund"
    assert result.slots()["requested_slot"] is None
    assert ("已取消" in result.text) if language == "zh" else ("cancelled" in result.text)


@pytest.mark.parametrize("language, state_word", [("zh", "审核中"), ("en", "under review")])
def test_refund_in_progress_is_explained_and_never_requested_again(
        session, make, action_backend, language, state_word) -> None:
    customer = verified(session, make, language=language)
    order = make.order(customer=customer, state=OrderState.DELIVERED)
    refunds.request_refund(session, customer_id=customer.id, order_number=order.number,
                           reason="changed_mind", amount_cents=None, method="original",
                           idempotency_key="earlier-run")
    session.commit()
    result = validate(form(text=order.number, language=language), order_id=order.number)
    assert state_word in result.text and result.slots()["requested_slot"] is None
    session.rollback()
    after = run(ActionSubmitRefund(), submitted(
        language=language, order_id=order.number, refund_route="refund_in_progress"))
    assert after.texts == [] and count_refunds(session) == 1


@pytest.mark.parametrize("language", ["zh", "en"])
def test_after_sales_route_opens_a_ticket_with_the_reason(
        session, make, action_backend, language) -> None:
    customer = verified(session, make, language=language)
    order = make.order(customer=customer, state=OrderState.DELIVERED,
                       delivered_at=utcnow() - timedelta(days=10))
    session.commit()
    checked = validate(form(text=order.number, language=language), order_id=order.number)
    assert checked.slots()["refund_route"] == "after_sales_ticket"
    session.rollback()
    reason = validate(form(text="/request_refund", requested="refund_reason",
                           language=language, order_id=order.number,
                           refund_route="after_sales_ticket"), refund_reason="quality")
    assert reason.slots()["requested_slot"] is None  # nothing more to ask: a person decides
    session.rollback()
    result = run(ActionSubmitRefund(), submitted(
        language=language, order_id=order.number, refund_route="after_sales_ticket",
        refund_reason="quality", refund_confirm=None))
    ticket = session.scalars(select(Ticket)).one()
    assert ticket.category is Category.QUALITY and ticket.order_id == order.id
    assert ticket.number in result.text and result.slots()["ticket_number"] == ticket.number
    assert count_refunds(session) == 0
    assert "pause" not in result.event_types()


# --- reason and amount --------------------------------------------------------------------------
@pytest.mark.parametrize("language, text, reason", [
    ("zh", "耳机左边没声音", "quality"), ("en", "it arrived damaged, the box was crushed", "damaged"),
    ("zh", "说不上来，就是感觉不对", "other"),
])
def test_typed_reasons_are_read_and_kept_for_the_agent(action_backend, language, text, reason) -> None:
    result = validate(form(text=text, requested="refund_reason", language=language,
                           order_id="2026112500009999", refund_route="return_and_refund"))
    slots = result.slots()
    assert slots["refund_reason"] == reason and slots["refund_reason_text"] == text
    # the next question is the amount (with every slot listed, Rasa itself picks it)
    assert slots.get("requested_slot", "refund_amount") == "refund_amount"


def test_other_reason_asks_for_the_customers_words(action_backend) -> None:
    base = {"order_id": "2026112500009999", "refund_route": "return_and_refund"}
    chosen = validate(form(text='/request_refund{"refund_reason": "other"}',
                           requested="refund_reason", **base), refund_reason="other")
    assert chosen.slots()["refund_reason"] == "other"
    # every domain slot is still required, so Rasa asks the first empty one: the words
    assert "refund_reason_text" not in chosen.slots() and "requested_slot" not in chosen.slots()
    words = validate(form(text="买完就降价了", requested="refund_reason_text",
                          refund_reason="other", **base), refund_reason_text="买完就降价了")
    assert words.slots()["refund_reason_text"] == "买完就降价了"
    assert words.slots().get("requested_slot", "refund_amount") == "refund_amount"
    asked = run(ActionAskRefundReasonText(), form(text="x", language="en"))
    assert "few words" in asked.text


def test_repeating_the_request_is_not_a_reason(action_backend) -> None:
    result = validate(form(text="我要退款", requested="refund_reason", order_id="2026112500009999",
                           refund_route="return_and_refund"))
    assert "refund_reason" not in result.slots()  # a rule asks the question again


def test_a_question_is_not_taken_as_a_reason(action_backend) -> None:
    result = validate(form(text="退货运费谁出", intent="refund_policy", requested="refund_reason",
                           refund_route="return_and_refund"))
    assert "refund_reason" not in result.slots()  # Rasa rejects the form; the rules answer


@pytest.mark.parametrize("language", ["zh", "en"])
def test_amount_above_refundable_is_refused_and_asked_again(action_backend, language) -> None:
    state = form(text="退500", requested="refund_amount", language=language,
                 entities=[{"entity": "amount", "value": "500"}], order_id="2026112500009999",
                 refund_route="return_and_refund", refund_refundable=19900, refund_reason="quality")
    result = validate(state, refund_amount="500")
    assert result.slots()["refund_amount"] is None
    assert "¥199.00" in result.text
    assert ("金额不正确" in result.text) if language == "zh" else ("not valid" in result.text)


def test_full_amount_by_words_or_yes(action_backend) -> None:
    for text, intent in (("全额退款", "request_refund"), ("好的", "affirm")):
        result = validate(form(text=text, intent=intent, requested="refund_amount",
                               order_id="2026112500009999", refund_route="return_and_refund",
                               refund_refundable=19900, refund_reason="quality"))
        assert result.slots()["refund_amount"] == 19900
        assert result.slots()["requested_slot"] == "refund_confirm"


def test_part_amount_typed_without_entity(action_backend) -> None:
    result = validate(form(text="50元", requested="refund_amount", order_id="2026112500009999",
                           refund_route="return_and_refund", refund_refundable=19900,
                           refund_reason="quality"))
    assert result.slots()["refund_amount"] == 5000


def test_a_stray_number_past_the_order_question_is_an_amount_not_an_order(action_backend) -> None:
    number = "2026112500009999"
    state = tracker("refunds_form", text="just refund me 50 please", intent="request_refund",
                    entities=[{"entity": "order_id", "value": "50"}],  # a real NLU misread
                    events=[{"event": "slot", "name": "order_id", "value": number}],
                    slots={"language": "en", "order_id": number, "refund_route": "return_and_refund",
                           "refund_refundable": 19900, "refund_reason": "quality"},
                    requested_slot="refund_amount", active_loop="refund_form")
    result = validate(state, order_id="50")
    assert result.slots()["order_id"] == number and result.slots()["refund_amount"] == 5000
    assert result.texts == []


# --- who may see what ---------------------------------------------------------------------------
@pytest.mark.parametrize("language", ["zh", "en"])
def test_another_customers_order_is_not_found_and_nothing_leaks(
        session, make, action_backend, language) -> None:
    verified(session, make, language=language)
    stranger = make.customer(name="李四")
    product = make.product(name_zh="机械键盘", name_en="Mechanical Keyboard")
    theirs = make.order(customer=stranger, state=OrderState.DELIVERED, product=product)
    session.commit()
    result = validate(form(text=theirs.number, language=language), order_id=theirs.number)
    assert result.slots()["order_id"] is None and "refund_route" not in result.slots()
    assert ("没有找到这个订单" in result.text) if language == "zh" else ("could not find" in result.text)
    assert "键盘" not in result.text and "Keyboard" not in result.text
    assert "199" not in result.text


@pytest.mark.parametrize("language", ["zh", "en"])
def test_unverified_visitor_is_refused(session, make, action_backend, language) -> None:
    order = make.order(customer=make.customer(), state=OrderState.PAID)
    session.commit()
    state = form(text=order.number, language=language, verified=False)
    state.sender_id = "widget:anon-9"
    result = validate(state, order_id=order.number)
    assert result.responses == ["utter_verify_first"]
    assert result.slots()["refund_route"] == "unverified" and result.slots()["requested_slot"] is None
    assert order.number not in result.text
    status = run(ActionRefundStatus(), tracker(sender_id="widget:anon-9", text="退款进度",
                                                intent="refund_status"))
    assert status.responses == ["utter_verify_first"]
    session.rollback()
    submit = run(ActionSubmitRefund(), tracker(
        "refunds_submitted", sender_id="widget:anon-9",
        slots={"order_id": order.number, "refund_route": "cancel_and_refund",
               "refund_reason": "changed_mind", "refund_amount": order.paid_cents}))
    assert submit.responses == ["utter_verify_first"] and count_refunds(session) == 0


# --- submitting ---------------------------------------------------------------------------------
@pytest.mark.parametrize("language, words", [("zh", "已取消"), ("en", "cancelled")])
def test_cancel_submits_refunds_at_once_and_clears_the_form(
        session, make, action_backend, language, words) -> None:
    customer = verified(session, make, language=language)
    order = make.order(customer=customer, state=OrderState.PAID)
    session.commit()
    result = run(ActionSubmitRefund(), submitted(
        language=language, order_id=order.number, refund_route="cancel_and_refund",
        refund_reason="changed_mind", refund_amount=order.paid_cents))
    refund = session.scalars(select(RefundRequest)).one()
    assert refund.state is RefundState.DONE and refund.method.value == "original"
    session.refresh(order)
    assert order.state is OrderState.CANCELLED
    assert words in result.text and "¥199.00" in result.text
    assert all(result.slots()[name] is None for name in ("refund_route", "refund_amount",
                                                        "refund_confirm", "refund_run"))


@pytest.mark.parametrize("language", ["zh", "en"])
def test_double_confirmation_refunds_once(session, make, action_backend, language) -> None:
    customer = verified(session, make, language=language)
    order = make.order(customer=customer, state=OrderState.DELIVERED)
    session.commit()
    state = {"language": language, "order_id": order.number, "refund_amount": 9900,
             "refund_route": "return_and_refund", "refund_reason": "wrong_size"}
    first = run(ActionSubmitRefund(), submitted(**state))
    second = run(ActionSubmitRefund(), submitted(**state))
    refund = session.scalars(select(RefundRequest)).one()
    assert refund.state is RefundState.UNDER_REVIEW and refund.amount_cents == 9900
    assert first.text == second.text and "¥99.00" in first.text
    assert ("审核" in first.text) if language == "zh" else ("review" in first.text)


def test_a_new_form_run_gets_a_new_key() -> None:
    one = submitted(order_id="2026112500000001")
    two = submitted(order_id="2026112500000001", refund_run="1764039999.0")
    assert idempotency_key(one, "2026112500000001") != idempotency_key(two, "2026112500000001")
    one.slots["refund_run"] = None  # without the slot the form's own start message is used
    assert idempotency_key(one, "x") == idempotency_key(submitted(refund_run=None), "x")


def test_nothing_is_requested_without_a_yes(session, make, action_backend) -> None:
    customer = verified(session, make)
    order = make.order(customer=customer, state=OrderState.PAID)
    session.commit()
    run(ActionSubmitRefund(), submitted(order_id=order.number, refund_route="cancel_and_refund",
                                        refund_reason="changed_mind",
                                        refund_amount=order.paid_cents, refund_confirm=None))
    assert count_refunds(session) == 0


@pytest.mark.parametrize("language", ["zh", "en"])
def test_stop_clears_the_form(language) -> None:
    result = run(ActionRefundStop(), form(text="算了", intent="deny", language=language))
    assert result.slots()["requested_slot"] is None and "active_loop" in result.event_types()
    assert ("没有提交" in result.text) if language == "zh" else ("nothing was requested" in result.text)


def test_start_forgets_the_last_run_but_keeps_a_named_order() -> None:
    fresh = run(ActionRefundStart(), tracker(slots={"order_id": "2026112500000001",
                                                    "refund_reason": "quality"},
                                             text="取消订单", intent="cancel_order"))
    slots = fresh.slots()
    assert slots["order_id"] is None and slots["refund_reason"] is None
    assert slots["refund_intent"] == "cancel_order" and float(slots["refund_run"]) > 0
    named = run(ActionRefundStart(), tracker(text="2026112500000001 退款", intent="request_refund",
                                             entities=[{"entity": "order_id",
                                                        "value": "2026112500000001"}]))
    assert "order_id" not in named.slots()


# --- the questions ------------------------------------------------------------------------------
def test_questions_offer_buttons(session, make, action_backend) -> None:
    customer = verified(session, make)
    order = make.order(customer=customer, state=OrderState.DELIVERED)
    session.commit()
    orders_asked = run(ActionAskRefundOrder(), form(text="我要退款"))
    assert orders_asked.buttons[0]["payload"] == f'/request_refund{{"order_id": "{order.number}"}}'
    assert "无线蓝牙耳机" in orders_asked.buttons[0]["title"]
    reasons = run(ActionAskRefundReason(), form(text="x", language="en"))
    assert {"title": "Quality problem",
            "payload": '/request_refund{"refund_reason": "quality"}'} in reasons.buttons
    amount = run(ActionAskRefundAmount(), form(text="x", refund_refundable=19900))
    assert amount.buttons == [{"title": "全额退款 ¥199.00",
                               "payload": '/request_refund{"amount": "199.00"}'}]
    session.rollback()
    confirm = run(ActionAskRefundConfirm(), form(
        text="x", order_id=order.number, refund_route="return_and_refund",
        refund_reason="wrong_size", refund_amount=19900))
    assert "尺码/规格不合适" in confirm.text and "支付宝" in confirm.text
    assert [b["payload"] for b in confirm.buttons] == ["/affirm", "/deny"]


# --- failures -----------------------------------------------------------------------------------
def test_backend_failure_in_the_form_apologises(session, make, action_backend, monkeypatch) -> None:
    customer = verified(session, make)
    order = make.order(customer=customer, state=OrderState.PAID)
    session.commit()

    def broken(*_a, **_k):
        raise RuntimeError("database exploded")

    monkeypatch.setattr(refunds, "check_eligibility", broken)
    result = validate(form(text=order.number), order_id=order.number)
    assert "抱歉" in result.text and "exploded" not in result.text
    assert result.slots()["requested_slot"] is None and "pause" in result.event_types()
