"""After the refund form, and the refund questions around it (rules §REF-1, §REF-2).

- ``action_submit_refund``: the confirmed request goes to ``refunds.request_refund`` with an
  idempotency key made of the conversation and the form run, so a retried submission returns
  the same request instead of refunding twice; an order outside the rules becomes an
  after-sales ticket. The customer hears the outcome, the next step and when money arrives.
- ``action_refund_status``: the customer's refunds in plain words (one order when named).
- ``action_refund_policy``: the rules from ``refund_rules``, and the named product's or order's
  own answer.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet

from actions.base import EventList, KefuAction, Turn
from actions.handoff import transcript_from
from actions.refund_form import FORM, STOP_ROUTES, clear_form_slots, latest_user_stamp
from actions.refund_questions import payment_label
from ticketing.desk import after_sales, sla
from ticketing.shop import catalog, orders
from ticketing.shop.refunds import flow as refunds
from ticketing.core.clock import utcnow
from ticketing.core.errors import KefuError, NotEligible, RefundInProgress
from ticketing.core import local_time
from ticketing.core.i18n import Text
from ticketing.core.models import (
    Customer,
    Order,
    OrderState,
    Product,
    RefundKind,
    RefundMethod,
    RefundRequest,
    RefundState,
)
from ticketing.core.money import format_amount
from ticketing.shop.refunds.rules import (
    NO_REASON_RETURN_DAYS,
    REASON_LABELS,
    SELLER_FAULT_REASONS,
    STATE_LABELS,
    RefundReason,
    Route,
    explain_refund,
    reason_label,
)

ARRIVAL_WORKING_DAYS = 3  # "1–3 working days", as orders.explain_state tells customers

CANCELLED = Text(
    "订单 {number} 已取消，{amount} 已原路退回您的{method}，一般 1–3 个工作日到账。",
    "Order {number} is cancelled and {amount} has been refunded to your {method}; it usually "
    "arrives within 1–3 working days.",
)
SUBMITTED = Text(
    "退货退款申请已提交：订单 {number}，{amount}，原因：{reason}。\n接下来：客服会尽快审核，"
    "结果会在这里通知您；审核通过后请{goods}，我们收到退货后原路退回您的{method}，一般 1–3 "
    "个工作日到账。想看进度随时问我“退款进度”。",
    "Your return-and-refund request is in: order {number}, {amount}, reason: {reason}.\n"
    "Next: an agent reviews it shortly and you'll hear the result here. Once approved, "
    "{goods}; when the goods reach us, the money goes back to your {method}, usually within "
    "1–3 working days. Ask me \"refund status\" any time.",
)
GOODS_IN_TRANSIT = Text("拒收包裹或寄回商品", "refuse the parcel or send the goods back")
GOODS_DELIVERED = Text("按提示寄回商品", "send the goods back as instructed")
AFTER_SALES_OPENED = Text(
    "已为您创建售后工单 {number}，售后客服会在 {deadline} 前联系您（{within}内），"
    "处理结果也会在这里通知您。",
    "I've opened after-sales ticket {number}; our after-sales team will contact you by "
    "{deadline} (within {within}) and you'll hear the outcome here.",
)

NO_REFUNDS = Text("您目前没有退款申请。需要退款的话直接说“我要退款”。",
                  "You have no refund requests. Say \"I want a refund\" to start one.")
NO_REFUNDS_FOR_ORDER = Text("订单 {number} 没有退款申请。",
                            "There is no refund request for order {number}.")
STATUS_HEAD = Text("您的退款进度：", "Your refunds:")
STATUS_LINE = Text("· 订单 {number}（{state}）：{explanation}{arrival}",
                   "· Order {number} ({state}): {explanation}{arrival}")
MORE_REFUNDS = Text("（仅显示最近 {shown} 笔，查询某个订单请发订单号。）",
                    "(Showing the latest {shown}; send an order number to see one order.)")
ARRIVAL = {
    RefundState.APPLIED: Text("", ""),
    RefundState.UNDER_REVIEW: Text(
        "审核通过后寄回商品，我们收到退货后一般 1–3 个工作日退回。",
        " Once approved, send the goods back; the money follows within 1–3 working days of "
        "their arrival."),
    RefundState.PROCESSING: Text("我们收到退货后一般 1–3 个工作日到账。",
                                 " It arrives within 1–3 working days of the goods reaching us."),
    RefundState.REJECTED: Text("如有疑问可以转人工客服。",
                               " If you disagree, ask for an agent."),
}
ARRIVES_BY = Text("预计 {date} 前到账。", " It should arrive by {date}.")
ARRIVED = Text("应已到账；如果还没收到，请转人工客服帮您核查。",
               " It should have arrived; if not, ask for an agent and we'll check.")

POLICY = Text(
    "本店退换货规则：\n"
    "· 未发货：可以直接取消订单，全额原路退款，一般 1–3 个工作日到账。\n"
    "· 已发货/已签收：签收后 {days} 天内支持无理由退货退款（标明不支持七天无理由退货的商品除外），"
    "审核通过后寄回商品，我们收到退货后原路退款。\n"
    "· {faults}：由售后客服处理，超过 {days} 天或商品不支持无理由退货也可以申请，请保留商品和照片。\n"
    "· 退货运费：质量问题由本店承担；无理由退货的寄回运费由您承担。\n"
    "· 退款金额不超过实付金额，原路退回。\n"
    "需要办理的话直接说“我要退款”。",
    "Our return and refund rules:\n"
    "· Not shipped yet: cancel the order for a full refund to your original payment method, "
    "usually within 1–3 working days.\n"
    "· Shipped or delivered: return it for a refund within {days} days of delivery, no reason "
    "needed (except products marked as excluded from 7-day no-reason returns). Once approved, "
    "send the goods back and we refund as soon as they arrive.\n"
    "· {faults}: handled by our after-sales team, even after {days} days or for excluded "
    "products; please keep the goods and take photos.\n"
    "· Return postage: we pay for quality problems; for no-reason returns it is yours.\n"
    "· Refunds never exceed what you paid and go back the way you paid.\n"
    "Say \"I want a refund\" to start one.",
)
PRODUCT_RETURNABLE = Text("{name}：支持 {days} 天无理由退货。",
                          "{name}: {days}-day no-reason returns accepted.")
PRODUCT_EXCLUDED = Text("{name}：不支持 {days} 天无理由退货，质量问题仍可申请售后。",
                        "{name}: excluded from {days}-day no-reason returns; quality problems "
                        "are still covered.")
PRODUCT_UNKNOWN = Text("没有找到“{query}”这个商品，下面是通用的规则。",
                       "I couldn't find a product called \"{query}\"; here are the general rules.")
ORDER_POLICY = Text("订单 {number}：{explanation}", "Order {number}: {explanation}")
VERIFY_FOR_ORDER = Text("查看具体订单能否退款需要先验证身份。",
                        "To check a specific order I need to verify you first.")


def _form_start_stamp(tracker: Tracker) -> float | None:
    """The timestamp of the message that started the latest refund form run."""
    started = False
    for event in reversed(tracker.events):
        if event.get("event") == "active_loop" and event.get("name") == FORM:
            started = True
        elif started and event.get("event") == "user":
            return event.get("timestamp")
    return None


def idempotency_key(tracker: Tracker, order_number: str) -> str:
    """One key per conversation, form run and order: a replayed submit finds its request."""
    run = tracker.get_slot("refund_run") or _form_start_stamp(tracker) or latest_user_stamp(tracker)
    digest = hashlib.sha256(f"{tracker.sender_id}|{run}|{order_number}".encode()).hexdigest()
    return f"chat-{digest[:40]}"


class ActionSubmitRefund(KefuAction):
    """The end of a refund form run: request, after-sales ticket, or nothing (always cleared)."""

    def name(self) -> str:
        return "action_submit_refund"

    def act(self, turn: Turn) -> EventList:
        route = turn.slot("refund_route")
        if route is None or route in STOP_ROUTES:
            return clear_form_slots()  # already explained while validating the order
        customer = turn.require_customer()
        if customer is None:
            return clear_form_slots()
        if route == Route.AFTER_SALES_TICKET.value:
            return self._after_sales(turn, customer) + clear_form_slots()
        if turn.slot("refund_confirm") is not True:
            return clear_form_slots()
        return self._request(turn, customer) + clear_form_slots()

    def on_refused(self, error: KefuError, tracker: Tracker) -> EventList:
        return clear_form_slots()

    def _request(self, turn: Turn, customer: Customer) -> EventList:
        number = str(turn.slot("order_id"))
        reason = str(turn.slot("refund_reason"))
        try:
            refund = refunds.request_refund(
                turn.session, customer_id=customer.id, order_number=number, reason=reason,
                amount_cents=int(turn.slot("refund_amount")), method=RefundMethod.ORIGINAL,
                idempotency_key=idempotency_key(turn.tracker, number),
                reason_text=turn.slot("refund_reason_text") or "",
            )
        except (NotEligible, RefundInProgress) as exc:  # the order changed since we asked
            explanation = exc.context.get("explanation")
            turn.say(explanation if isinstance(explanation, Text) else exc.text(turn.language))
            return []
        order = orders.get_order(turn.session, customer_id=customer.id, number=number)
        method = payment_label(order.payment_method, turn.language)
        amount = format_amount(refund.amount_cents)
        if refund.kind is RefundKind.CANCEL_AND_REFUND and refund.state is RefundState.DONE:
            turn.say(CANCELLED, number=order.number, amount=amount, method=method)
        elif refund.state is RefundState.UNDER_REVIEW:
            goods = GOODS_IN_TRANSIT if order.state is OrderState.SHIPPED else GOODS_DELIVERED
            turn.say(SUBMITTED, number=order.number, amount=amount, method=method,
                     reason=reason_label(refund.reason, turn.language),
                     goods=goods.get(turn.language))
        else:  # a replay after an agent already acted on it
            turn.say(ORDER_POLICY, number=order.number,
                     explanation=explain_refund(refund).get(turn.language))
        return []

    def _after_sales(self, turn: Turn, customer: Customer) -> EventList:
        """Outside the rules a person decides: a ticket the customer can quote, no pause.

        Not a live handoff: the agent needs time (photos, checking the order), the answer
        arrives here through the outbox, and the customer may keep using the bot meanwhile.
        """
        number = str(turn.slot("order_id"))
        reason = str(turn.slot("refund_reason"))
        eligibility = refunds.check_eligibility(turn.session, customer_id=customer.id,
                                                order_number=number, reason=reason,
                                                timezone=turn.backend.timezone)
        ticket = after_sales.open_after_sales_ticket(
            turn.session, customer_id=customer.id, order_number=number, reason=reason,
            description=turn.slot("refund_reason_text") or "", channel=turn.channel,
            conversation_id=turn.conversation_id, language=turn.language,
            transcript=transcript_from(turn.tracker), now=utcnow(),
        )
        deadline = sla.next_deadline(turn.session, ticket=ticket)
        budget = sla.policy_in(turn.session, priority=ticket.priority, segment=customer.segment)
        turn.say(eligibility.explanation)
        turn.say(AFTER_SALES_OPENED, number=ticket.number,
                 deadline=turn.short_moment(deadline),
                 within=local_time.duration_words(budget.first_response,
                                                  language=turn.language))
        return [SlotSet("ticket_number", ticket.number)]


def _order_entity(turn: Turn) -> str | None:
    raw = next(turn.tracker.get_latest_entity_values("order_id"), None)
    return orders.parse_order_number(str(raw)) if raw else None


def _arrives_by(done_at: datetime, timezone: str) -> datetime:
    """``ARRIVAL_WORKING_DAYS`` working days (Mon–Fri) after the refund, in the shop's zone."""
    day, left = local_time.local(done_at, timezone), ARRIVAL_WORKING_DAYS
    while left:
        day += timedelta(days=1)
        if day.weekday() < 5:
            left -= 1
    return day


