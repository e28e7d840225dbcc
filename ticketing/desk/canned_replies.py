"""Canned replies: the desk's standard answers, in Chinese and English, with placeholders.

Each reply has a title for the agent's menu and a body for the customer. Bodies may use
``{customer_name}``, ``{order_number}`` and ``{agent_name}``; :func:`render` fills them in the
ticket's language (the language the customer is served in). A value that is not known (a guest
without a name, a ticket without an order) renders as a bracketed hint the agent fills in by
hand (``[订单号]`` / ``[order number]``), and an unknown placeholder is left as written: a
canned reply never fails to render. Values are substituted by name only (no attribute or
index lookups as ``str.format`` would allow). Customers see an agent by first name only
(rules §TERMS-1).

The built-in replies below ship with Kefu; admins change them or add their own in the
``canned_replies`` table (``ticketing.desk.policies``). :func:`catalogue` is what agents pick
from: a row replaces the built-in of its key, adds a new key, or (inactive) hides it. The
functions that take ``replies`` use the built-ins when given none.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.core.errors import NotFound
from ticketing.core.i18n import Text, normalize_language
from ticketing.core.models import Agent, CannedReplyRow, Customer, Order, Ticket

PLACEHOLDERS = ("customer_name", "order_number", "agent_name")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
GUEST_PREFIX = "guest "  # the name ticketing.shop.customers gives an anonymous visitor's record

# what a missing value renders as: a hint the agent replaces before sending
MISSING: dict[str, Text] = {
    "customer_name": Text("亲", "there"),
    "order_number": Text("[订单号]", "[order number]"),
    "agent_name": Text("[客服]", "[agent]"),
}


class CannedReplyNotFound(NotFound):
    code = "canned_reply_not_found"
    message_zh = "没有这条快捷回复。"
    message_en = "There is no such canned reply."


@dataclass(frozen=True)
class CannedReply:
    key: str
    title: Text
    body: Text


REPLIES: dict[str, CannedReply] = {reply.key: reply for reply in (
    CannedReply(
        "greeting",
        Text("问候", "Greeting"),
        Text("{customer_name}，您好！我是客服{agent_name}，很高兴为您服务，请问有什么可以帮您？",
             "Hello {customer_name}, this is {agent_name} from customer service. "
             "How can I help you today?"),
    ),
    CannedReply(
        "ask_order_number",
        Text("询问订单号", "Ask for the order number"),
        Text("{customer_name}，麻烦您提供一下订单号（16到19位数字），我马上帮您查询。",
             "Hi {customer_name}, could you send me your order number (16 to 19 digits)? "
             "I will look it up right away."),
    ),
    CannedReply(
        "parcel_delayed",
        Text("包裹延误致歉", "Parcel delayed: apology"),
        Text("非常抱歉，订单 {order_number} 的包裹比预期晚了。我已联系快递公司催件，"
             "有新进展会第一时间通知您。",
             "We are very sorry that the parcel for order {order_number} is running late. "
             "I have asked the carrier to speed it up and will let you know as soon as "
             "there is news."),
    ),
    CannedReply(
        "refund_approved",
        Text("退款已批准", "Refund approved"),
        Text("{customer_name}，订单 {order_number} 的退款申请已审核通过。请按退货说明寄回商品，"
             "我们收到后会原路退款。",
             "Hi {customer_name}, the refund for order {order_number} has been approved. Please "
             "send the goods back as described in the return instructions; the money goes "
             "back to your original payment method once they arrive."),
    ),
    CannedReply(
        "closing",
        Text("结束语", "Closing"),
        Text("请问还有其他可以帮您的吗？感谢您的耐心，祝您生活愉快！——客服{agent_name}",
             "Is there anything else I can help with? Thank you for your patience, and have "
             "a nice day! — {agent_name}"),
    ),
)}


Replies = Mapping[str, CannedReply]


def reply_of(row: CannedReplyRow) -> CannedReply:
    return CannedReply(row.key, Text(row.title_zh, row.title_en), Text(row.body_zh, row.body_en))


def catalogue(session: Session) -> dict[str, CannedReply]:
    """The replies agents pick from, in one query: the built-ins in their order with the
    admins' rows applied by key (replaced, or hidden when inactive), then new keys by key."""
    replies = dict(REPLIES)
    for row in session.scalars(select(CannedReplyRow).order_by(CannedReplyRow.key)):
        if row.active:
            replies[row.key] = reply_of(row)
        else:
            replies.pop(row.key, None)
    return replies


def options(language: str | None, replies: Replies | None = None) -> list[tuple[str, str]]:
    """``(key, title)`` of every canned reply, titles in ``language`` (the agent's)."""
    found = REPLIES if replies is None else replies
    return [(reply.key, reply.title.get(language)) for reply in found.values()]


def get(key: str, replies: Replies | None = None) -> CannedReply:
    reply = (REPLIES if replies is None else replies).get(key)
    if reply is None:
        raise CannedReplyNotFound(key=key)
    return reply


def placeholders_in(template: str) -> set[str]:
    """The ``{name}`` placeholders a body uses (an admin may use only :data:`PLACEHOLDERS`)."""
    return set(_PLACEHOLDER.findall(template))


def fill(template: str, values: Mapping[str, str | None], *, language: str | None) -> str:
    """``template`` with each ``{name}`` replaced: a known value, else the hint for a known
    placeholder, else the placeholder as written. Never raises."""
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        value = values.get(name)
        if value:
            return value
        hint = MISSING.get(name)
        return hint.get(language) if hint is not None else match.group(0)

    return _PLACEHOLDER.sub(one, template)


def customer_name(customer: Customer | None) -> str | None:
    """The name to greet: none for a guest record (its name is only a conversation id)."""
    if customer is None or not customer.name or customer.name.startswith(GUEST_PREFIX):
        return None
    return customer.name.strip() or None


def values_for(*, customer: Customer | None, order: Order | None,
               agent: Agent | None) -> dict[str, str | None]:
    return {
        "customer_name": customer_name(customer),
        "order_number": order.number if order is not None else None,
        "agent_name": agent.first_name if agent is not None else None,
    }


def render(key: str, *, ticket: Ticket, customer: Customer | None = None,
           order: Order | None = None, agent: Agent | None = None,
           replies: Replies | None = None) -> str:
    """The body of canned reply ``key`` (of ``replies``, default the built-ins) in the
    ticket's language, placeholders filled.

    ``CannedReplyNotFound`` for an unknown key; nothing else raises.
    """
    language = normalize_language(ticket.language)
    return fill(get(key, replies).body.get(language),
                values_for(customer=customer, order=order, agent=agent), language=language)
