"""Where is my order, and when will it arrive (rules §ORD-1: the bot explains the order's state).

Only a verified customer's own orders are shown (see :mod:`actions.order_choice`); personal
data appears masked. A parcel that is late, stalled or reported as a problem by the carrier
is never glossed over: the bot says so, explains it, and offers a ticket. The offer itself is
:class:`ActionOfferDelayTicket`, predicted by a rule when an action sets ``parcel_delayed``
(see bot/domain/orders.yml and nlu_data/rules/orders.yml).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import handoff
from actions.base import EventList, KefuAction, Turn, language_of
from actions.order_choice import choose_order, forget_order, remember
from actions.products import product_mentioned
from ticketing.core import pii
from ticketing.shop import catalog, customers, logistics, orders
from ticketing.core.clock import utcnow
from ticketing.core.errors import CryptoError, KefuError, NotFound, ValidationError
from ticketing.core.i18n import Text
from ticketing.shop.logistics import DelayReason, TrackingSummary
from ticketing.core.models import Category, Order, OrderState, Product

DELAY_SLOT = "parcel_delayed"
IN_FLIGHT = (OrderState.PENDING_PAYMENT, OrderState.PAID, OrderState.SHIPPED)

_ITEMS = Text(zh="商品：{items}", en="Items: {items}")
_RECIPIENT = Text(zh="收货信息：{address} · {phone}", en="Deliver to: {address} · {phone}")
_ITEM = Text(zh="{name} ×{quantity}", en="{name} ×{quantity}")
_TERMS = Text(zh="发货时效（{name}）：{delivery}", en="Dispatch ({name}): {delivery}")
_PRODUCT_DELIVERY = Text(zh="{name}：{delivery}。", en="{name}: {delivery}.")

DELAY_ACK: dict[DelayReason, Text] = {
    DelayReason.LATE: Text(
        zh="非常抱歉，您的包裹晚了：我们承诺的送达时间是 {promised}。",
        en="I'm sorry, your parcel is running late: we promised it by {promised}.",
    ),
    DelayReason.STALLED: Text(
        zh="非常抱歉，这个包裹的物流自 {since} 起就没有更新了，可能在转运中滞留。",
        en="I'm sorry: this parcel's tracking has not moved since {since}; it may be stuck "
           "at a transit hub.",
    ),
    DelayReason.EXCEPTION: Text(
        zh="非常抱歉，快递公司报告这个包裹出现了异常，需要人工跟进。",
        en="I'm sorry: the carrier has reported a problem with this parcel, so it needs "
           "someone to follow it up.",
    ),
}
DELIVERY_PROMISE = Text(
    zh="一般情况下，现货商品付款后48小时内发货，定制商品付款后7天内制作发货；发货后大部分城市"
       "2–4天送达，偏远地区会稍慢一些，全国包邮。下单后随时可以找我查物流和预计送达时间。",
    en="As a rule, items in stock ship within 48 hours of payment and made-to-order items "
       "within 7 days; after dispatch most cities receive them in 2–4 days, remote areas a "
       "little later, and shipping is free nationwide. Once you have ordered, ask me any time "
       "for the tracking and the expected delivery date.",
)
VERIFY_FOR_ETA = Text(
    zh="验证身份后，我还可以直接查您订单的预计送达时间。",
    en="Once you are verified I can also look up the expected delivery date of your orders.",
)
OFFER_TICKET = Text(
    zh="需要我为您创建工单，让物流组专人联系快递公司跟进并通知您进展吗？",
    en="Would you like me to open a ticket so our logistics team chases the carrier and keeps "
       "you posted?",
)
OPEN_TICKET = Text(zh="创建工单", en="Yes, open a ticket")
NO_THANKS = Text(zh="不用了", en="No thanks")
WHICH_ORDER_ETA = Text(
    zh="您有几笔订单还没送到，想查哪一笔的预计送达时间？",
    en="You have a few orders still on their way. Which one should I check?",
)


# --- shared wording ----------------------------------------------------------------------------
def items_text(turn: Turn, order: Order) -> str:
    """Every line of the order by name and quantity, in the customer's language."""
    names = []
    for item in order.items:
        product = turn.session.get(Product, item.product_id)
        names.append(_ITEM.get(turn.language, quantity=item.quantity,
                               name=catalog.product_name(product, language=turn.language)))
    return ("、" if turn.language == "zh" else ", ").join(names)


