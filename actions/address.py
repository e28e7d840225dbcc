"""change_shipping_address: what a shop can still change, and who does it.

Before shipping the bot changes it itself: it asks for the new recipient, phone and address
(``address_form``), changes the order through :mod:`ticketing.shop.addresses` (the customer's
own order, only before shipping, encrypted, audited) and confirms. Once shipped the shop can
no longer change it: the bot says so, names the carrier and tracking number for a redirect,
and offers a person. Addresses are only ever shown masked (rules §SEC-4, §ORD-3).
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import REQUESTED_SLOT

from actions import order_choice
from actions.base import EventList, Guarded, KefuAction, Turn
from actions.turn import language_of
from ticketing.core import pii
from ticketing.core.errors import InvalidAddress, KefuError
from ticketing.core.i18n import Text
from ticketing.core.models import Customer, Order, OrderState
from ticketing.shop import addresses, customers, logistics, orders

ORDER = "address_order"  # the order whose address is being changed
NEW_ADDRESS = "new_address"  # the whole next message, while the form asks for it
CHANGEABLE = "address_changeable"  # the rules start the form only when this is true

ASK_ORDER = Text("请问要修改哪个订单的收货地址？请选择订单或直接发送订单号：",
                 "Which order's delivery address should change? Pick one or type the order number:")
NOTHING_TO_CHANGE = Text(
    "您目前没有待发货或运输中的订单。以后下单用的收货地址可以在商城“我的地址”里修改；"
    "如果是某个具体订单，请把订单号发给我。",
    "You have no orders waiting to ship or on their way. The address for future orders can be "
    "changed under \"My addresses\" in the shop; for a particular order, send me its number.")
CURRENT = Text("（当前地址：{address}）", " (currently {address})")
BEFORE_SHIPPING = Text(
    "订单 {number} 还没有发货，收货地址可以直接在这里修改{current}。",
    "Order {number} hasn't shipped yet, so I can change its delivery address right "
    "here{current}.",
)
ASK_ADDRESS = Text(
    "请发送新的收货人、手机号和详细地址（例如：张三 13800138000 上海市浦东新区世纪大道100号）。"
    "不改了请回复“算了”。",
    "Please send the new recipient, phone number and full address (for example: Zhang San "
    "13800138000, 100 Century Avenue, Pudong, Shanghai). To keep the current one, say "
    "\"cancel\".",
)
DONE = Text("好的，订单 {number} 的收货地址已改为：{address}。发货时会按新地址配送。",
            "Done: order {number} will now be delivered to {address}.")
SAME = Text("订单 {number} 的收货地址本来就是这个（{address}），不需要修改。",
            "Order {number} already goes to that address ({address}); nothing to change.")
KEPT = Text("好的，订单 {number} 的收货地址保持不变。",
            "All right, order {number} keeps its current address.")
KEPT_ANY = Text("好的，收货地址保持不变。", "All right, the address stays as it is.")
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
            # choose_order has spoken: verify first, pick one, or nothing to change
            return [SlotSet(CHANGEABLE, False)]
        events = order_choice.remember(order)
        agent = [{"title": AGENT_BUTTON.get(turn.language), "payload": "/human_handoff"}]
        if order.state in NOT_SHIPPED:
            address = masked_address(turn, order, customer)
            current = CURRENT.get(turn.language, address=address) if address else ""
            turn.say(BEFORE_SHIPPING, number=order.number, current=current)
            # the address form asks for the new one (action_ask_new_address)
            return events + [SlotSet(ORDER, order.number), SlotSet(NEW_ADDRESS, None),
                             SlotSet(CHANGEABLE, True)]
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
        return events + [SlotSet(CHANGEABLE, False)]

    def on_refused(self, error: KefuError, tracker: Tracker) -> EventList:
        # a wrong or foreign number is not tried again
        return order_choice.forget_order() + [SlotSet(CHANGEABLE, False)]


class ActionAskNewAddress(KefuAction):
    """The address form's question (with an example, and how to keep the old one)."""

    def name(self) -> str:
        return "action_ask_new_address"

    def act(self, turn: Turn) -> EventList:
        turn.say(ASK_ADDRESS)
        return []


class ValidateAddressForm(Guarded, FormValidationAction):
    """A message that cannot be an address is explained and asked again, never stored."""

    def name(self) -> str:
        return "validate_address_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> EventList:
        return await self.recovering(dispatcher, tracker, super().run(dispatcher, tracker, domain))

    def on_failed(self) -> EventList:
        return [SlotSet(REQUESTED_SLOT, None), SlotSet(CHANGEABLE, False)]

    def validate_new_address(self, value: Any, dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: dict[str, Any]) -> dict[str, Any]:
        if value is None:  # the slot emptied as the form starts: nothing was typed yet
            return {NEW_ADDRESS: None}
        try:
            return {NEW_ADDRESS: addresses.clean_address(str(value))}
        except InvalidAddress as error:
            dispatcher.utter_message(text=error.text(language_of(tracker)))
            return {NEW_ADDRESS: None}


class ActionSubmitAddress(KefuAction):
    """Change the order's address (refused if it shipped meanwhile) and confirm it masked."""

    def name(self) -> str:
        return "action_submit_address"

    def act(self, turn: Turn) -> EventList:
        customer, number = turn.require_customer(), turn.slot(ORDER)
        if customer is None or not number:
            return _forget()
        change = addresses.change_delivery_address(
            turn.session, customer_id=customer.id, number=str(number),
            address=str(turn.slot(NEW_ADDRESS) or ""), cipher=turn.backend.cipher)
        turn.say(DONE if change.changed else SAME, number=change.order.number,
                 address=change.masked)
        return _forget()

    def on_refused(self, error: KefuError, tracker: Tracker) -> EventList:
        return _forget()  # the refusal (shipped meanwhile, not an address) was said


class ActionKeepAddress(KefuAction):
    """The customer changed their mind: nothing changes."""

    def name(self) -> str:
        return "action_keep_address"

    def act(self, turn: Turn) -> EventList:
        number = turn.slot(ORDER)
        if number:
            turn.say(KEPT, number=number)
        else:
            turn.say(KEPT_ANY)
        return _forget()


def _forget() -> EventList:
    return [SlotSet(ORDER, None), SlotSet(NEW_ADDRESS, None), SlotSet(CHANGEABLE, None)]
