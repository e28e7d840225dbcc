"""Orders as the customer sees them (rules §ORD-1): finding one safely and explaining its state.

A customer may only ever learn about their own orders, so a stranger's order number is
answered exactly like a number that does not exist: same exception, same message.
"""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.core import local_time
from ticketing.core.errors import InvalidOrderNumber, OrderNotFound
from ticketing.core.i18n import Text, normalize_language
from ticketing.core.models import Order, OrderState, Product
from ticketing.core.money import format_amount
from ticketing.core.settings import schedule_of
from ticketing.shop import catalog

MIN_DIGITS = 16
MAX_DIGITS = 19

# "订单号:", "订单编号：", "order no.", "Order #", "order number" ... in front of the digits
_LABEL = re.compile(
    r"^\s*(?:订单编号|订单号码|订单号|订单|单号|order\s*(?:number|no\.?|id)?)\s*[:：]?\s*",
    re.IGNORECASE,
)
_SEPARATORS = re.compile(r"[\s#\-_—–]+")


def parse_order_number(raw: str) -> str:
    """Normalise what a customer typed into the bare 16–19 digit order number.

    Full-width digits and punctuation are folded (NFKC), a leading label is dropped, and
    spaces, '#' and dashes are removed. Anything else left over makes the number invalid.
    """
    if not isinstance(raw, str):
        raise InvalidOrderNumber("order number must be text")
    text = unicodedata.normalize("NFKC", raw)
    text = _LABEL.sub("", text)
    digits = _SEPARATORS.sub("", text)
    if not digits.isascii() or not digits.isdigit():
        raise InvalidOrderNumber("order number must contain digits only")
    if not MIN_DIGITS <= len(digits) <= MAX_DIGITS:
        raise InvalidOrderNumber(f"order number must have {MIN_DIGITS}-{MAX_DIGITS} digits")
    return digits


