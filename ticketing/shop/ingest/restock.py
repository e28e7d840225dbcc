"""Back in stock: customers who asked about a sold-out product are told, once, when the shop's
data says it can be ordered again.

The bot records the wish (:func:`subscribe`, issue 12); a product row that takes the stock from
0 to more fires every waiting subscription of that product (:func:`fire`): one outbox message
in the customer's language, and ``notified_at`` so it never fires again. Asking again after
that is a new subscription.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ticketing.core.errors import CustomerNotFound, NotFound
from ticketing.core.i18n import Text
from ticketing.core.models import Customer, Product, RestockSubscription
from ticketing.shop.catalog import product_name
import ticketing.shop.ingest.notices as notices

BACK_IN_STOCK = Text(
    "您关注的「{name}」到货了，现在可以下单。想了解详情，直接问我。",
    "{name}, which you asked about, is back in stock and can be ordered now. Ask me for the "
    "details.",
)


def _waiting(session: Session, *, customer_id: int, product_id: int
             ) -> RestockSubscription | None:
    return session.scalars(select(RestockSubscription).where(
        RestockSubscription.customer_id == customer_id,
        RestockSubscription.product_id == product_id,
        RestockSubscription.notified_at.is_(None))).first()


def subscribe(session: Session, *, customer_id: int, product_id: int, now: datetime
              ) -> RestockSubscription:
    """The customer's waiting subscription for the product, made if there is none yet."""
    if session.get(Customer, customer_id) is None:
        raise CustomerNotFound()
    if session.get(Product, product_id) is None:
        raise NotFound("no such product", product_id=product_id)
    found = _waiting(session, customer_id=customer_id, product_id=product_id)
    if found is not None:
        return found
    subscription = RestockSubscription(customer_id=customer_id, product_id=product_id,
                                       created_at=now)
    try:
        with session.begin_nested():
            session.add(subscription)
    except IntegrityError:  # the same wish recorded a moment ago by another process
        found = _waiting(session, customer_id=customer_id, product_id=product_id)
        if found is None:
            raise
        return found
    return subscription


def fire(session: Session, *, product: Product, now: datetime) -> int:
    """Tell every customer waiting for ``product`` that it is back; returns how many were."""
    waiting = session.scalars(
        select(RestockSubscription)
        .where(RestockSubscription.product_id == product.id,
               RestockSubscription.notified_at.is_(None))
        .order_by(RestockSubscription.id)
        .with_for_update()).all()
    told = 0
    for subscription in waiting:
        message = notices.tell_once(
            session, customer_id=subscription.customer_id,
            event_key=f"restock:{subscription.id}", kind=notices.RESTOCK,
            render=lambda lang: BACK_IN_STOCK.get(lang, name=product_name(product, language=lang)),
            payload={"product_id": product.id, "sku": product.sku}, now=now)
        subscription.notified_at = now
        told += message is not None
    session.flush()
    return told