def _arrival(turn: Turn, state: RefundState, refund_id: int) -> str:
    if state is not RefundState.DONE:
        return ARRIVAL[state].get(turn.language)
    refund = turn.session.get(RefundRequest, refund_id)
    if refund is None or refund.done_at is None:
        return ""
    by = _arrives_by(refund.done_at, turn.backend.timezone)
    if by <= utcnow():
        return ARRIVED.get(turn.language)
    date = local_time.short_date(by, language=turn.language, timezone=turn.backend.timezone)
    return ARRIVES_BY.get(turn.language, date=date)


class ActionRefundStatus(KefuAction):
    """Where the customer's refunds stand: state, amount, and when the money arrives."""

    SHOWN = 5

    def name(self) -> str:
        return "action_refund_status"

    def act(self, turn: Turn) -> EventList:
        customer = turn.require_customer()
        if customer is None:
            return []
        number = _order_entity(turn)
        items = refunds.status(turn.session, customer_id=customer.id, order_number=number)
        if not items:
            if number:
                turn.say(NO_REFUNDS_FOR_ORDER, number=number)
            else:
                turn.say(NO_REFUNDS)
            return []
        lines = [STATUS_HEAD.get(turn.language)]
        for item in items[: self.SHOWN]:
            lines.append(STATUS_LINE.get(
                turn.language, number=item.order_number,
                state=STATE_LABELS[item.state].get(turn.language),
                explanation=item.explanation.get(turn.language),
                arrival=_arrival(turn, item.state, item.refund_id)))
        if len(items) > self.SHOWN:
            lines.append(MORE_REFUNDS.get(turn.language, shown=self.SHOWN))
        turn.say("\n".join(lines))
        return []


