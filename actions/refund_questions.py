"""The refund form's questions: Rasa runs ``action_ask_refund_form_<slot>`` for each slot.

Each question offers buttons so the customer can click rather than type: their recent orders,
the reasons of ``refund_rules``, the full refundable amount, and yes/no on a summary that
names order, reason, amount and method (rules §REF-3: all three explicit before anything happens).
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import order_choice, refund_input
from actions.base import EventList, KefuAction, Turn, language_of
from ticketing.shop import orders
from ticketing.core.i18n import Text
from ticketing.core.money import format_amount
from ticketing.shop.refunds.rules import Route, reason_label

ASK_ORDER = {
    "request_refund": Text("请选择要退款的订单，或直接发送订单号：",
                           "Which order is the refund for? Pick one below or type the order number:"),
    "cancel_order": Text("请选择要取消的订单，或直接发送订单号：",
                         "Which order would you like to cancel? Pick one below or type the order number:"),
}
NO_ORDERS = Text("您的账号下暂时没有查到订单。请发送订单号（16–19位数字）；不办了回复“算了”就好。",
                 "I can't see any orders on your account. Please type the order number "
                 "(16–19 digits), or say \"never mind\" to stop.")
ASK_REASON = {
    "request_refund": Text("请选择退款原因（也可以直接说明情况）：",
                           "What's the reason? Pick one, or tell me in your own words:"),
    "cancel_order": Text("请问取消的原因是？", "Why would you like to cancel?"),
    Route.AFTER_SALES_TICKET.value: Text(
        "请选择原因（也可以直接描述问题），我来为您创建售后工单：",
        "What's the problem? Pick a reason or describe it, and I'll open the after-sales ticket:"),
}
ASK_AMOUNT = Text("这个订单最多可退 {amount}。全额退款，还是只退一部分？部分退款请直接输入金额（例如 50）。",
                  "You can get up to {amount} back for this order. The full amount, or part of "
                  "it? For part, type the amount (e.g. 50).")
CONFIRM = Text(
    "请确认：\n订单号：{number}\n办理方式：{kind}\n退款原因：{reason}\n退款金额：{amount}\n"
    "退款方式：原路退回（{method}）\n确认提交吗？",
    "Please confirm:\nOrder number: {number}\nRequest: {kind}\nReason: {reason}\n"
    "Amount: {amount}\nRefund to: {method} (original payment method)\nShall I submit it?",
)
KIND_LABELS = {
    Route.CANCEL_AND_REFUND.value: Text("取消订单并退款", "cancel the order and refund"),
    Route.RETURN_AND_REFUND.value: Text("退货退款（审核通过后寄回商品）",
                                        "return and refund (send the goods back once approved)"),
}
PAYMENT_LABELS = {"alipay": Text("支付宝", "Alipay"), "wechat": Text("微信支付", "WeChat Pay"),
                  "card": Text("银行卡", "bank card")}
PAYMENT_DEFAULT = Text("原支付账户", "your original payment account")


def payment_label(method: str | None, language: str) -> str:
    """How the customer paid, in standard terms (rules §TERMS-1): where the money goes back to."""
    return PAYMENT_LABELS.get(method or "", PAYMENT_DEFAULT).get(language)


# --- asking (Rasa runs action_ask_<form>_<slot> for the requested slot) ------------------------
class ActionAskRefundOrder(KefuAction):
    """Which order? The customer's recent orders as buttons, or how to type the number."""

    def name(self) -> str:
        return "action_ask_refund_form_order_id"

    def act(self, turn: Turn) -> EventList:
        customer = turn.require_customer()
        if customer is None:
            return []
        intent = turn.slot("refund_intent") or "request_refund"
        recent = orders.recent_orders(turn.session, customer_id=customer.id,
                                      limit=order_choice.MAX_BUTTONS)
        buttons = [order_choice.order_button(turn, order, intent=intent) for order in recent]
        if buttons:
            turn.say(ASK_ORDER.get(intent, ASK_ORDER["request_refund"]), buttons=buttons)
        else:
            turn.say(NO_ORDERS)
        return []


class ActionAskRefundReason(Action):
    """The reasons of ``refund_rules`` as buttons; typed words are read too."""

    def name(self) -> str:
        return "action_ask_refund_form_refund_reason"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> EventList:
        language = language_of(tracker)
        intent = tracker.get_slot("refund_intent") or "request_refund"
        route = tracker.get_slot("refund_route")
        if route == Route.AFTER_SALES_TICKET.value:
            question = ASK_REASON[route]
        elif intent == "cancel_order" and route == Route.CANCEL_AND_REFUND.value:
            question = ASK_REASON["cancel_order"]
        else:  # a refund, or a cancellation that became a return because the order shipped
            question = ASK_REASON["request_refund"]
        dispatcher.utter_message(text=question.get(language),
                                 buttons=refund_input.reason_buttons(language, intent=intent))
        return []


ASK_REASON_TEXT = Text("请简单说一下具体原因，我会转给处理的客服。",
                       "Could you tell me in a few words what the reason is? It goes to the "
                       "agent who handles your request.")


class ActionAskRefundReasonText(Action):
    """"Other reason" needs the customer's words (refund_rules.check_reason_text)."""

    def name(self) -> str:
        return "action_ask_refund_form_refund_reason_text"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> EventList:
        dispatcher.utter_message(text=ASK_REASON_TEXT.get(language_of(tracker)))
        return []


class ActionAskRefundAmount(Action):
    """How much, defaulting to everything still refundable (one button)."""

    def name(self) -> str:
        return "action_ask_refund_form_refund_amount"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> EventList:
        language = language_of(tracker)
        refundable = int(tracker.get_slot("refund_refundable") or 0)
        dispatcher.utter_message(
            text=ASK_AMOUNT.get(language, amount=format_amount(refundable)),
            buttons=[refund_input.full_amount_button(refundable, language)])
        return []


class ActionAskRefundConfirm(KefuAction):
    """Everything the request will say (rules §REF-3: reason, amount, method), then yes or no."""

    def name(self) -> str:
        return "action_ask_refund_form_refund_confirm"

    def act(self, turn: Turn) -> EventList:
        customer = turn.require_customer()
        if customer is None:
            return []
        order = orders.get_order(turn.session, customer_id=customer.id,
                                 number=str(turn.slot("order_id")))
        route = turn.slot("refund_route") or Route.RETURN_AND_REFUND.value
        kind = KIND_LABELS.get(route, KIND_LABELS[Route.RETURN_AND_REFUND.value])
        turn.say(CONFIRM, buttons=refund_input.confirm_buttons(turn.language),
                 number=order.number, kind=kind.get(turn.language),
                 reason=reason_label(str(turn.slot("refund_reason")), turn.language),
                 amount=format_amount(int(turn.slot("refund_amount") or 0)),
                 method=payment_label(order.payment_method, turn.language))
        return []
