"""Which order does the customer mean? One answer for every order flow (track, ETA, refunds).

Orders are private: only a verified customer's own orders are ever looked at, and a number
that belongs to somebody else is "not found", exactly like one that does not exist.

API (small on purpose)::

    order = choose_order(turn, intent="request_refund")       # -> Order | None
    if order is None:
        return []  # the helper has already spoken: verify first / pick one / no orders
    ...
    return remember(order)       # SlotSet order_id, for the follow-up turns
    # and in on_refused():  return forget_order()   (drops a refused number)

The order comes from the ``order_id`` entity of the latest message, else the ``order_id``
slot; a malformed number raises ``InvalidOrderNumber`` and a stranger's or unknown one
``OrderNotFound`` (the base action explains both; see :func:`forget_order`). Without a number,
the customer's only recent order is used; with several, up to five are offered as buttons
whose payload repeats ``intent`` with the chosen number, so a click re-runs the same flow.
"""

from __future__ import annotations

import json
from collections.abc import Collection

from rasa_sdk.events import SlotSet

from actions.turn import EventList, Turn
from ticketing.shop import catalog, orders
from ticketing.core import local_time
from ticketing.core.i18n import Text
from ticketing.core.models import Order, OrderState, Product

MAX_BUTTONS = 5
_SCAN = 30  # recent orders looked at when only some states qualify
_NAME_CHARS = {"zh": 12, "en": 22}  # product names are cut to keep a button short

WHICH_ORDER = Text(
    zh="您想查询哪一笔订单？请点选下面的订单，或直接发送订单号：",
    en="Which order do you mean? Pick one below or send me the order number:",
)
NO_ORDERS = Text(
    zh="您的账户下还没有订单。如果是用其他账号或手机号下的单，请把订单号发给我。",
    en="I can't find any orders on your account. If you ordered with another account or "
       "phone number, send me the order number.",
)
_TITLE = Text(zh="{date} {items} · {state} · 尾号{tail}",
              en="{date} {items} · {state} · …{tail}")
_MORE = Text(zh="{name}等{count}件", en="{name} +{more}")


def order_number_given(turn: Turn) -> str | None:
    """The order number the customer gave: this message's entity, else the remembered slot.

    Of several ``order_id`` values (the NLU may split a spaced number) the longest is taken.
    """
    values = [str(v).strip() for v in turn.tracker.get_latest_entity_values("order_id")]
    values = [v for v in values if v]
    raw = max(values, key=len) if values else str(turn.slot("order_id") or "").strip()
    return raw or None


def choose_order(turn: Turn, *, intent: str, states: Collection[OrderState] | None = None,
                 prompt: Text = WHICH_ORDER, when_none: Text | None = NO_ORDERS) -> Order | None:
    """The verified customer's order this turn is about, or None after saying why not.

    ``intent`` names the flow for the buttons' payload (``/<intent>{"order_id": ...}``).
    ``states`` limits the orders *offered* (e.g. only undelivered ones for an ETA); a number
    the customer gives is always looked up. ``when_none`` is said when nothing qualifies
    (``None``: stay silent, the caller answers instead).
    """
    customer = turn.require_customer()
    if customer is None:
        return None
    given = order_number_given(turn)
    if given:
        return orders.get_order(turn.session, customer_id=customer.id,
                                number=orders.parse_order_number(given))
    candidates = _recent(turn, customer.id, states)
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        if when_none is not None:
            turn.say(when_none)
        return None
    turn.say(prompt, buttons=[order_button(turn, order, intent=intent) for order in candidates])
    return None


def remember(order: Order) -> EventList:
    """Keep the order for the follow-up turns ("and when will it arrive?", a ticket, a refund)."""
    return [SlotSet("order_id", order.number)]


def forget_order() -> EventList:
    """After a refused number (malformed, not found): drop it so it is not tried again."""
    return [SlotSet("order_id", None)]


def order_button(turn: Turn, order: Order, *, intent: str) -> dict[str, str]:
    """A button for one order: date, what was bought, state, last digits; payload re-asks."""
    date = local_time.short_date(order.created_at, language=turn.language,
                                 timezone=turn.backend.timezone)
    title = _TITLE.get(turn.language, date=date, items=items_label(turn, order),
                       state=orders.state_name(order.state, language=turn.language),
                       tail=order.number[-4:])
    payload = "/" + intent + json.dumps({"order_id": order.number}, ensure_ascii=False)
    return {"title": title, "payload": payload}


def items_label(turn: Turn, order: Order) -> str:
    """"无线蓝牙耳机 Pro等2件" / "Wireless Bluetooth… +1": enough to recognise an order."""
    items = list(order.items)
    if not items:
        return ""
    first = turn.session.get(Product, items[0].product_id)
    name = catalog.product_name(first, language=turn.language)
    cut = _NAME_CHARS.get(turn.language, 22)
    if len(name) > cut:
        name = name[: cut - 1].rstrip() + "…"
    count = sum(item.quantity for item in items)
    if count <= 1:
        return name
    return _MORE.get(turn.language, name=name, count=count, more=count - 1)


def _recent(turn: Turn, customer_id: int, states: Collection[OrderState] | None) -> list[Order]:
    if states is None:
        return orders.recent_orders(turn.session, customer_id=customer_id, limit=MAX_BUTTONS)
    wanted = set(states)
    scanned = orders.recent_orders(turn.session, customer_id=customer_id, limit=_SCAN)
    return [o for o in scanned if o.state in wanted][:MAX_BUTTONS]