def _product_line(product: Product, language: str) -> str:
    template = PRODUCT_RETURNABLE if product.no_reason_return_7d else PRODUCT_EXCLUDED
    return template.get(language, name=catalog.product_name(product, language=language),
                        days=NO_REASON_RETURN_DAYS)


class ActionRefundPolicy(KefuAction):
    """The refund rules; for a named product its 7-day flag, for a named order its route."""

    def name(self) -> str:
        return "action_refund_policy"

    def act(self, turn: Turn) -> EventList:
        lines = self._about_order(turn) + self._about_product(turn)
        separator = "、" if turn.language == "zh" else ", "
        faults = separator.join(REASON_LABELS[r].get(turn.language)
                                for r in RefundReason if r in SELLER_FAULT_REASONS)
        lines.append(POLICY.get(turn.language, days=NO_REASON_RETURN_DAYS, faults=faults))
        turn.say("\n".join(lines))
        return []

    def _about_order(self, turn: Turn) -> list[str]:
        number = _order_entity(turn)
        if number is None:
            return []
        if turn.customer is None:
            return [VERIFY_FOR_ORDER.get(turn.language)]
        eligibility = refunds.check_eligibility(turn.session, customer_id=turn.customer.id,
                                                order_number=number,
                                                timezone=turn.backend.timezone)
        order = orders.get_order(turn.session, customer_id=turn.customer.id, number=number)
        lines = [ORDER_POLICY.get(turn.language, number=number,
                                  explanation=eligibility.explanation.get(turn.language))]
        if eligibility.route in (Route.RETURN_AND_REFUND, Route.AFTER_SALES_TICKET):
            lines += [_product_line(p, turn.language) for p in _products(turn, order)]
        return lines

    def _about_product(self, turn: Turn) -> list[str]:
        query = next(turn.tracker.get_latest_entity_values("product"), None)
        if not query:
            return []
        found = catalog.resolve(turn.session, query=str(query))
        if found.product is not None:
            return [_product_line(found.product, turn.language)]
        if found.ambiguous:
            return [_product_line(m.product, turn.language) for m in found.candidates]
        return [PRODUCT_UNKNOWN.get(turn.language, query=query)]


def _products(turn: Turn, order: Order) -> list[Product]:
    ids = sorted({item.product_id for item in order.items})
    return [p for p in (turn.session.get(Product, i) for i in ids) if p is not None]
