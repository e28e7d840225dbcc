"""Where is my ticket: its state in plain words, who owns it (first name only), what is next.

A customer sees only their own tickets. A verified customer's tickets are theirs; an anonymous
visitor's tickets belong to the guest record of the conversation's identity, which is only
looked up here, never created (asking about tickets is no reason to make a customer). Someone
else's ticket number is "not found", exactly like a number that does not exist.
"""

from __future__ import annotations

import re
import unicodedata

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from sqlalchemy import func, select

from actions import handoff
from actions.base import EventList, KefuAction, Turn
from ticketing.desk import sla, tickets
from ticketing.core.errors import KefuError, NotFound, TicketNotFound
from ticketing.core.i18n import Text
from ticketing.core.models import Agent, Ticket, TicketState

SHOWN = 3  # open tickets listed at most

# 'T' + the shop's date (8 digits) + the id (6 digits), see tickets.ticket_number
_NUMBER = re.compile(r"(?<![A-Za-z0-9])[Tt][\s-]?(\d{8})[\s-]?(\d{6})(?!\d)")

STATE_WORDS: dict[TicketState, Text] = {
    TicketState.NEW: Text("已收到，正在安排客服接手", "received, waiting for an agent to pick it up"),
    TicketState.OPEN: Text("客服正在处理", "an agent is working on it"),
    TicketState.WAITING_CUSTOMER: Text("正在等您回复补充信息", "waiting for your reply"),
    TicketState.SOLVED: Text("已解决", "solved"),
    TicketState.CLOSED: Text("已关闭", "closed"),
}
_HEAD = Text(zh="工单 {number}（{subject}）：{state}。", en="Ticket {number} ({subject}): {state}.")
_OWNER = Text(zh="负责客服：{name}。", en="Your agent: {name}.")
_NO_OWNER = Text(zh="还没有客服接手，接手后会尽快联系您。",
                 en="No agent has picked it up yet; they will be in touch as soon as one does.")
_DEADLINE = Text(zh="我们最迟会在 {deadline} 前跟进。", en="We'll follow up by {deadline} at the latest.")
_PAUSED = Text(zh="您回复后客服会继续处理。", en="Once you reply, the agent carries on.")
_SOLVED_AT = Text(zh="已于 {at} 处理完毕。", en="It was resolved on {at}.")
_SEVERAL = Text(zh="您有 {count} 个正在处理的工单：", en="You have {count} open tickets:")
_MORE = Text(zh="（还有 {count} 个较早的工单未列出。）", en="({count} older ones are not shown.)")
_NONE_OPEN = Text(zh="您目前没有正在处理的工单。最近的一个：",
                  en="You have no open tickets right now. Your most recent one:")
NO_TICKETS = Text(
    zh="没有找到您的工单。需要人工帮忙的话，说“转人工”就可以。",
    en="I can't find any tickets of yours. If you need a person, just say \"agent\".",
)
VERIFY_FOR_TICKETS = Text(
    zh="如果工单是在其他渠道或登录后提交的，请先验证身份，我就能查到。",
    en="If you opened it on another channel or while signed in, verify first and I'll find it.",
)
BAD_NUMBER = Text(
    zh="工单号的格式是 T 加 14 位数字，例如 T20261120000123，请核对一下。",
    en="Ticket numbers are a T followed by 14 digits, e.g. T20261120000123. Please check it.",
)

# Two-character surnames; every other Chinese name starts with a one-character surname.
_COMPOUND_SURNAMES = frozenset((
    "欧阳", "司马", "诸葛", "上官", "司徒", "东方", "皇甫", "慕容", "夏侯", "尉迟", "公孙",
    "长孙", "宇文", "令狐", "独孤", "南宫", "西门", "端木", "轩辕", "呼延", "澹台", "公冶",
    "申屠", "万俟", "闻人", "赫连", "太史", "钟离", "百里", "东郭", "南门",
))
# "郑经理", "黄主管": a surname with a title already says no more than a first name would
_TITLES = ("经理", "主管", "老师", "组长", "专员", "总监")


def first_name(agent: Agent) -> str:
    """What a customer may know of an agent: the given name, never the full name.

    ``Agent.first_name`` is the name meant for customers; when it differs from the display
    name it was chosen on purpose ("小美", "Lucy", "黄主管") and is used as is. When it is just
    the full name again, it is reduced: Latin names keep their first word ("Fang Wang" →
    "Fang"); Chinese names drop the surname (one character, or two for 欧阳 and the like);
    a one-character given name gets the usual friendly 阿 ("王杰" → "阿杰", as the demo desk
    does); names joined by "·" keep their first part.
    """
    chosen = " ".join((agent.first_name or "").split())
    full = " ".join((agent.display_name or "").split())
    if chosen and chosen != full:
        return chosen
    name = chosen or full
    if not name:
        return ""
    if not any("\u3400" <= ch <= "\u9fff" for ch in name):
        return name.split()[0]
    if "·" in name:  # transliterated names: 阿依古丽·买买提
        return name.split("·")[0]
    if name.endswith(_TITLES) or len(name) > 4:
        return name
    surname = 2 if name[:2] in _COMPOUND_SURNAMES and len(name) > 2 else 1
    given = name[surname:]
    if not given:
        return name
    return "阿" + given if len(given) == 1 else given


