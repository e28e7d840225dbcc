"""The refund form (request_refund, cancel_order): order → reason → amount → confirm.

The order decides the route before anything else is asked (rules §REF-4, ``refunds.check_eligibility``):
an unshipped order is cancelled with a full refund (no amount question), shipped or delivered
goods go to return-and-refund, an order outside the rules only needs a reason for its
after-sales ticket, and an order with nothing to refund or a refund already under way ends
the form with the explanation. ``action_submit_refund`` (actions/refunds.py) acts on the result.

The validator is a rasa_sdk ``FormValidationAction`` (Rasa calls it between turns) with the
base class's error path (``actions.base.Guarded``): database work in a worker thread inside
one unit of work, ``KefuError`` explained in the customer's language, anything else → apology
+ ticket, and the form ends.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import REQUESTED_SLOT

from actions import refund_input
from actions.base import EventList, Guarded, Turn, language_of
from ticketing.shop import orders
from ticketing.shop.refunds import flow as refunds
from ticketing.core.errors import InvalidAmount, InvalidOrderNumber, KefuError, ValidationError
from ticketing.core.i18n import Text
from ticketing.core.money import format_amount, parse_amount
from ticketing.shop.refunds.rules import (
    Eligibility,
    RefundReason,
    Route,
    check_amount,
    parse_reason,
)

FORM = "refund_form"
# Filled by the customer, then by the validator; all cleared when a run ends.
FORM_SLOTS = ("refund_reason", "refund_reason_text", "refund_amount", "refund_confirm",
              "refund_route", "refund_refundable", "refund_intent", "refund_run")
UNVERIFIED = "unverified"  # a refund_route value of ours: the form stops, nothing is shown
STOP_ROUTES = (Route.NOTHING_TO_REFUND.value, Route.REFUND_IN_PROGRESS.value, UNVERIFIED)

ORDER_HEAD = Text("订单 {number}：", "Order {number}: ")
CANNOT_CANCEL = Text("订单 {number} {state}，已经无法取消了。",
                     "Order {number} is {state}, so it can no longer be cancelled. ")
RETURN_OFFER = Text("如需退货退款，请继续选择原因；不需要的话回复“算了”。",
                    " If you'd like to return it for a refund instead, pick a reason below; "
                    "otherwise say \"never mind\".")
UNPAID_CANCEL = Text("订单 {number} 还未付款，不涉及退款：超时未付款的订单会自动取消，"
                     "您也可以在商城“我的订单”里直接取消。",
                     "Order {number} hasn't been paid, so there is nothing to refund: unpaid "
                     "orders are cancelled automatically after a while, or you can cancel it "
                     "yourself under \"My orders\" in the shop.")
IN_PROGRESS_HINT = Text("想了解最新进度，随时问我“退款进度”。",
                        " Ask me \"refund status\" any time for the latest.")
UNKNOWN_REASON = Text("抱歉，没能识别这个原因，请从下面的选项中选择。",
                      "Sorry, I didn't recognise that reason; please pick one of the options.")
AMOUNT_LIMIT = Text("这个订单可退金额为 {amount}，请输入不超过它的金额，或选择全额退款。",
                    " This order can be refunded up to {amount}; please enter an amount up to "
                    "that, or choose the full amount.")
STOPPED = Text("好的，这次先不办理了，没有提交任何申请，订单也没有变化。需要的话随时找我。",
               "OK, I've stopped: nothing was requested and your order is unchanged. "
               "Just ask whenever you need me.")
def clear_form_slots() -> EventList:
    return [SlotSet(name, None) for name in FORM_SLOTS]


def latest_user_stamp(tracker: Tracker) -> float | None:
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            return event.get("timestamp")
    return None


def _earlier_value(tracker: Tracker, name: str) -> Any:
    """A slot's value before the latest user message (the tracker already holds the new one)."""
    before = False
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            before = True
        elif before and event.get("event") == "slot" and event.get("name") == name:
            return event.get("value")
    return None


def _entity(tracker: Tracker, name: str) -> Any:
    return next(tracker.get_latest_entity_values(name), None)


def _typed(tracker: Tracker) -> str:
    """What the customer typed now; '' for a button payload."""
    text = (tracker.latest_message or {}).get("text") or ""
    return "" if text.startswith("/") else text.strip()


def _intent(tracker: Tracker) -> str | None:
    return ((tracker.latest_message or {}).get("intent") or {}).get("name")