def recipient_text(turn: Turn, order: Order) -> str | None:
    """Where the parcel goes, masked (rules §SEC-4): region only, phone as 138****5678."""
    customer = turn.customer
    if customer is None:
        return None
    cipher = turn.backend.cipher
    try:
        if order.address_enc is not None:
            address = pii.mask_address(cipher.decrypt(order.address_enc, field="address"))
        else:
            address = customers.masked_address(customer, cipher=cipher)
        phone = customers.masked_phone(customer, cipher=cipher)
    except CryptoError:
        return None  # a key problem must not stop the tracking answer
    if not address and not phone:
        return None
    return _RECIPIENT.get(turn.language, address=address or "—", phone=phone or "—")


def when(turn: Turn, moment: datetime | None) -> str:
    return turn.short_moment(moment)


def delay_ack(turn: Turn, order: Order, summary: TrackingSummary) -> str | None:
    """"Sorry, it's late / stuck / reported as a problem", said before the tracking details."""
    if summary.delay is None:
        return None
    shipment = logistics.current_shipment(turn.session, order=order)
    since = summary.last_update_at or (shipment.shipped_at if shipment else None)
    return DELAY_ACK[summary.delay].get(
        turn.language, promised=when(turn, shipment.promised_by if shipment else None),
        since=when(turn, since))


def delay_flag(turn: Turn, summary: TrackingSummary) -> EventList:
    """Flag a delay (the rule then offers a ticket); otherwise clear a stale flag."""
    if summary.delay is not None:
        return [SlotSet(DELAY_SLOT, True)]
    return clear_flag(turn)


def clear_flag(turn: Turn) -> EventList:
    """No delay to offer a ticket for: make sure an old flag cannot trigger the offer."""
    return [SlotSet(DELAY_SLOT, None)] if turn.slot(DELAY_SLOT) else []


def tracking(turn: Turn, order: Order, now: datetime) -> TrackingSummary:
    return logistics.summary(turn.session, order=order, language=turn.language, now=now,
                             timezone=turn.backend.timezone)


class OrderAction(KefuAction):
    """A refused order number (malformed, not found) is forgotten, so it is not retried."""

    def on_refused(self, error: KefuError, tracker: Tracker) -> EventList:
        if isinstance(error, (ValidationError, NotFound)):
            return forget_order()
        return []


# --- track_order ------------------------------------------------------------------------------
class ActionTrackOrder(OrderAction):
    """The order's state in plain words, its latest scan and ETA, items and masked recipient."""

    def name(self) -> str:
        return "action_track_order"

    def act(self, turn: Turn) -> EventList:
        order = choose_order(turn, intent="track_order")
        if order is None:
            return clear_flag(turn)
        summary = tracking(turn, order, utcnow())
        shipped = summary.carrier is not None
        lines = [summary.text if shipped else orders.explain_state(order, language=turn.language),
                 _ITEMS.get(turn.language, items=items_text(turn, order))]
        ack = delay_ack(turn, order, summary)
        if ack:
            lines.insert(0, ack)
        if order.state is not OrderState.CANCELLED:
            recipient = recipient_text(turn, order)
            if recipient:
                lines.append(recipient)
        turn.say("\n".join(lines))
        return remember(order) + delay_flag(turn, summary)


