"""Demo tickets: a desk in mid-flight, made by replaying each ticket's story through the services.

Forty tickets cover every pair of category and state exactly once (ticket ``i`` has category
``i % 8`` and state ``i % 5``). Each story is replayed with backdated ``now`` values through
the real services (create, claim, reply, escalate, wait, solve, rate, reopen, close), so events,
SLA timers, surveys and outbox rows are exactly what live use would have left. Finally the
SLA clocks that ran out while nobody was looking are fired as the worker would have (warning
marked, breach escalated; the agents' alert notifications are left out).
Everything depends only on the seed, ``now`` and the configured business hours.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.conversations import outbox
from ticketing.desk import csat, escalation, ownership, sla, tickets
from ticketing.core.models import (
    Agent, Category, Customer, Order, OutboxMessage, Role, SlaTimer, Ticket, TicketState, Tier,
    TimerStatus,
)

H = timedelta(hours=1)
CATEGORIES = tuple(Category)
STATES = (TicketState.NEW, TicketState.OPEN, TicketState.WAITING_CUSTOMER, TicketState.SOLVED,
          TicketState.CLOSED)
# how long ago each ticket of a state was created (hours), in rotation: the mix gives SLA
# clocks that are in time, in their warning window, and run out
AGES = {
    TicketState.NEW: (0.5, 40, 7, 30, 60, 2, 20, 90),
    TicketState.OPEN: (4, 26, 10, 45, 70, 15, 22, 100),
    TicketState.WAITING_CUSTOMER: (8, 30, 50, 12, 75, 20, 40, 26),
    TicketState.SOLVED: (30, 60, 90, 40, 110, 50, 80, 130),
    TicketState.CLOSED: (200, 320, 150, 480, 260, 400, 190, 600),
}
SCORES = (5, 4, 5, 3, 5, 2, 4, 5, 1, 4, 5, 3, 4, 5, 2, 5)  # cycled; a few tickets are unrated
COMMENTS = {
    1: ("等了好几天都没人管，很失望。", "Waited days for anyone to help. Very disappointed."),
    2: ("问题解决了，但是太慢了。", "Solved in the end, but far too slowly."),
    5: ("客服很耐心，点赞！", "Very patient and friendly, thank you!"),
}


class Script(NamedTuple):
    """One category's conversation, in (zh, en) pairs; ``{order}`` is the order number."""

    subject: tuple[str, str]
    customer: tuple[str, str]
    bot: tuple[str, str]
    reply: tuple[str, str]
    resolution: tuple[str, str]


