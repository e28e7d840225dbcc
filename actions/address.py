"""change_shipping_address: what a shop can still change, and who does it.

Before shipping the change is the order team's job: the bot opens a ticket (category order)
and hands the conversation to a person, because the customer has to tell someone the new
recipient and address and the team applies it before the parcel leaves. Once shipped the
shop can no longer change it: the bot says so, names the carrier and tracking number for a
redirect, and offers a person. Addresses are only ever shown masked (rules §SEC-4).
"""

from __future__ import annotations

from rasa_sdk import Tracker

from actions import order_choice
from actions.base import EventList, KefuAction, Turn
from actions.handoff import hand_off
from ticketing.core import pii
from ticketing.shop import customers, logistics, orders
from ticketing.core.errors import KefuError
from ticketing.core.i18n import Text
from ticketing.core.models import Category, Customer, Order, OrderState

ASK_ORDER = Text("请问要修改哪个订单的收货地址？请选择订单或直接发送订单号：",
                 "Which order's delivery address should change? Pick one or type the order number:")
NOTHING_TO_CHANGE = Text(
    "您目前没有待发货或运输中的订单。以后下单用的收货地址可以在商城“我的地址”里修改；"
    "如果是某个具体订单，请把订单号发给我。",
    "You have no orders waiting to ship or on their way. The address for future orders can be "
    "changed under \"My addresses\" in the shop; for a particular order, send me its number.")
CURRENT = Text("（当前地址：{address}）", " (currently {address})")
BEFORE_SHIPPING = Text(
    "订单 {number} 还没有发货，收货地址可以修改{current}。我这就把修改请求交给订单组："
    "请把新的收货人、电话和地址直接发给接手的客服，他们会在发货前改好并在这里跟您确认。",
    "Order {number} hasn't shipped yet, so the delivery address can still be changed{current}. "
    "I'm passing the change to our order team: send the new recipient, phone number and address "
    "to the agent who picks this up, and they'll update it before the parcel ships and confirm "
    "with you here.",
)
SHIPPED = Text(
    "订单 {number} 已经发货{parcel}，商家这边已经无法修改收货地址了。您可以联系快递公司申请改派，"
    "或者转人工客服帮您联系快递。",
    "Order {number} has already shipped{parcel}, so the shop can no longer change its address. "
    "You can ask the carrier to redirect the parcel, or an agent can contact the carrier for you.",
)
PARCEL = Text("（{carrier}，运单号 {tracking}）", " ({carrier}, tracking number {tracking})")
DELIVERED = Text(
    "订单 {number} {state}，收货地址已经不能修改了。如果包裹没有送到您手上，可以转人工客服帮您处理。",
    "Order {number} is {state}, so its address can no longer be changed. If the parcel didn't "
    "reach you, an agent can help.",
)
CANCELLED = Text("订单 {number} 已取消，不会再发货，不需要修改地址。",
                 "Order {number} is cancelled and won't ship, so there is no address to change.")
AGENT_BUTTON = Text("转人工客服", "Talk to an agent")

NOT_SHIPPED = (OrderState.PENDING_PAYMENT, OrderState.PAID)
OFFERED = (*NOT_SHIPPED, OrderState.SHIPPED)  # the orders whose address is still a question


def masked_address(turn: Turn, order: Order, customer: Customer) -> str | None:
    """The order's delivery address (else the customer's), region only."""
    if order.address_enc is not None:
        return pii.mask_address(turn.backend.cipher.decrypt(order.address_enc, field="address"))
    return customers.masked_address(customer, cipher=turn.backend.cipher)


class ActionChangeAddress(KefuAction):
    def name(self) -> str:
        return "action_change_address"

    def act(self, turn: Turn) -> EventList:
        order = order_choice.choose_order(turn, intent="change_shipping_address",
                                          states=OFFERED, prompt=ASK_ORDER,
                                          when_none=NOTHING_TO_CHANGE)
        customer = turn.customer
        if order is None or customer is None:
            return []  # choose_order has spoken: verify first, pick one, or nothing to change
        events = order_choice.remember(order)
        agent = [{"title": AGENT_BUTTON.get(turn.language), "payload": "/human_handoff"}]
        if order.state in NOT_SHIPPED:
            address = masked_address(turn, order, customer)
            current = CURRENT.get(turn.language, address=address) if address else ""
            turn.say(BEFORE_SHIPPING, number=order.number, current=current)
            return events + hand_off(turn, reason="change_shipping_address",
                                     category=Category.ORDER, order_number=order.number)
        if order.state is OrderState.SHIPPED:
            shipment = logistics.current_shipment(turn.session, order=order)
            parcel = "" if shipment is None else PARCEL.get(
                turn.language, tracking=shipment.tracking_number,
                carrier=logistics.carrier_name(shipment.carrier, language=turn.language))
            turn.say(SHIPPED, buttons=agent, number=order.number, parcel=parcel)
        elif order.state is OrderState.CANCELLED:
            turn.say(CANCELLED, number=order.number)
        else:
            turn.say(DELIVERED, buttons=agent, number=order.number,
                     state=orders.state_name(order.state, language=turn.language))
        return events

    def on_refused(self, error: KefuError, tracker: Tracker) -> EventList:
        return order_choice.forget_order()  # a wrong or foreign number is not tried again
