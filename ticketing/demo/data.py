"""A believable demo shop in one call: products, customers, orders, parcels, teams and agents.

Everything comes from ``random.Random(seed)`` and times are offsets from ``now``, so the same
seed always gives the same shop (same order numbers, same routes) and the data always looks
current. The demo agents share the password ``kefu-demo``: demo only, never for production.
The desk's tickets are replayed through the ticket services by ``demo_tickets``.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ticketing.shop import customers as customer_service
from ticketing.core import passwords
from ticketing.demo import conversations as demo_conversations
from ticketing.demo import tickets as demo_tickets
from ticketing.core.clock import utcnow
from ticketing.demo.catalog import (
    AGENTS, CARRIER_CODES, CARRIER_PREFIX, CITIES, CITY_EN, CUSTOMER_NAMES_EN,
    CUSTOMER_NAMES_ZH, EXCEPTIONS, HUBS, PRODUCTS, STREETS, TEAMS, WAREHOUSES, City,
)
from ticketing.core.errors import Conflict
from ticketing.core.models import (
    Agent, Availability, Customer, Order, OrderItem, OrderState, Product, RefundKind,
    RefundMethod, RefundRequest, RefundState, Role, Segment, Shipment, Team, TrackingEvent,
)
from ticketing.core.pii import PiiCipher

DEFAULT_SEED = 20261125
DEMO_PASSWORD = "kefu-demo"  # demo only: every demo agent logs in with it
DEMO_WIDGET_IDS = ("demo-1", "demo-2", "demo-3")

# how many orders of each state the demo shop has (160 in all)
STATE_COUNTS = {
    OrderState.PENDING_PAYMENT: 14, OrderState.PAID: 24, OrderState.SHIPPED: 36,
    OrderState.DELIVERED: 26, OrderState.COMPLETED: 44, OrderState.CANCELLED: 16,
}
# what happens to parcels still on the way, in rotation: about 3 in 8 are delayed
SHIPPED_SCENARIOS = (
    "late", "on_time", "stalled", "on_time", "exception", "on_time", "on_time", "on_time",
)
PAYMENT_METHODS = ("alipay", "wechat", "card")
PROMISED_DAYS = {"SF": 2, "JD": 2, "ZTO": 3, "YTO": 3, "EMS": 4}

H = timedelta(hours=1)
D = timedelta(days=1)


def is_empty(session: Session) -> bool:
    """True when the shop has no products, customers, orders, teams or agents yet."""
    return all(
        session.scalar(select(func.count()).select_from(model)) == 0
        for model in (Product, Customer, Order, Team, Agent)
    )


def load(
    session: Session, *, cipher: PiiCipher, seed: int = DEFAULT_SEED, now: datetime | None = None
) -> dict[str, int]:
    """Fill an empty database with the demo shop; refuses (``Conflict``) when not empty."""
    if not is_empty(session):
        raise Conflict("demo data is only loaded into an empty database")
    now = now or utcnow()
    rng = random.Random(seed)
    products = _products(session)
    people = _customers(session, rng, cipher, now)
    teams, agents = _desk(session, rng, now)
    builder = _OrderBuilder(session, rng, cipher, now, products)
    for state in _shuffled_states(rng):
        builder.build(state, rng.choice(people))
    identities = _identities(session, people, now)
    session.flush()
    desk = demo_tickets.build(session, rng=rng, now=now, people=[p.customer for p in people],
                              agents=agents)
    chats = demo_conversations.build(session, rng=rng, now=now)
    return {
        "products": len(products), "customers": len(people), "orders": builder.orders,
        "shipments": builder.shipments, "tracking_events": builder.events,
        "refunds": builder.refunds, "teams": len(teams), "agents": len(agents),
        "identities": identities, "tickets": desk.tickets, "surveys": desk.surveys,
        "conversations": chats,
    }


def _products(session: Session) -> list[Product]:
    rows = []
    for i, p in enumerate(PRODUCTS, start=1):
        custom = "定制" in p.name_zh
        if custom:
            delivery = ("定制商品，付款后7天内制作发货", "Made to order, ships within 7 days of payment")
        elif p.category == "food":
            delivery = ("顺丰冷链/快递，48小时内发货", "SF Express, ships within 48 hours")
        else:
            delivery = ("全国包邮，48小时内发货", "Free shipping nationwide, ships within 48 hours")
        rows.append(Product(
            sku=f"KF{i:04d}", name_zh=p.name_zh, name_en=p.name_en, aliases=list(p.aliases),
            category=p.category,
            specs={"zh": {k: v for k, v, _, _ in p.specs}, "en": {k: v for _, _, k, v in p.specs}},
            price_cents=round(p.price_yuan * 100), stock=p.stock, low_stock_threshold=5,
            no_reason_return_7d=p.return_7d, delivery_zh=delivery[0], delivery_en=delivery[1],
        ))
    session.add_all(rows)
    session.flush()
    return rows


class _Person:
    """A demo customer with the city their parcels go to."""

    def __init__(self, customer: Customer, city: City, district: str, address: str) -> None:
        self.customer, self.city, self.district, self.address = customer, city, district, address


def _customers(
    session: Session, rng: random.Random, cipher: PiiCipher, now: datetime
) -> list[_Person]:
    people: list[_Person] = []
    phones: set[str] = set()
    names = [(n, "zh") for n in CUSTOMER_NAMES_ZH] + [(n, "en") for n in CUSTOMER_NAMES_EN]
    for i, (name, language) in enumerate(names):
        phone = ""
        while not phone or phone in phones:
            phone = "1" + rng.choice("3456789") + _digits(rng, 9)
        phones.add(phone)
        city = rng.choice(CITIES)
        district = rng.choice(city.districts)
        address = (f"{city.zh}市{district}{rng.choice(STREETS)}{rng.randint(1, 999)}号"
                   f"{rng.randint(1, 30)}栋{rng.randint(1, 33)}{rng.randint(1, 4):02d}室")
        segment = (Segment.VIP if i % 6 == 0 else
                   Segment.POTENTIAL if i % 7 == 3 else Segment.REGULAR)
        customer = customer_service.create_customer(
            session, cipher=cipher, name=name, phone=phone, address=address, language=language,
            segment=segment, now=now - rng.randint(30, 700) * D,
        )
        people.append(_Person(customer, city, district, address))
    return people


def _desk(session: Session, rng: random.Random, now: datetime) -> tuple[list[Team], list[Agent]]:
    teams = {t.code: Team(code=t.code, name_zh=t.name_zh, name_en=t.name_en, tier=t.tier,
                          categories=list(t.categories)) for t in TEAMS}
    session.add_all(teams.values())
    session.flush()
    # One scrypt hash for all: they share the password, and hashing dominates load() time.
    # The agents then share a salt too, which is acceptable only because this is demo data.
    shared_hash = passwords.hash_password(DEMO_PASSWORD)
    agents = []
    for login, display, first, role, team in AGENTS:
        agents.append(Agent(
            login=login, display_name=display, first_name=first, role=Role(role),
            team_id=teams[team].id,
            availability=rng.choice((Availability.ONLINE, Availability.ONLINE, Availability.AWAY,
                                     Availability.OFFLINE)),
            password_hash=shared_hash,
            created_at=now - rng.randint(60, 400) * D,
        ))
    session.add_all(agents)
    session.flush()
    return list(teams.values()), agents


def _shuffled_states(rng: random.Random) -> list[OrderState]:
    states = [state for state, count in STATE_COUNTS.items() for _ in range(count)]
    rng.shuffle(states)
    return states


def _identities(session: Session, people: list[_Person], now: datetime) -> int:
    """Widget visitors demo-1..3 already linked to a VIP, a regular and an English customer."""
    english = next(p for p in people if p.customer.language == "en")
    regular = next(p for p in people if p.customer.segment is Segment.REGULAR)
    chosen = [people[0], regular, english]
    for external_id, person in zip(DEMO_WIDGET_IDS, chosen):
        identity = customer_service.link_identity(
            session, channel="widget", external_id=external_id,
            customer_id=person.customer.id, method="demo", now=now,
        )
        identity.language = person.customer.language
    return len(chosen)


class _OrderBuilder:
    """Builds one order in a given state, with the payments, parcel and refunds it implies."""

    def __init__(self, session: Session, rng: random.Random, cipher: PiiCipher, now: datetime,
                 products: list[Product]) -> None:
        self.session, self.rng, self.cipher, self.now = session, rng, cipher, now
        self.products = products
        self.numbers: set[str] = set()
        self.tracking_numbers: set[str] = set()
        self.orders = self.shipments = self.events = self.refunds = 0
        self.shipped_seen = 0

    def _number(self) -> str:
        number = ""
        while not number or number in self.numbers:
            length = self.rng.choice((16, 17, 18, 19))
            number = str(self.rng.randint(1, 9)) + _digits(self.rng, length - 1)
        self.numbers.add(number)
        return number

    def build(self, state: OrderState, person: _Person) -> Order:
        rng, now = self.rng, self.now
        picks = rng.sample(self.products, rng.choice((1, 1, 1, 2, 2, 3)))
        lines = [(p, rng.choice((1, 1, 1, 2))) for p in picks]
        total = sum(p.price_cents * q for p, q in lines)
        ages = {  # how long ago the order was placed, by state
            OrderState.PENDING_PAYMENT: (0.2, 20), OrderState.PAID: (2, 60),
            OrderState.SHIPPED: (36, 170), OrderState.DELIVERED: (72, 240),
            OrderState.COMPLETED: (300, 1440), OrderState.CANCELLED: (24, 960),
        }
        low, high = ages[state]
        created = now - timedelta(hours=rng.uniform(low, high))
        paid = state is not OrderState.PENDING_PAYMENT and not (
            state is OrderState.CANCELLED and rng.random() < 0.5)
        order = Order(
            number=self._number(), customer_id=person.customer.id, state=state,
            total_cents=total, paid_cents=total if paid else 0, refunded_cents=0,
            payment_method=rng.choice(PAYMENT_METHODS) if paid else None,
            address_enc=self.cipher.encrypt(person.address, field="address"),
            created_at=created,
            paid_at=created + timedelta(minutes=rng.randint(1, 30)) if paid else None,
        )
        self.session.add(order)
        self.session.flush()
        self.session.add_all(OrderItem(order_id=order.id, product_id=p.id, quantity=q,
                                       unit_price_cents=p.price_cents) for p, q in lines)
        self.orders += 1
        if state is OrderState.CANCELLED:
            order.cancelled_at = created + timedelta(hours=rng.uniform(0.5, 20))
            if paid:  # cancelled after paying: refunded in full
                order.refunded_cents = total
                self._refund(order, RefundKind.CANCEL_AND_REFUND, "changed_mind", total,
                             order.cancelled_at)
        elif state in (OrderState.SHIPPED, OrderState.DELIVERED, OrderState.COMPLETED):
            self._ship(order, person)
            if state is not OrderState.SHIPPED and rng.random() < 0.15:  # a partial return
                product, quantity = lines[0]
                amount = product.price_cents
                order.refunded_cents = amount
                self._refund(order, RefundKind.RETURN_AND_REFUND,
                             rng.choice(("quality", "damaged", "wrong_size")), amount,
                             order.delivered_at + 3 * D)
        return order

    def _refund(self, order: Order, kind: RefundKind, reason: str, amount: int,
                done_at: datetime) -> None:
        applied = done_at - timedelta(hours=self.rng.uniform(2, 30))
        self.session.add(RefundRequest(
            order_id=order.id, customer_id=order.customer_id,
            idempotency_key=f"demo-{order.number}", kind=kind, state=RefundState.DONE,
            reason=reason, amount_cents=amount, method=RefundMethod.ORIGINAL,
            created_at=min(applied, self.now), reviewed_at=min(applied + H, self.now),
            done_at=min(done_at, self.now),
        ))
        self.refunds += 1

    def _tracking_number(self, carrier: str) -> str:
        number = ""
        while not number or number in self.tracking_numbers:
            number = CARRIER_PREFIX[carrier] + _digits(self.rng, 12)
        self.tracking_numbers.add(number)
        return number

    def _ship(self, order: Order, person: _Person) -> None:
        rng, now = self.rng, self.now
        carrier = rng.choice(CARRIER_CODES)
        assert order.paid_at is not None
        shipped = order.paid_at + timedelta(hours=rng.uniform(3, 24))
        promised = shipped + PROMISED_DAYS[carrier] * D
        scenario = "delivered"
        if order.state is OrderState.SHIPPED:
            self.shipped_seen += 1
            scenario = SHIPPED_SCENARIOS[self.shipped_seen % len(SHIPPED_SCENARIOS)]
            if scenario == "late":  # shipped long ago, promise passed, still moving
                shipped = now - timedelta(hours=rng.uniform(80, 120))
                promised = now - timedelta(hours=rng.uniform(8, 30))
            elif scenario == "stalled":  # remote route, promise holds but no scan for days
                shipped = now - timedelta(hours=rng.uniform(70, 90))
                promised = shipped + 6 * D
            else:
                shipped = now - timedelta(hours=rng.uniform(14, 40))
                promised = max(promised, now + 10 * H)
            _paid_before(order, shipped - timedelta(hours=rng.uniform(3, 20)))
        order.shipped_at = shipped
        stages = _stages(rng, person)
        if scenario == "delivered":
            delivered = min(promised + timedelta(hours=rng.uniform(-30, 12)), now - H)
            delivered = max(delivered, shipped + 12 * H)
            order.delivered_at = delivered
            if order.state is OrderState.COMPLETED:
                order.completed_at = min(delivered + 7 * D, now)
            times, reached = _spread(rng, shipped, delivered, len(stages)), stages
        elif scenario == "stalled":
            last_scan = now - timedelta(hours=rng.uniform(52, 66))
            times, reached = _spread(rng, shipped, last_scan, 3), stages[:3]
        else:
            count = 5 if scenario == "late" else rng.randint(2, 4)
            last_scan = now - timedelta(hours=rng.uniform(1, 12))
            times, reached = _spread(rng, shipped, last_scan, count), stages[:count]
        shipment = Shipment(order_id=order.id, carrier=carrier,
                            tracking_number=self._tracking_number(carrier), shipped_at=shipped,
                            promised_by=promised, delivered_at=order.delivered_at)
        self.session.add(shipment)
        self.session.flush()
        events = [TrackingEvent(shipment_id=shipment.id, at=at, status=s[0], location_zh=s[1],
                                location_en=s[2], description_zh=s[3], description_en=s[4])
                  for at, s in zip(times, reached)]
        if scenario == "exception":
            zh, en = rng.choice(EXCEPTIONS)
            last = reached[len(events) - 1]
            at = min(times[-1] + timedelta(minutes=rng.randint(20, 200)), now - 0.1 * H)
            events.append(TrackingEvent(
                shipment_id=shipment.id, at=at, status="exception", location_zh=last[1],
                location_en=last[2], description_zh=zh, description_en=en,
            ))
        self.session.add_all(events)
        self.shipments += 1
        self.events += len(events)


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(count))


def _paid_before(order: Order, latest: datetime) -> None:
    """Move placing and paying earlier when the chosen shipping time would precede them."""
    assert order.paid_at is not None
    if order.paid_at > latest:
        shift = order.paid_at - latest
        order.created_at -= shift
        order.paid_at -= shift


def _spread(rng: random.Random, start: datetime, end: datetime, count: int) -> list[datetime]:
    """``count`` increasing times: the first at ``start`` (+ a little), the last at ``end``."""
    if count == 1:
        return [end]
    inner = sorted(rng.uniform(0.05, 0.95) for _ in range(count - 2))
    span = end - start
    return [start + 0.02 * span] + [start + f * span for f in inner] + [end]


def _stages(rng: random.Random, person: _Person) -> list[tuple[str, str, str, str, str]]:
    """A parcel's journey: (status, location zh, location en, description zh, description en)."""
    origin = rng.choice(WAREHOUSES)
    hub = rng.choice([h for h in HUBS if h not in (origin, person.city.zh)] or list(HUBS))
    dest, dest_en = person.city.zh, person.city.en
    o_en, h_en = CITY_EN[origin], CITY_EN[hub]
    return [
        ("picked_up", origin, o_en, f"【{origin}】快递员已揽收",
         f"Picked up by the courier in {o_en}"),
        ("in_transit", f"{origin}转运中心", f"{o_en} sorting centre",
         f"已从【{origin}转运中心】发出，下一站【{hub}转运中心】",
         f"Left the {o_en} sorting centre for the {h_en} sorting centre"),
        ("in_transit", f"{hub}转运中心", f"{h_en} sorting centre",
         f"已到达【{hub}转运中心】", f"Arrived at the {h_en} sorting centre"),
        ("in_transit", f"{dest}{person.district}营业部", f"{dest_en} local depot",
         f"已到达【{dest}{person.district}营业部】", f"Arrived at the local depot in {dest_en}"),
        ("out_for_delivery", dest, dest_en, f"【{dest}】快递员正在派送，请保持电话畅通",
         f"Out for delivery in {dest_en}; please keep your phone on"),
        ("delivered", dest, dest_en,
         rng.choice(("已签收，签收人：本人", "已放入快递柜，请凭取件码取件", "已签收，签收人：门卫")),
         "Delivered and signed for"),
    ]