SCRIPTS: dict[Category, Script] = {
    Category.LOGISTICS: Script(
        ("订单 {order} 的快递好几天没动了", "Parcel for order {order} has not moved for days"),
        ("快递三天没有更新了，到底什么时候能到？", "No tracking update for three days. When will it arrive?"),
        ("我帮您转人工客服，物流同事会跟进。", "I am passing you to an agent; logistics will follow up."),
        ("已联系快递公司核实，包裹在中转站滞留，今天会重新发出。",
         "I checked with the carrier: the parcel was held at a hub and leaves again today."),
        ("包裹已重新派送并签收。", "The parcel was re-dispatched and delivered."),
    ),
    Category.QUALITY: Script(
        ("订单 {order} 收到的商品有破损", "Item from order {order} arrived damaged"),
        ("耳机盒子压坏了，左耳没有声音。", "The box was crushed and the left earbud is silent."),
        ("很抱歉！请拍照，我为您转售后客服。", "Sorry about that! Please take photos; I am passing you to after-sales."),
        ("照片收到了，确认是运输破损，我们给您补发一副新的。",
         "Photos received; it is transport damage, so we are sending you a new pair."),
        ("已补发新商品，旧商品无需寄回。", "A replacement was sent; no need to return the old one."),
    ),
    Category.PAYMENT: Script(
        ("订单 {order} 重复扣款", "Charged twice for order {order}"),
        ("我付了两次钱，银行卡扣了两笔！", "I was charged twice, two payments left my card!"),
        ("我为您转支付组核实。", "Let me pass you to our payments team."),
        ("核实到第二笔是重复支付，已经原路退回，1-3个工作日到账。",
         "The second charge was a duplicate and has been reversed; it arrives in 1-3 working days."),
        ("重复扣款已退回。", "The duplicate charge was refunded."),
    ),
    Category.REFUND: Script(
        ("订单 {order} 的退款还没到账", "Refund for order {order} has not arrived"),
        ("退款申请通过一周了，钱还没到账。", "My refund was approved a week ago but the money has not arrived."),
        ("我帮您转售后客服查询退款进度。", "I am passing you to after-sales to check the refund."),
        ("退款已由支付宝处理，流水号已发给您，请查看账单。",
         "Alipay has processed the refund; we sent you the reference, please check your statement."),
        ("客户确认退款已到账。", "The customer confirmed the refund arrived."),
    ),
    Category.ORDER: Script(
        ("订单 {order} 想改收货地址", "Change the delivery address of order {order}"),
        ("我搬家了，能改一下收货地址吗？", "I have moved house. Can I change the delivery address?"),
        ("修改地址需要人工处理，我帮您转接。", "Address changes need an agent; transferring you now."),
        ("地址已经改好了，请核对一下新地址。", "The address is updated; please check the new one."),
        ("收货地址已修改。", "The delivery address was changed."),
    ),
    Category.PRODUCT: Script(
        ("智能手表能不能测血氧？", "Does the smart watch measure blood oxygen?"),
        ("手表 S3 支持血氧和睡眠监测吗？防水吗？", "Does the Watch S3 track blood oxygen and sleep? Is it waterproof?"),
        ("这个问题我帮您转给客服确认。", "Let me ask an agent to confirm that for you."),
        ("支持血氧和睡眠监测，防水等级5ATM，可以游泳佩戴。",
         "Yes to blood oxygen and sleep tracking; it is 5 ATM water resistant, fine for swimming."),
        ("已解答商品功能问题。", "Answered the product question."),
    ),
    Category.ACCOUNT: Script(
        ("账号登录不上", "Cannot log in to my account"),
        ("换了手机号以后账号登录不了了。", "Since I changed my phone number I cannot log in."),
        ("账号问题需要人工核实身份，我帮您转接。", "Account issues need an identity check by an agent."),
        ("身份已核实，手机号已更新为新号码，请重新登录。",
         "Identity verified and your phone number updated; please log in again."),
        ("已更新绑定手机号。", "The account phone number was updated."),
    ),
    Category.OTHER: Script(
        ("想开发票", "I need an invoice"),
        ("公司报销需要开增值税发票，怎么开？", "I need a VAT invoice for my company. How do I get one?"),
        ("我帮您转人工客服处理发票。", "I am passing you to an agent for the invoice."),
        ("发票已开好，电子版发到您的邮箱了。", "The invoice is issued and the PDF was e-mailed to you."),
        ("已开具电子发票。", "The electronic invoice was issued."),
    ),
}
FOLLOW_UP = ("好的，谢谢，我等消息。", "OK, thanks, I will wait.")
WAIT_QUESTION = ("麻烦提供一下订单截图，我们好核实。", "Could you send a screenshot of the order so we can check?")
NOT_SOLVED = ("还是不行，问题没有解决。", "Still not working, the problem is not solved.")
SECOND_REPLY = ("抱歉给您添麻烦了，我重新处理了一遍，请再试试。",
                "Sorry for the trouble. I have handled it again; please try once more.")
ESCALATE_REASON = "客户情绪激动，需要专员处理 / upset customer, needs a specialist"


class Counts(NamedTuple):
    tickets: int
    surveys: int


