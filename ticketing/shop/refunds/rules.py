"""The refund rules of rules §REF-4 as pure functions: which route an order takes, and the words.

No database access here, so the rules are testable on their own and the bot can explain a
decision before asking the customer anything. ``ticketing.shop.refunds.flow`` loads the data and writes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from ticketing.core import local_time
from ticketing.core.clock import aware
from ticketing.core.errors import InvalidAmount, ValidationError
from ticketing.core.i18n import Text, normalize_language
from ticketing.core.models import (
    Order,
    OrderState,
    RefundKind,
    RefundMethod,
    RefundRequest,
    RefundState,
)
from ticketing.core.money import format_amount

NO_REASON_RETURN_DAYS = 7
MAX_REASON_TEXT = 1000
MAX_KEY_LENGTH = 80  # RefundRequest.idempotency_key


class RefundReason(str, enum.Enum):
    """Reason codes the bot offers as buttons; stored in ``RefundRequest.reason``."""

    CHANGED_MIND = "changed_mind"
    WRONG_SIZE = "wrong_size"
    QUALITY = "quality"
    DAMAGED = "damaged"
    NOT_AS_DESCRIBED = "not_as_described"
    WRONG_ITEM = "wrong_item"
    LATE_DELIVERY = "late_delivery"
    OTHER = "other"


REASON_LABELS: dict[RefundReason, Text] = {
    RefundReason.CHANGED_MIND: Text("不想要了", "Changed my mind"),
    RefundReason.WRONG_SIZE: Text("尺码/规格不合适", "Wrong size or spec"),
    RefundReason.QUALITY: Text("质量问题", "Quality problem"),
    RefundReason.DAMAGED: Text("商品破损", "Arrived damaged"),
    RefundReason.NOT_AS_DESCRIBED: Text("与描述不符", "Not as described"),
    RefundReason.WRONG_ITEM: Text("发错货", "Wrong item sent"),
    RefundReason.LATE_DELIVERY: Text("发货/配送太慢", "Delivery too slow"),
    RefundReason.OTHER: Text("其他原因", "Other reason"),
}

# The seller's fault: handled by after-sales even where no-reason return does not apply.
SELLER_FAULT_REASONS = frozenset(
    {RefundReason.QUALITY, RefundReason.DAMAGED, RefundReason.NOT_AS_DESCRIBED,
     RefundReason.WRONG_ITEM}
)


def reason_options(language: str | None) -> list[tuple[str, str]]:
    """(code, label) pairs in display order, for buttons."""
    return [(reason.value, REASON_LABELS[reason].get(language)) for reason in RefundReason]


class Route(str, enum.Enum):
    """What happens to a refund wish for an order."""

    CANCEL_AND_REFUND = "cancel_and_refund"  # unshipped: cancel, full refund at once
    RETURN_AND_REFUND = "return_and_refund"  # shipped/delivered in window: agent review
    AFTER_SALES_TICKET = "after_sales_ticket"  # outside the rules: a human decides
    NOTHING_TO_REFUND = "nothing_to_refund"  # unpaid, cancelled or fully refunded
    REFUND_IN_PROGRESS = "refund_in_progress"  # one active request per order


@dataclass(frozen=True)
class Eligibility:
    """The answer the bot gives before asking for reason, amount and method."""

    order_number: str
    route: Route
    refundable_cents: int
    explanation: Text
    deadline: datetime | None = None  # end of the no-reason return window, once delivered
    ticket_category: str | None = None  # "quality" or "refund" when route is after-sales
    active_refund_id: int | None = None

    @property
    def can_request(self) -> bool:
        return self.route in (Route.CANCEL_AND_REFUND, Route.RETURN_AND_REFUND)

    @property
    def kind(self) -> RefundKind | None:
        if self.route is Route.CANCEL_AND_REFUND:
            return RefundKind.CANCEL_AND_REFUND
        if self.route is Route.RETURN_AND_REFUND:
            return RefundKind.RETURN_AND_REFUND
        return None


_CANCEL = Text(
    "订单还未发货，可以直接取消订单并全额退款{amount}。",
    "The order has not shipped yet, so it can be cancelled with a full refund of {amount}.",
)
_RETURN_DELIVERED = Text(
    "商品已签收，{deadline}前可申请七天无理由退货退款，最多可退{amount}。"
    "审核通过后请寄回商品，我们收到退货后退款。",
    "Delivered: you can return it for a refund until {deadline} (7-day no-reason return), "
    "up to {amount}. Once approved, send the goods back; the refund follows on arrival.",
)
_RETURN_IN_TRANSIT = Text(
    "商品已发出、尚未签收，可以申请退货退款，最多可退{amount}。审核通过后请拒收或寄回商品。",
    "The parcel is on its way, so you can apply for return and refund of up to {amount}. "
    "Once approved, refuse the parcel or send the goods back.",
)
_LATE = Text(
    "商品签收已超过7天，不能无理由退货。我们会为您创建售后工单，由客服跟进。",
    "It is more than 7 days since delivery, so no-reason return no longer applies. "
    "We will open an after-sales ticket and an agent will follow up.",
)
_COMPLETED = Text(
    "订单已完成，不能直接申请退款。我们会为您创建售后工单，由客服跟进。",
    "The order is completed and cannot be refunded directly. "
    "We will open an after-sales ticket and an agent will follow up.",
)
_EXCLUDED = Text(
    "订单中有商品不支持七天无理由退货。我们会为您创建售后工单，由客服核实处理。",
    "An item in this order is excluded from 7-day no-reason return. "
    "We will open an after-sales ticket and an agent will look into it.",
)
_SELLER_FAULT = Text(
    "质量问题（破损、发错货、与描述不符）由售后客服负责处理。我们会为您创建售后工单，请准备好商品照片。",
    "Quality problems (damage, wrong item, not as described) are handled by our after-sales "
    "team. We will open a ticket for you; please have photos of the goods ready.",
)
_UNPAID = Text(
    "订单还未付款，不需要退款；不想要的话可以直接取消订单。",
    "The order has not been paid, so there is nothing to refund; you can simply cancel it.",
)
_CANCELLED = Text(
    "订单已取消，没有需要退款的金额。",
    "The order is cancelled and there is nothing left to refund.",
)
_FULLY_REFUNDED = Text(
    "这个订单已经全额退款（{amount}），没有可退的金额了。",
    "This order has already been refunded in full ({amount}); nothing is left to refund.",
)
_IN_PROGRESS = Text(
    "这个订单已有一笔退款申请（{state}），请耐心等待处理结果。",
    "This order already has a refund request ({state}); please wait for its result.",
)

STATE_LABELS: dict[RefundState, Text] = {
    RefundState.APPLIED: Text("已申请", "applied"),
    RefundState.UNDER_REVIEW: Text("审核中", "under review"),
    RefundState.PROCESSING: Text("退款处理中", "processing"),
    RefundState.DONE: Text("已退款", "refunded"),
    RefundState.REJECTED: Text("已拒绝", "rejected"),
}

_STATE_EXPLANATIONS: dict[RefundState, Text] = {
    RefundState.APPLIED: Text(
        "您的退款申请（{amount}）已提交。", "Your refund request ({amount}) has been submitted."
    ),
    RefundState.UNDER_REVIEW: Text(
        "您的退款申请（{amount}）正在审核中，客服会尽快处理。",
        "Your refund request ({amount}) is under review; an agent will handle it shortly.",
    ),
    RefundState.PROCESSING: Text(
        "您的退款申请（{amount}）已通过审核，请寄回商品，我们收到退货后即退款。",
        "Your refund request ({amount}) is approved. Please send the goods back; "
        "we refund as soon as they arrive.",
    ),
    RefundState.DONE: Text(
        "{amount}已退回{method}。",
        "{amount} has been refunded to {method}.",
    ),
    RefundState.REJECTED: Text(
        "您的退款申请（{amount}）未通过审核，原因：{why}",
        "Your refund request ({amount}) was not approved. Reason: {why}",
    ),
}

_METHOD_LABELS = {
    "original": Text("原支付方式", "your original payment method"),
    "balance": Text("店铺余额", "your shop balance"),
}


def both(template: Text, **values: object) -> Text:
    """A :class:`Text` with ``values`` already filled into both languages."""
    return Text(template.zh.format(**values), template.en.format(**values))


def delivered_at(order: Order) -> datetime | None:
    """When the goods arrived: the order's stamp, else the latest shipment's."""
    if order.delivered_at is not None:
        return aware(order.delivered_at)
    stamps = [aware(s.delivered_at) for s in order.shipments if s.delivered_at is not None]
    return max(stamps) if stamps else None


def assess(
    *,
    order: Order,
    all_items_returnable: bool,
    active: RefundRequest | None,
    reason: RefundReason | None,
    now: datetime,
    timezone: str,
) -> Eligibility:
    """Route ``order`` per rules §REF-4; ``reason`` only changes the words for seller faults."""
    refundable = max(order.paid_cents - order.refunded_cents, 0)
    money = format_amount(refundable)

    def result(route: Route, explanation: Text, **extra: object) -> Eligibility:
        return Eligibility(order.number, route, refundable, explanation,
                           **extra)  # type: ignore[arg-type]

    if active is not None:
        state = STATE_LABELS[active.state]
        return result(
            Route.REFUND_IN_PROGRESS,
            Text(_IN_PROGRESS.zh.format(state=state.zh), _IN_PROGRESS.en.format(state=state.en)),
            active_refund_id=active.id,
        )
    if order.state is OrderState.PENDING_PAYMENT or order.paid_cents <= 0:
        return result(Route.NOTHING_TO_REFUND, _UNPAID)
    if refundable <= 0:
        return result(Route.NOTHING_TO_REFUND,
                      both(_FULLY_REFUNDED, amount=format_amount(order.refunded_cents)))
    if order.state is OrderState.CANCELLED:
        return result(Route.NOTHING_TO_REFUND, _CANCELLED)
    if order.state is OrderState.PAID:
        return result(Route.CANCEL_AND_REFUND, both(_CANCEL, amount=money))

    seller_fault = reason in SELLER_FAULT_REASONS
    category = "quality" if seller_fault else "refund"

    def after_sales(why: Text) -> Eligibility:
        return result(Route.AFTER_SALES_TICKET, _SELLER_FAULT if seller_fault else why,
                      ticket_category=category)

    if order.state is OrderState.COMPLETED:
        return after_sales(_COMPLETED)
    arrived = delivered_at(order)
    deadline = None if arrived is None else arrived + timedelta(days=NO_REASON_RETURN_DAYS)
    if deadline is not None and now > deadline:
        return after_sales(_LATE)
    if not all_items_returnable:
        return after_sales(_EXCLUDED)
    if deadline is None:  # shipped, not yet delivered: the window has not even started
        return result(Route.RETURN_AND_REFUND, both(_RETURN_IN_TRANSIT, amount=money))
    return result(
        Route.RETURN_AND_REFUND,
        Text(*(getattr(_RETURN_DELIVERED, lang).format(
            amount=money, deadline=local_time.short_moment(deadline, language=lang,
                                                            timezone=timezone))
            for lang in ("zh", "en"))),
        deadline=deadline,
    )


def explain_refund(refund: RefundRequest) -> Text:
    """The customer-facing sentence for a refund's current state."""
    template = _STATE_EXPLANATIONS[refund.state]
    method = _METHOD_LABELS[refund.method.value]
    why = refund.rejection_reason or ""
    amount = format_amount(refund.amount_cents)
    return Text(
        template.zh.format(amount=amount, method=method.zh, why=why),
        template.en.format(amount=amount, method=method.en, why=why),
    )