def get_order(session: Session, *, customer_id: int, number: str, lock: bool = False) -> Order:
    """The customer's own order by number; anybody else's is reported as not found.

    ``lock`` takes the row lock that serialises money decisions on the order (refunds);
    ``populate_existing`` then makes sure the row is judged as it is after the lock, not as a
    stale copy already in the session.
    """
    parsed = parse_order_number(number)
    query = select(Order).where(Order.number == parsed, Order.customer_id == customer_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    order = session.scalars(query).one_or_none()
    if order is None:
        raise OrderNotFound()
    return order


def recent_orders(session: Session, *, customer_id: int, limit: int = 5) -> list[Order]:
    """The customer's newest orders first, for "which order do you mean?" buttons."""
    return list(
        session.scalars(
            select(Order)
            .where(Order.customer_id == customer_id)
            .order_by(Order.created_at.desc(), Order.id.desc())
            .limit(max(limit, 0))
        )
    )


# --- explaining the state --------------------------------------------------------------------
STATE_NAMES: dict[OrderState, Text] = {
    OrderState.PENDING_PAYMENT: Text("待付款", "awaiting payment"),
    OrderState.PAID: Text("已付款，待发货", "paid, waiting to ship"),
    OrderState.SHIPPED: Text("已发货", "shipped"),
    OrderState.DELIVERED: Text("已签收", "delivered"),
    OrderState.COMPLETED: Text("已完成", "completed"),
    OrderState.CANCELLED: Text("已取消", "cancelled"),
}

_EXPLANATIONS: dict[OrderState, Text] = {
    OrderState.PENDING_PAYMENT: Text(
        "订单 {number} 已提交，正在等待付款（应付 {total}）。付款成功后商家会尽快备货发货；"
        "长时间未付款的订单会被系统自动取消。",
        "Order {number} has been placed and is waiting for payment ({total} due). Once it is "
        "paid the shop prepares and ships it; unpaid orders are cancelled automatically "
        "after a while.",
    ),
    OrderState.PAID: Text(
        "订单 {number} 已付款（{paid}），商家正在备货。发货后您会收到快递单号，"
        "可以随时向我查询物流。发货前如需取消，可直接申请取消并退款。",
        "Order {number} is paid ({paid}) and the shop is preparing it. When it ships you get "
        "a tracking number and can ask me where it is. Until then you can cancel it and get "
        "a refund.",
    ),
    OrderState.SHIPPED: Text(
        "订单 {number} 已发货，正在运输途中。您可以向我查询最新物流和预计送达时间；"
        "收到货后请检查商品并确认收货。",
        "Order {number} has shipped and is on its way. Ask me for the latest tracking and "
        "the expected delivery time; when it arrives, check the goods and confirm receipt.",
    ),
    OrderState.DELIVERED: Text(
        "订单 {number} 已签收。请检查商品，确认无误后确认收货，订单即完成；"
        "如有质量问题或想退换货，可以在售后期内申请。",
        "Order {number} has been delivered. Please check the goods and confirm receipt to "
        "complete the order; for a quality problem or a return you can apply for after-sales "
        "service within the after-sales period.",
    ),
    OrderState.COMPLETED: Text(
        "订单 {number} 已完成，交易结束。如果商品后续出现问题，仍可联系我们申请售后。",
        "Order {number} is completed. If something goes wrong with the goods later, you can "
        "still contact us for after-sales service.",
    ),
    OrderState.CANCELLED: Text(
        "订单 {number} 已取消，不会再发货。",
        "Order {number} has been cancelled and will not be shipped.",
    ),
}

_FULL_REFUND = Text(
    "已全额退款 {refunded}，将原路退回，通常 1–3 个工作日到账。",
    "It has been refunded in full ({refunded}) to the original payment method; this usually "
    "arrives within 1–3 working days.",
)
_PARTIAL_REFUND = Text(
    "其中已退款 {refunded}（实付 {paid}），将原路退回，通常 1–3 个工作日到账。",
    "{refunded} of the {paid} paid has been refunded to the original payment method; this "
    "usually arrives within 1–3 working days.",
)


def state_name(state: OrderState, *, language: str) -> str:
    """The short, standard name of an order state (rules §TERMS-1)."""
    return STATE_NAMES[state].get(language)


def explain_state(order: Order, *, language: str) -> str:
    """Plain-language explanation of where the order is, what happens next, and refunds."""
    values = {
        "number": order.number,
        "total": format_amount(order.total_cents),
        "paid": format_amount(order.paid_cents),
        "refunded": format_amount(order.refunded_cents),
    }
    parts = [_EXPLANATIONS[order.state].get(language, **values)]
    if order.refunded_cents > 0:
        full = order.refunded_cents >= order.paid_cents
        parts.append((_FULL_REFUND if full else _PARTIAL_REFUND).get(language, **values))
    separator = "" if normalize_language(language) == "zh" else " "
    return separator.join(parts)


# --- summary ---------------------------------------------------------------------------------
_SUMMARY_HEAD = Text(
    "订单号：{number}\n状态：{state}\n下单时间：{created}",
    "Order number: {number}\nStatus: {state}\nPlaced: {created}",
)
_SUMMARY_ITEM = Text("· {name} × {quantity}  {amount}", "· {name} × {quantity}  {amount}")
_SUMMARY_TOTAL = Text("合计：{total}", "Total: {total}")
_SUMMARY_PAID = Text("实付：{paid}", "Paid: {paid}")
_SUMMARY_REFUNDED = Text("已退款：{refunded}", "Refunded: {refunded}")


def summary(
    session: Session, *, order: Order, language: str, timezone: str | None = None
) -> str:
    """A multi-line order summary: number, state, items by name, amounts (standard terms).

    Times are shown in the shop's ``timezone`` (settings.timezone), as customers read them.
    """
    product_ids = sorted({item.product_id for item in order.items})
    products = {
        p.id: p for p in session.scalars(select(Product).where(Product.id.in_(product_ids)))
    } if product_ids else {}
    lines = [
        _SUMMARY_HEAD.get(
            language,
            number=order.number,
            state=state_name(order.state, language=language),
            created=local_time.date_time(order.created_at,
                                        timezone=timezone or schedule_of(session).timezone),
        )
    ]
    for item in order.items:
        lines.append(
            _SUMMARY_ITEM.get(
                language,
                name=catalog.product_name(products.get(item.product_id), language=language),
                quantity=item.quantity,
                amount=format_amount(item.unit_price_cents * item.quantity),
            )
        )
    lines.append(_SUMMARY_TOTAL.get(language, total=format_amount(order.total_cents)))
    if order.paid_cents:
        lines.append(_SUMMARY_PAID.get(language, paid=format_amount(order.paid_cents)))
    if order.refunded_cents:
        lines.append(
            _SUMMARY_REFUNDED.get(language, refunded=format_amount(order.refunded_cents))
        )
    return "\n".join(lines)