def build(session: Session, *, rng: random.Random, now: datetime, people: Sequence[Customer],
          agents: Sequence[Agent]) -> Counts:
    """Create the demo tickets; ``people`` and ``agents`` as loaded, in id order."""
    orders: dict[int, list[Order]] = {}
    for order in session.scalars(select(Order).order_by(Order.id)):
        orders.setdefault(order.customer_id, []).append(order)
    seen: dict[TicketState, int] = {}
    surveys = 0
    story = _Story(session, rng, now, agents)
    for i in range(len(CATEGORIES) * len(STATES)):
        category, state = CATEGORIES[i % len(CATEGORIES)], STATES[i % len(STATES)]
        n = seen[state] = seen.get(state, -1) + 1
        about_order = category not in (Category.PRODUCT, Category.ACCOUNT, Category.OTHER)
        pool = [p for p in people if orders.get(p.id)] if about_order else list(people)
        customer = pool[rng.randrange(len(pool))]
        order = rng.choice(orders[customer.id]) if about_order else None
        created = now - AGES[state][n % len(AGES[state])] * H
        surveys += story.play(n, category, state, customer, order, created)
    _fire_overdue(session, now)
    _delivered(session)
    return Counts(len(CATEGORIES) * len(STATES), surveys)


class _Story:
    """Replays one ticket's life, picking who works it the way the desk would."""

    def __init__(self, session: Session, rng: random.Random, now: datetime,
                 agents: Sequence[Agent]) -> None:
        self.session, self.rng, self.now = session, rng, now
        self.agents = [a for a in agents if a.role in (Role.AGENT, Role.SUPERVISOR)]
        self.scores = 0

    def _owner(self, ticket: Ticket) -> Agent:
        """An agent of a team serving the category at the ticket's tier (supervisors else)."""
        fits = [a for a in self.agents if a.role is Role.AGENT and a.tier == ticket.tier
                and a.team is not None and ({"*", ticket.category.value} & set(a.team.categories))]
        fits = fits or [a for a in self.agents if a.role is Role.SUPERVISOR]
        return fits[self.rng.randrange(len(fits))]

    def play(self, n: int, category: Category, state: TicketState, customer: Customer,
             order: Order | None, created: datetime) -> int:
        rng, session = self.rng, self.session
        lang = 0 if customer.language == "zh" else 1
        script = SCRIPTS[category]
        number = order.number if order else ""
        # a few came in by phone or e-mail and were entered (hence owned) by an agent
        desk = state is not TicketState.NEW and rng.random() < 0.15
        channel = "desk" if desk else rng.choice(("telegram", "widget"))
        transcript = () if channel == "desk" else (
            {"author_type": "customer", "body": script.customer[lang], "at": created - 0.1 * H},
            {"author_type": "bot", "body": script.bot[lang], "at": created - 0.05 * H},
        )
        desk_agent = next(a for a in self.agents if a.role is Role.AGENT)
        ticket = tickets.create_ticket(
            session, customer_id=customer.id, subject=script.subject[lang].format(order=number),
            channel=channel, language=customer.language, category=category,
            conversation_id=None if channel == "desk" else f"{channel}:kefu-demo-{customer.id}",
            order_id=order.id if order else None, transcript=transcript,
            created_by_agent_id=desk_agent.id if channel == "desk" else None,
            text=script.customer[lang], now=created,
        )
        if state is TicketState.NEW:
            return 0
        at = self._plan(n, state, created)
        owner = ticket.owner_id or self._claim(ticket, at["claim"])

        def reply(body: str, when: datetime) -> None:
            tickets.agent_reply(session, ticket_id=ticket.id, agent_id=owner, body=body, now=when)

        reply(script.reply[lang], at["reply"])
        if n % 3 == 1 and ticket.tier < Tier.L3.value:
            escalation.escalate(session, ticket_id=ticket.id, reason=ESCALATE_REASON,
                                source="agent", by_agent_id=owner, now=at["escalate"])
        if state is TicketState.OPEN:
            return 0
        tickets.wait_for_customer(session, ticket_id=ticket.id, agent_id=owner,
                                  reason=WAIT_QUESTION[lang], now=at["wait"])
        if state is TicketState.WAITING_CUSTOMER:
            return 0
        tickets.add_customer_message(session, ticket_id=ticket.id, body=FOLLOW_UP[lang],
                                     now=at["back"])
        tickets.solve(session, ticket_id=ticket.id, agent_id=owner,
                      resolution=script.resolution[lang], now=at["solve"])
        if "reopen" in at:  # not solved after all: the customer writes back, to the owner
            tickets.add_customer_message(session, ticket_id=ticket.id, body=NOT_SOLVED[lang],
                                         now=at["reopen"])
            reply(SECOND_REPLY[lang], at["second"])
            tickets.solve(session, ticket_id=ticket.id, agent_id=owner,
                          resolution=script.resolution[lang], now=at["resolve"])
        rated = self._rate(ticket, customer, lang, at["rate"])
        if state is TicketState.CLOSED:
            tickets.close(session, ticket_id=ticket.id, actor_type="agent", actor_id=owner,
                          now=at["close"])
        return rated

    def _plan(self, n: int, state: TicketState, created: datetime) -> dict[str, datetime]:
        """When each step happens. Every fourth first reply and every fifth resolution are
        late (SLA breached); the whole story is squeezed if it would not end before now."""
        u = self.rng.uniform
        h = {"claim": u(0.05, 0.5)}
        h["reply"] = h["claim"] + (30 if n % 4 == 3 else u(0.1, 2.5))
        h["escalate"], h["wait"] = h["reply"] + 0.2, h["reply"] + 0.3
        h["back"] = h["wait"] + u(2, 10)
        h["solve"] = last_solve = h["back"] + (80 if n % 5 == 4 else u(1, 20))
        if n % 4 == 1:
            h["reopen"] = h["solve"] + u(1, 8)
            h["second"] = h["reopen"] + u(0.2, 2)
            h["resolve"] = last_solve = h["second"] + u(3, 6)
        h["rate"] = last_solve + u(0.1, 3)
        h["close"] = last_solve + u(24, 72)
        ends = {TicketState.OPEN: "escalate", TicketState.WAITING_CUSTOMER: "wait",
                TicketState.SOLVED: "rate", TicketState.CLOSED: "close"}
        age = (self.now - created) / H - 0.25
        squeeze = min(1.0, age / h[ends[state]])
        return {step: created + hours * squeeze * H for step, hours in h.items()}

    def _claim(self, ticket: Ticket, at: datetime) -> int:
        owner = self._owner(ticket)
        ownership.claim(self.session, ticket_id=ticket.id, agent_id=owner.id, now=at)
        return owner.id

    def _rate(self, ticket: Ticket, customer: Customer, lang: int, at: datetime) -> int:
        """Most customers rate; every seventh survey stays unanswered. Returns surveys sent."""
        self.scores += 1
        if self.scores % 7 == 0:
            return 1
        score = SCORES[self.scores % len(SCORES)]
        comment = COMMENTS.get(score) if self.scores % 3 == 0 else None
        csat.record_score(self.session, customer_id=customer.id, ticket_id=ticket.id,
                          score=score, comment=comment[lang] if comment else None, now=at)
        return 1


