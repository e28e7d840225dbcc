"""Product questions (rules §PROD-1, §PROD-2): what it is, what it costs, and whether it is in stock.

Anyone may ask, verified or not. Names are matched fuzzily (``catalog.resolve``): one clear
match is answered; near-ties are offered as up to three buttons instead of guessing; no match
gets suggestions. Stock is read live and said as it is: an out-of-stock product is never
described as available or deliverable.
"""

from __future__ import annotations

import json

from rasa_sdk.events import SlotSet

from actions.base import EventList, KefuAction, Turn
from ticketing.core.clock import utcnow
from ticketing.shop import catalog
from ticketing.shop.ingest import restock
from ticketing.core.i18n import Text
from ticketing.core.models import Product
from ticketing.core.money import format_amount

WHICH_ONE = Text(zh="您说的是哪一款呢？", en="Which one do you mean?")
NO_MATCH = Text(
    zh="没有找到“{query}”这款商品。您是不是想找：",
    en="I couldn't find a product called \"{query}\". Were you looking for one of these?",
)
NO_MATCH_NO_SUGGESTIONS = Text(
    zh="没有找到“{query}”这款商品，可以换个说法或告诉我完整的商品名。",
    en="I couldn't find a product called \"{query}\". Could you give me its full name?",
)
ASK_PRODUCT = Text(
    zh="您想了解哪款商品？直接告诉我商品名就好，也可以看看这些热卖商品：",
    en="Which product would you like to know about? Just tell me its name, or have a look at "
       "these favourites:",
)
ASK_PRODUCT_PLAIN = Text(zh="您想了解哪款商品？直接告诉我商品名就好。",
                         en="Which product would you like to know about? Just tell me its name.")
_STOCK = Text(zh="{name}（{price}）：{status}", en="{name} ({price}): {status}")
OFFER_RESTOCK = Text(zh="需要的话，到货后我可以在这里第一时间通知您。",
                     en="If you like, I can tell you here as soon as it is back in stock.")
RESTOCK_BUTTON = Text(zh="到货提醒我", en="Notify me when it's back")
RESTOCK_SET = Text(zh="好的，{name} 到货后我会在这里通知您。",
                   en="Done: I'll tell you here as soon as {name} is back in stock.")
BACK_ALREADY = Text(zh="{name} 现在就有货：{status}", en="{name} is available right now: {status}")


def product_mentioned(turn: Turn) -> str | None:
    """The product named in this message: the longest non-blank ``product`` entity.

    The NLU sometimes tags a stray fragment next to the real name ("那" + "蓝牙耳机", " " +
    "power bank"); the longest value is the name the customer meant.
    """
    values = [str(v).strip() for v in turn.tracker.get_latest_entity_values("product")]
    values = [v for v in values if v]
    return max(values, key=len) if values else None


def product_buttons(turn: Turn, products: list[Product], *, intent: str) -> list[dict[str, str]]:
    """One button per product, named in the customer's language; a click asks again by name."""
    buttons = []
    for product in products[: catalog.MAX_BUTTONS]:
        name = catalog.product_name(product, language=turn.language)
        payload = "/" + intent + json.dumps({"product": name}, ensure_ascii=False)
        buttons.append({"title": f"{name} {format_amount(product.price_cents)}",
                        "payload": payload})
    return buttons


class ProductAction(KefuAction):
    """Find the product the customer means, then let the subclass answer about it."""

    intent = "product_info"

    def answer(self, turn: Turn, product: Product) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def act(self, turn: Turn) -> EventList:
        query = product_mentioned(turn) or str(turn.slot("product") or "").strip()
        if not query:
            popular = catalog.popular(turn.session, limit=catalog.MAX_BUTTONS)
            if popular:
                turn.say(ASK_PRODUCT, buttons=product_buttons(turn, popular, intent=self.intent))
            else:
                turn.say(ASK_PRODUCT_PLAIN)
            return []
        resolution = catalog.resolve(turn.session, query=query)
        if resolution.product is not None:
            self.answer(turn, resolution.product)
            return [SlotSet("product", catalog.product_name(resolution.product, language=turn.language))]
        if resolution.ambiguous:
            choices = [m.product for m in resolution.candidates]
            turn.say(WHICH_ONE, buttons=product_buttons(turn, choices, intent=self.intent))
            return []
        suggestions = resolution.suggestions or catalog.popular(turn.session,
                                                                limit=catalog.MAX_BUTTONS)
        if suggestions:
            turn.say(NO_MATCH, query=query,
                     buttons=product_buttons(turn, suggestions, intent=self.intent))
        else:
            turn.say(NO_MATCH_NO_SUGGESTIONS, query=query)
        return [SlotSet("product", None)]  # an unknown name is not worth remembering


class ActionProductInfo(ProductAction):
    """Name, price, specs, delivery terms, return terms and live stock."""

    intent = "product_info"

    def name(self) -> str:
        return "action_product_info"

    def answer(self, turn: Turn, product: Product) -> None:
        turn.say(catalog.describe(product, language=turn.language))
        offer_restock(turn, product)


class ActionProductStock(ProductAction):
    """In stock, only N left, or out of stock: exactly what the database says right now."""

    intent = "product_stock"

    def name(self) -> str:
        return "action_product_stock"

    def answer(self, turn: Turn, product: Product) -> None:
        turn.say(_STOCK.get(turn.language, name=catalog.product_name(product, language=turn.language),
                            price=format_amount(product.price_cents),
                            status=catalog.stock_status(product, language=turn.language)))
        offer_restock(turn, product)


def offer_restock(turn: Turn, product: Product) -> None:
    """Sold out: say so (done by the caller) and offer a notice when it is back; no ticket."""
    if catalog.stock_level(product) is not catalog.StockLevel.OUT:
        return
    name = catalog.product_name(product, language=turn.language)
    payload = "/restock_notice" + json.dumps({"product": name}, ensure_ascii=False)
    turn.say(OFFER_RESTOCK, buttons=[{"title": RESTOCK_BUTTON.get(turn.language),
                                      "payload": payload}])


class ActionRestockNotice(ProductAction):
    """"Tell me when it's back": a stored wish the shop's stock update fires (once)."""

    intent = "restock_notice"

    def name(self) -> str:
        return "action_restock_notice"

    def answer(self, turn: Turn, product: Product) -> None:
        name = catalog.product_name(product, language=turn.language)
        if catalog.stock_level(product) is not catalog.StockLevel.OUT:
            turn.say(BACK_ALREADY, name=name,
                     status=catalog.stock_status(product, language=turn.language))
            return
        customer = turn.require_customer()
        if customer is None:
            return  # asked to verify first: a notice needs to know who to tell
        restock.subscribe(turn.session, customer_id=customer.id, product_id=product.id,
                          now=utcnow())
        turn.say(RESTOCK_SET, name=name)