def reason_label(code: str, language: str | None) -> str:
    """Label for a stored reason code; unknown codes are shown as they are."""
    try:
        return REASON_LABELS[RefundReason(code)].get(normalize_language(language))
    except ValueError:
        return code


# --- input checks (raise before anything is written) ---------------------------------------------
def parse_reason(value: RefundReason | str) -> RefundReason:
    try:
        return RefundReason(value)
    except ValueError:
        raise ValidationError(f"unknown refund reason {value!r}", field="reason") from None


def parse_method(value: RefundMethod | str) -> RefundMethod:
    try:
        return RefundMethod(value)
    except ValueError:
        raise ValidationError(f"unknown refund method {value!r}", field="method") from None


def check_key(value: object) -> str:
    key = value.strip() if isinstance(value, str) else ""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationError("idempotency key must be 1..80 characters", field="idempotency_key")
    return key


def check_reason_text(reason: RefundReason, value: str | None) -> str:
    """Free text is optional, except that "other" must say what the reason is."""
    text = (value or "").strip()
    if len(text) > MAX_REASON_TEXT:
        raise ValidationError("reason text is too long", field="reason_text")
    if reason is RefundReason.OTHER and not text:
        raise ValidationError("say what the other reason is", field="reason_text")
    return text


def check_amount(amount_cents: int | None, eligibility: Eligibility) -> int:
    """Whole cents in 1..refundable; a cancellation is all or nothing. None means all."""
    refundable = eligibility.refundable_cents
    if amount_cents is None:
        return refundable
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int):
        raise InvalidAmount("amount must be whole cents", refundable_cents=refundable)
    if amount_cents <= 0 or amount_cents > refundable:
        raise InvalidAmount(f"amount must be 1..{refundable} cents", refundable_cents=refundable)
    if eligibility.route is Route.CANCEL_AND_REFUND and amount_cents != refundable:
        raise InvalidAmount("a cancellation refunds the full amount", refundable_cents=refundable)
    return amount_cents