class ActionRefundStart(Action):
    """Begins a form run: clean slots, which intent started it, and the run's stamp.

    The stamp (the starting message's timestamp) makes the idempotency key of the refund
    this run may submit: a retried submission of the same run can never refund twice.
    """

    def name(self) -> str:
        return "action_refund_start"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> EventList:
        intent = _intent(tracker)
        events = clear_form_slots()
        events += [SlotSet("refund_intent", "cancel_order" if intent == "cancel_order"
                           else "request_refund"),
                   SlotSet("refund_run", str(latest_user_stamp(tracker) or ""))]
        if _entity(tracker, "order_id") is None:
            events.append(SlotSet("order_id", None))  # an order from earlier is asked again
        return events


class ActionRefundStop(Action):
    """"算了" / "no" during the form: nothing is requested, the form ends."""

    def name(self) -> str:
        return "action_refund_stop"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> EventList:
        dispatcher.utter_message(text=STOPPED.get(language_of(tracker)))
        return [ActiveLoop(None), SlotSet(REQUESTED_SLOT, None), *clear_form_slots()]


class ValidateRefundForm(Guarded, FormValidationAction):
    def name(self) -> str:
        return "validate_refund_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> EventList:
        return await self.recovering(dispatcher, tracker, super().run(dispatcher, tracker, domain))

    def on_failed(self) -> EventList:
        return [SlotSet(REQUESTED_SLOT, None)]  # the form ends with the apology

    async def required_slots(self, domain_slots: list[str], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: dict[str, Any]) -> list[str]:
        """What is left to ask depends on the route the order takes."""
        route = tracker.get_slot("refund_route")
        if route == UNVERIFIED:
            return []
        slots = ["order_id"]
        if route in STOP_ROUTES:
            return slots
        slots.append("refund_reason")
        if tracker.get_slot("refund_reason") == RefundReason.OTHER.value:
            slots.append("refund_reason_text")
        if route == Route.AFTER_SALES_TICKET.value:
            return slots
        return slots + ["refund_amount", "refund_confirm"]

    # --- reading typed answers (buttons arrive as entities through the domain mappings) ------
    async def extract_order_id(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                               domain: dict[str, Any]) -> dict[str, Any]:
        if tracker.get_slot(REQUESTED_SLOT) != "order_id" or _entity(tracker, "order_id"):
            return {}
        number = refund_input.order_number_in_text(_typed(tracker))
        return {"order_id": number} if number else {}

    async def extract_refund_reason(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                    domain: dict[str, Any]) -> dict[str, Any]:
        if tracker.get_slot(REQUESTED_SLOT) != "refund_reason" or _entity(tracker, "refund_reason"):
            return {}
        text = _typed(tracker)
        if not text or _intent(tracker) == "deny":
            return {}
        code, _ = refund_input.reason_from_text(text)
        intent = _intent(tracker)
        if code is None and (intent in refund_input.FREE_TEXT_INTENTS or (
                intent in refund_input.REQUEST_INTENTS and refund_input.says_something(text))):
            code = RefundReason.OTHER.value
        return {"refund_reason": code} if code else {}

    async def extract_refund_amount(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                    domain: dict[str, Any]) -> dict[str, Any]:
        if tracker.get_slot(REQUESTED_SLOT) != "refund_amount" or _entity(tracker, "amount"):
            return {}
        text = _typed(tracker)
        if _intent(tracker) == "affirm" or refund_input.wants_full_amount(text):
            return {"refund_amount": refund_input.FULL}
        typed = refund_input.amount_in_text(text)
        return {"refund_amount": typed} if typed else {}

    # --- validating -------------------------------------------------------------------------
    async def validate_order_id(self, value: Any, dispatcher: CollectingDispatcher,
                                tracker: Tracker, domain: dict[str, Any]) -> dict[str, Any]:
        earlier = _earlier_value(tracker, "order_id")
        if tracker.get_slot("refund_route") and tracker.get_slot(REQUESTED_SLOT) != "order_id":
            # Past the order question a stray number ("退50块" read as an order) changes nothing;
            # a real, different order number starts over from that order.
            try:
                if orders.parse_order_number(str(value)) == earlier:
                    return {"order_id": earlier}
            except InvalidOrderNumber:
                return {"order_id": earlier}
        raw = str(value)
        return await asyncio.to_thread(self.in_turn, dispatcher, tracker, domain,
                                       lambda turn: _check_order(turn, raw),
                                       refused=lambda _error: {"order_id": None})

    def validate_refund_reason(self, value: Any, dispatcher: CollectingDispatcher,
                               tracker: Tracker, domain: dict[str, Any]) -> dict[str, Any]:
        language = language_of(tracker)
        try:
            reason = parse_reason(str(value))
        except ValidationError:
            dispatcher.utter_message(text=UNKNOWN_REASON.get(language))
            return {"refund_reason": None}
        slots: dict[str, Any] = {"refund_reason": reason.value}
        typed = _typed(tracker)
        if typed and refund_input.reason_from_text(typed) != (reason.value, False):
            slots["refund_reason_text"] = typed[:1000]  # the customer's words, for the agent
        return slots

    def validate_refund_reason_text(self, value: Any, dispatcher: CollectingDispatcher,
                                    tracker: Tracker, domain: dict[str, Any]) -> dict[str, Any]:
        text = str(value or "").strip()
        if text.startswith("/"):  # a button from an earlier question, not words
            return {"refund_reason_text": None}
        return {"refund_reason_text": text[:1000] or None}

    def validate_refund_amount(self, value: Any, dispatcher: CollectingDispatcher,
                               tracker: Tracker, domain: dict[str, Any]) -> dict[str, Any]:
        language = language_of(tracker)
        refundable = int(tracker.get_slot("refund_refundable") or 0)
        route = tracker.get_slot("refund_route") or Route.RETURN_AND_REFUND.value
        try:
            if value == refund_input.FULL:
                cents = refundable
            elif isinstance(value, int) and not isinstance(value, bool):
                cents = value  # set by the validator itself (a cancellation is all or nothing)
            else:
                cents = parse_amount(str(value))
            limits = Eligibility(str(tracker.get_slot("order_id")), Route(route), refundable,
                                 Text("", ""))
            return {"refund_amount": check_amount(cents, limits)}
        except (InvalidAmount, ValueError) as exc:
            reason = exc.text(language) if isinstance(exc, KefuError) else ""
            dispatcher.utter_message(
                text=reason + AMOUNT_LIMIT.get(language, amount=format_amount(refundable)))
            return {"refund_amount": None}

    def validate_refund_confirm(self, value: Any, dispatcher: CollectingDispatcher,
                                tracker: Tracker, domain: dict[str, Any]) -> dict[str, Any]:
        return {"refund_confirm": True if value is True else None}