# --- delivery_time ----------------------------------------------------------------------------
class ActionDeliveryTime(OrderAction):
    """How long delivery takes: an order's ETA, a product's dispatch terms, or the promise."""

    def name(self) -> str:
        return "action_delivery_time"

    def act(self, turn: Turn) -> EventList:
        asked_order = any(str(v).strip() for v in turn.tracker.get_latest_entity_values("order_id"))
        asked_product = product_mentioned(turn)
        if asked_product and not asked_order:
            return self.for_product(turn, asked_product)
        if turn.customer is None:
            if asked_order:
                turn.utter("utter_verify_first")
                turn.say(DELIVERY_PROMISE)
            else:
                turn.say(DELIVERY_PROMISE.get(turn.language) + "\n"
                         + VERIFY_FOR_ETA.get(turn.language))
            return clear_flag(turn)
        order = choose_order(turn, intent="delivery_time", states=IN_FLIGHT,
                             prompt=WHICH_ORDER_ETA, when_none=DELIVERY_PROMISE)
        if order is None:
            return clear_flag(turn)
        summary = tracking(turn, order, utcnow())
        lines = [summary.text]
        ack = delay_ack(turn, order, summary)
        if ack:
            lines.insert(0, ack)
        if order.state is OrderState.PAID:
            lines.extend(self.dispatch_terms(turn, order))
        turn.say("\n".join(lines))
        return remember(order) + delay_flag(turn, summary)

    @staticmethod
    def dispatch_terms(turn: Turn, order: Order) -> list[str]:
        """Not shipped yet: each product's own dispatch promise, from the catalogue."""
        lines, seen = [], set()
        for item in order.items:
            product = turn.session.get(Product, item.product_id)
            if product is None or product.id in seen:
                continue
            seen.add(product.id)
            delivery = product.delivery_zh if turn.language == "zh" else product.delivery_en
            if delivery:
                lines.append(_TERMS.get(turn.language, delivery=delivery,
                                        name=catalog.product_name(product, language=turn.language)))
        return lines

    @staticmethod
    def for_product(turn: Turn, query: str) -> EventList:
        """"How long does the power bank take?": its dispatch terms, never for missing stock."""
        resolution = catalog.resolve(turn.session, query=query)
        product = resolution.product
        if product is None:
            turn.say(DELIVERY_PROMISE)
            return []
        name = catalog.product_name(product, language=turn.language)
        if catalog.stock_level(product) is catalog.StockLevel.OUT:
            turn.say(name + ("：" if turn.language == "zh" else ": ")
                     + catalog.stock_status(product, language=turn.language))
        else:
            delivery = product.delivery_zh if turn.language == "zh" else product.delivery_en
            turn.say(_PRODUCT_DELIVERY.get(turn.language, name=name, delivery=delivery)
                     if delivery else DELIVERY_PROMISE.get(turn.language))
        return [SlotSet("product", name)]


# --- the delayed-parcel ticket offer ------------------------------------------------------------
class ActionOfferDelayTicket(Action):
    """Ask whether to open a ticket for the delayed parcel; the flag has done its job.

    The buttons send /affirm and /deny, so typing "yes" / "不用了" answers just the same.
    """

    def name(self) -> str:
        return "action_offer_delay_ticket"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> EventList:
        language = language_of(tracker)
        dispatcher.utter_message(text=OFFER_TICKET.get(language), buttons=[
            {"title": OPEN_TICKET.get(language), "payload": "/affirm"},
            {"title": NO_THANKS.get(language), "payload": "/deny"},
        ])
        return [SlotSet(DELAY_SLOT, None)]


class ActionOpenDelayTicket(KefuAction):
    """The customer accepted: the logistics team gets a ticket about this order."""

    def name(self) -> str:
        return "action_open_delay_ticket"

    def act(self, turn: Turn) -> EventList:
        if turn.require_customer() is None:
            return []
        return handoff.hand_off(turn, reason="parcel_delayed", category=Category.LOGISTICS,
                                order_number=turn.slot("order_id"))