def _fire_overdue(session: Session, now: datetime) -> None:
    """Give the warnings and breaches the worker would have given by ``now``: a breach
    escalates the ticket (the owner stays accountable), as the worker's breach handler does."""
    due = session.scalars(
        select(SlaTimer).where(SlaTimer.status == TimerStatus.ACTIVE,
                               SlaTimer.kind.in_(sla.SLA_KINDS), SlaTimer.fire_at <= now)
        .order_by(SlaTimer.id)
    ).all()
    for timer in due:
        firing = sla.fire(session, timer_id=timer.id, now=now)
        if firing is not None and firing.action is sla.Action.BREACH:
            ticket = session.get(Ticket, firing.ticket_id)
            if ticket is not None and ticket.tier < Tier.L3.value:
                escalation.escalate(session, ticket_id=ticket.id, source="sla", now=now,
                                    reason=f"超出{sla.KIND_NAMES[firing.kind].zh}时限 / "
                                    f"{sla.KIND_NAMES[firing.kind].en} SLA breached")
    session.expire_all()


def _delivered(session: Session) -> None:
    """The demo's messages belong to conversations that happened in the past: mark them
    delivered so a freshly started gateway does not send days-old replies to nobody."""
    for message in session.scalars(select(OutboxMessage).where(
            OutboxMessage.delivered_at.is_(None))):
        outbox.mark_delivered(session, message_id=message.id, now=message.created_at)