def _check_order(turn: Turn, raw: str) -> dict[str, Any]:
    """Route the order and explain it; an order that cannot take a request ends the form."""
    customer = turn.require_customer()
    if customer is None:  # never show an order to an anonymous visitor
        return {"order_id": None, "refund_route": UNVERIFIED}
    number = orders.parse_order_number(raw)
    eligibility = refunds.check_eligibility(turn.session, customer_id=customer.id,
                                            order_number=number,
                                            timezone=turn.backend.timezone)
    route = eligibility.route
    cancelling = turn.slot("refund_intent") == "cancel_order"
    if cancelling and route is not Route.CANCEL_AND_REFUND:
        order = orders.get_order(turn.session, customer_id=customer.id, number=number)
        if order.paid_cents <= 0 and route is Route.NOTHING_TO_REFUND:
            turn.say(UNPAID_CANCEL, number=number)
        elif route in (Route.RETURN_AND_REFUND, Route.AFTER_SALES_TICKET):
            state = orders.state_name(order.state, language=turn.language)
            offer = RETURN_OFFER.get(turn.language) if route is Route.RETURN_AND_REFUND else ""
            turn.say(CANNOT_CANCEL.get(turn.language, number=number, state=state)
                     + eligibility.explanation.get(turn.language) + offer)
        else:
            turn.say(ORDER_HEAD.get(turn.language, number=number)
                     + eligibility.explanation.get(turn.language))
    else:
        hint = IN_PROGRESS_HINT.get(turn.language) if route is Route.REFUND_IN_PROGRESS else ""
        turn.say(ORDER_HEAD.get(turn.language, number=number)
                 + eligibility.explanation.get(turn.language) + hint)
    full = eligibility.refundable_cents if route is Route.CANCEL_AND_REFUND else None
    return {"order_id": number, "refund_route": route.value,
            "refund_refundable": eligibility.refundable_cents,
            "refund_amount": full, "refund_confirm": None}