def number_in(text: str | None) -> str | None:
    """A ticket number in free text ("工单T20261120000123怎么样了"), normalised."""
    if not text:
        return None
    match = _NUMBER.search(unicodedata.normalize("NFKC", text))
    return f"T{match.group(1)}{match.group(2)}" if match else None


def owner_of(turn: Turn) -> int | None:
    """The customer whose tickets this conversation may see: verified, else its guest record."""
    if turn.customer is not None:
        return turn.customer.id
    identity = turn.identity
    return identity.customer_id if identity is not None else None


# The service layer has no "tickets of a customer" lookup yet; these two read-only queries
# stand in for it and always filter by the customer.
def find_ticket(turn: Turn, *, customer_id: int, number: str) -> Ticket:
    ticket = turn.session.scalars(select(Ticket).where(
        Ticket.number == number, Ticket.customer_id == customer_id)).one_or_none()
    if ticket is None:
        raise TicketNotFound(number=number)
    return ticket


def customer_tickets(turn: Turn, *, customer_id: int, open_only: bool,
                     limit: int) -> tuple[list[Ticket], int]:
    """The customer's newest tickets (open ones only, if asked) and how many there are."""
    where = [Ticket.customer_id == customer_id]
    if open_only:
        where.append(Ticket.state.in_(tickets.ACTIVE_STATES))
    rows = turn.session.scalars(select(Ticket).where(*where)
                                .order_by(Ticket.created_at.desc(), Ticket.id.desc())
                                .limit(limit)).all()
    total = turn.session.scalar(select(func.count()).select_from(Ticket).where(*where)) or 0
    return list(rows), int(total)


def subject_in(subject: str, language: str) -> str:
    """A subject the bot wrote (handoff.SUBJECTS) in the customer's language; others as is."""
    for text in (*handoff.SUBJECTS.values(), handoff.SUBJECT_DEFAULT):
        if subject in (text.zh, text.en):
            return text.get(language)
    return subject


def describe(turn: Turn, ticket: Ticket) -> str:
    """State, owner and the next deadline of one ticket, in the customer's language."""
    lang = turn.language
    parts = [_HEAD.get(lang, number=ticket.number, subject=subject_in(ticket.subject, lang),
                       state=STATE_WORDS[ticket.state].get(lang))]
    owner = turn.session.get(Agent, ticket.owner_id) if ticket.owner_id else None
    if ticket.state in tickets.ACTIVE_STATES:
        if owner is not None:
            parts.append(_OWNER.get(lang, name=first_name(owner)))
        elif ticket.state is not TicketState.NEW:  # "new" already says nobody has it yet
            parts.append(_NO_OWNER.get(lang))
        deadline = sla.next_deadline(turn.session, ticket=ticket)
        if ticket.state is TicketState.WAITING_CUSTOMER:
            parts.append(_PAUSED.get(lang))
        elif deadline is not None:
            parts.append(_DEADLINE.get(lang, deadline=turn.short_moment(deadline)))
    else:
        if owner is not None:
            parts.append(_OWNER.get(lang, name=first_name(owner)))
        if ticket.solved_at is not None:
            parts.append(_SOLVED_AT.get(lang, at=turn.short_moment(ticket.solved_at)))
    return ("" if lang == "zh" else " ").join(parts)


class ActionTicketStatus(KefuAction):
    """One ticket by number, else the customer's open tickets (newest first)."""

    def name(self) -> str:
        return "action_ticket_status"

    def act(self, turn: Turn) -> EventList:
        message = turn.tracker.latest_message or {}
        given = (number_in(message.get("text"))
                 or next(turn.tracker.get_latest_entity_values("ticket_number"), None)
                 or turn.slot("ticket_number"))
        customer_id = owner_of(turn)
        if given:
            number = number_in(str(given))
            if number is None:
                turn.say(BAD_NUMBER)
                return [SlotSet("ticket_number", None)]
            if customer_id is None:
                raise TicketNotFound(number=number)
            ticket = find_ticket(turn, customer_id=customer_id, number=number)
            turn.say(describe(turn, ticket))
            return [SlotSet("ticket_number", ticket.number)]
        if customer_id is None:
            return self.nothing(turn)
        shown, total = customer_tickets(turn, customer_id=customer_id, open_only=True,
                                        limit=SHOWN)
        if not shown:
            latest, _ = customer_tickets(turn, customer_id=customer_id, open_only=False, limit=1)
            if not latest:
                return self.nothing(turn)
            turn.say(_NONE_OPEN.get(turn.language) + "\n" + describe(turn, latest[0]))
            return []
        if len(shown) == 1:
            turn.say(describe(turn, shown[0]))
            return [SlotSet("ticket_number", shown[0].number)]
        lines = [_SEVERAL.get(turn.language, count=total)]
        lines += [describe(turn, t) for t in shown]
        if total > len(shown):
            lines.append(_MORE.get(turn.language, count=total - len(shown)))
        turn.say("\n\n".join(lines))
        return []

    @staticmethod
    def nothing(turn: Turn) -> EventList:
        text = NO_TICKETS.get(turn.language)
        if turn.customer is None:
            text += "\n" + VERIFY_FOR_TICKETS.get(turn.language)
        turn.say(text)
        return []

    def on_refused(self, error: KefuError, tracker: Tracker) -> EventList:
        return [SlotSet("ticket_number", None)] if isinstance(error, NotFound) else []
