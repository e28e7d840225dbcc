"""What the ticket page and ``/api/v1/tickets/{id}`` show: one ticket, read for one person.

The caller has already checked the ticket (``access.require_ticket``) against the viewer; this
module only reads, in a fixed number of statements per page: the ticket, its thread with each
reply's delivery, its events and SLA timers, the customer card (``customer_card``), and what
the viewer may do now. The models are in ``ticket_models``, the viewer in ``page_view``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.core.clock import aware
from ticketing.core.errors import NotFound
from ticketing.core.models import (
    Agent,
    Customer,
    Order,
    OutboxMessage,
    Role,
    SlaTimer,
    Team,
    Ticket,
    TicketEvent,
    TicketMessage,
    TicketState,
    TimerStatus,
)
from ticketing.core.pii import PiiCipher
from ticketing.desk import access, canned_replies, lifecycle, ownership, sla
from ticketing.web.queries.customer_card import customer_card, reviews_refunds
from ticketing.web.queries.page_view import View, enum_value
from ticketing.web.queries.ticket_models import (
    AgentRef,
    AttachmentOut,
    CannedOut,
    DeliveryOut,
    EventOut,
    MessageOut,
    Permissions,
    TicketDetail,
    TicketOut,
    TimerOut,
)
from ticketing.web.texts import ui

REPLY_MATCH_WINDOW = timedelta(minutes=5)  # an outbox row is queued in the reply's transaction


class AttachmentNotFound(NotFound):
    code = "attachment_not_found"
    message_zh = "没有找到这个附件。"
    message_en = "That attachment was not found."


# --- helpers -------------------------------------------------------------------------------------
def agent_names(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return dict(session.execute(
        select(Agent.id, Agent.display_name).where(Agent.id.in_(wanted))).tuples().all())


def _duration(seconds: float | None, language: str) -> str | None:
    if seconds is None:
        return None
    minutes = max(0, int(seconds // 60))
    hours, minutes = divmod(minutes, 60)
    return ui("ticket.duration", language).format(hours=hours, minutes=minutes)


# --- the ticket ----------------------------------------------------------------------------------
def ticket_out(view: View, ticket: Ticket, names: dict[int, str]) -> TicketOut:
    session = view.session
    team_name = None
    if ticket.team_id is not None:
        team = session.get(Team, ticket.team_id)
        if team is not None:
            team_name = team.name_zh if view.language == "zh" else team.name_en

    def ref(agent_id: int | None) -> AgentRef | None:
        return None if agent_id is None else AgentRef(id=agent_id, name=names.get(agent_id, "?"))

    return TicketOut(
        id=ticket.id, number=ticket.number, subject=ticket.subject,
        state=enum_value(ticket.state), state_label=view.label("state", enum_value(ticket.state)),
        category=enum_value(ticket.category),
        category_label=view.label("category", enum_value(ticket.category)),
        priority=enum_value(ticket.priority),
        priority_label=view.label("priority", enum_value(ticket.priority)),
        tier=ticket.tier, channel=enum_value(ticket.channel), language=ticket.language,
        flags=list(ticket.flags or []), owner=ref(ticket.owner_id),
        assignee=ref(ticket.assignee_id), team=team_name, customer_id=ticket.customer_id,
        order_id=ticket.order_id, resolution=ticket.resolution,
        created=view.moment(ticket.created_at), solved=view.moment(ticket.solved_at),
        next_deadline=view.moment(sla.next_deadline(session, ticket=ticket)),
        version=ticket.version,
    )


def attachment_url(ticket_id: int, message_id: int, index: int) -> str:
    return f"/tickets/{ticket_id}/attachments/{message_id}/{index}"


def _stored_file(attachment: dict[str, Any]) -> str | None:
    """The stored file's name under the attachments directory, from its content hash only."""
    digest = attachment.get("sha256")
    if not isinstance(digest, str) or len(digest) != 64:
        return None
    if any(ch not in "0123456789abcdef" for ch in digest):
        return None
    return f"{digest}.jpg"


def _deliveries(view: View, ticket: Ticket,
                messages: list[TicketMessage]) -> dict[int, DeliveryOut]:
    """Each public agent reply matched to its outbox row (same ticket, same text, queued in the
    same transaction), in order; no schema link is needed."""
    rows = list(view.session.scalars(
        select(OutboxMessage).where(OutboxMessage.ticket_id == ticket.id,
                                    OutboxMessage.kind == "agent_reply")
        .order_by(OutboxMessage.created_at, OutboxMessage.id)))
    found: dict[int, DeliveryOut] = {}
    for message in messages:
        if message.author_type != "agent" or message.internal:
            continue
        for row in rows:
            if row.text == message.body and \
                    abs(aware(row.created_at) - aware(message.at)) <= REPLY_MATCH_WINDOW:
                rows.remove(row)
                if row.delivered_at is not None:
                    state = "delivered"
                elif (row.attempts or 0) > 0:
                    state = "failed"
                else:
                    state = "pending"
                found[message.id] = DeliveryOut(
                    state=state, label=view.label("delivery", state), attempts=row.attempts or 0,
                    delivered=view.moment(row.delivered_at))
                break
    return found


def thread(view: View, ticket: Ticket, names: dict[int, str],
           customer: Customer) -> list[MessageOut]:
    messages = list(view.session.scalars(
        select(TicketMessage).where(TicketMessage.ticket_id == ticket.id)
        .order_by(TicketMessage.at, TicketMessage.id)))
    deliveries = _deliveries(view, ticket, messages)
    out = []
    for message in messages:
        if message.author_type == "agent":
            author = names.get(message.author_id or 0, view.label("author", "agent"))
        elif message.author_type == "customer":
            author = canned_replies.customer_name(customer) or view.label("author", "customer")
        else:
            author = view.label("author", message.author_type)
        attachments = [
            AttachmentOut(index=i, kind=str(a.get("kind") or "file"),
                          url=attachment_url(ticket.id, message.id, i)
                          if _stored_file(a) else None)
            for i, a in enumerate(message.attachments or []) if isinstance(a, dict)]
        out.append(MessageOut(
            id=message.id, at=view.moment(message.at), author_type=message.author_type,
            author=author, body=message.body, internal=bool(message.internal),
            attachments=attachments, delivery=deliveries.get(message.id)))
    return out


STATE_EVENTS = frozenset({"created", "claimed", "state_changed", "solved", "reopened",
                          "closed"})


def _change(view: View, event: TicketEvent, names: dict[int, str]) -> str | None:
    """``from → to`` as people read it: state names, tiers, owners' names."""
    if event.from_value is None and event.to_value is None:
        return None

    def shown(value: str | None) -> str:
        if value is None:
            return "–"
        if event.kind in STATE_EVENTS:
            return view.label("state", value)
        if event.kind == "escalated":
            return f"L{value}"
        if event.kind == "transferred" and value.isdigit():
            return names.get(int(value), value)
        return value

    if event.from_value is None:
        return shown(event.to_value)
    return f"{shown(event.from_value)} → {shown(event.to_value)}"


def events(view: View, ticket: Ticket, names: dict[int, str],
           customer: Customer) -> list[EventOut]:
    rows = list(view.session.scalars(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
        .order_by(TicketEvent.at, TicketEvent.id)))
    out = []
    for event in rows:
        if event.actor_type == "agent":
            actor = names.get(event.actor_id or 0, view.label("author", "agent"))
        elif event.actor_type == "customer":
            actor = canned_replies.customer_name(customer) or view.label("author", "customer")
        else:
            actor = view.label("author", event.actor_type)
        out.append(EventOut(
            id=event.id, at=view.moment(event.at), kind=event.kind,
            label=view.label("event", event.kind), actor_type=event.actor_type, actor=actor,
            from_value=event.from_value, to_value=event.to_value,
            change=_change(view, event, names), reason=event.reason,
            data=dict(event.data or {})))
    return out


def timers(view: View, ticket: Ticket) -> list[TimerOut]:
    rows = list(view.session.scalars(
        select(SlaTimer).where(SlaTimer.ticket_id == ticket.id)
        .order_by(SlaTimer.started_at, SlaTimer.id)))
    out = []
    for timer in rows:
        status = enum_value(timer.status)
        out.append(TimerOut(
            id=timer.id, kind=enum_value(timer.kind),
            label=sla.KIND_NAMES[timer.kind].get(view.language), generation=timer.generation,
            status=status, status_label=view.label("timer", status),
            deadline=view.moment(timer.deadline_at) if timer.status is not TimerStatus.PAUSED
            else None,
            remaining=_duration(timer.remaining_seconds, view.language)
            if timer.status is TimerStatus.PAUSED else None,
            breached=timer.breached_at is not None, warned=timer.warned_at is not None))
    return out


# --- the page ------------------------------------------------------------------------------------
def permissions(view: View, ticket: Ticket) -> Permissions:
    viewer = view.viewer
    works = access.works_tickets(viewer)
    worker = works and (viewer.id in (ticket.owner_id, ticket.assignee_id)
                        or ownership.is_supervisor(viewer))
    return Permissions(
        claim=works and ticket.owner_id is None and ticket.state is TicketState.NEW,
        work=worker,
        transfer=works and ticket.state is not TicketState.CLOSED
        and (viewer.id == ticket.owner_id or ownership.is_supervisor(viewer)),
        reveal=viewer.role is Role.SUPERVISOR,
        review_refunds=reviews_refunds(view.session, viewer),
    )


def actions(ticket: Ticket, allowed: Permissions) -> list[str]:
    """The actions offered now: what the viewer may do and the state allows."""
    found = []
    if allowed.claim:
        found.append("claim")
    if allowed.work and ticket.state is not TicketState.CLOSED:
        found += ["reply", "note"]
        if ticket.state in lifecycle.ACTIVE_STATES and ticket.tier < 3:
            found.append("escalate")
        if TicketState.WAITING_CUSTOMER in lifecycle.ALLOWED[ticket.state]:
            found.append("wait")
        if TicketState.SOLVED in lifecycle.ALLOWED[ticket.state]:
            found.append("solve")
        if ticket.state is TicketState.SOLVED:
            found.append("reopen")
    if allowed.transfer:
        found.append("transfer")
    return found


def ticket_detail(session: Session, *, ticket: Ticket, viewer: Agent, cipher: PiiCipher,
                  language: str, timezone: str, now: datetime) -> TicketDetail:
    view = View(session, viewer=viewer, language=language, timezone=timezone, cipher=cipher,
                now=now)
    customer = session.get(Customer, ticket.customer_id)
    assert customer is not None  # a foreign key
    author_ids = session.scalars(
        select(TicketMessage.author_id).where(TicketMessage.ticket_id == ticket.id,
                                              TicketMessage.author_type == "agent")).all()
    actor_ids = session.scalars(
        select(TicketEvent.actor_id).where(TicketEvent.ticket_id == ticket.id,
                                           TicketEvent.actor_type == "agent")).all()
    transfer_ids = [int(v) for v in session.scalars(
        select(TicketEvent.from_value).where(TicketEvent.ticket_id == ticket.id,
                                             TicketEvent.kind == "transferred")
        .union_all(select(TicketEvent.to_value).where(TicketEvent.ticket_id == ticket.id,
                                                      TicketEvent.kind == "transferred")))
        if v and v.isdigit()]
    names = agent_names(session, [ticket.owner_id, ticket.assignee_id, *author_ids, *actor_ids,
                                   *transfer_ids])
    allowed = permissions(view, ticket)
    return TicketDetail(
        ticket=ticket_out(view, ticket, names),
        thread=thread(view, ticket, names, customer),
        events=events(view, ticket, names, customer),
        timers=timers(view, ticket),
        customer=customer_card(view, customer, exclude_ticket=ticket.id),
        permissions=allowed,
        actions=actions(ticket, allowed),
    )


def owner_name(session: Session, ticket_id: int) -> str | None:
    """Who owns the ticket now (read in a fresh transaction after a lost claim)."""
    return session.scalar(
        select(Agent.display_name).join(Ticket, Ticket.owner_id == Agent.id)
        .where(Ticket.id == ticket_id))


def transfer_targets(session: Session, *, ticket: Ticket, language: str
                     ) -> list[tuple[int, str]]:
    """Agents and supervisors a ticket may be handed to, team by team, the owner left out."""
    rows = session.execute(
        select(Agent.id, Agent.display_name, Team.name_zh, Team.name_en)
        .outerjoin(Team, Team.id == Agent.team_id)
        .where(Agent.role.in_(tuple(access.WORKERS)), Agent.active.is_(True))
        .order_by(Team.tier, Team.id, Agent.display_name, Agent.id)).tuples().all()
    return [(agent_id, f"{name} · {(zh if language == 'zh' else en) or '-'}")
            for agent_id, name, zh, en in rows if agent_id != ticket.owner_id]


def canned_options(session: Session, *, ticket: Ticket, viewer: Agent, language: str,
                   order: Order | None = None) -> list[CannedOut]:
    """Every canned reply, titled in the agent's language, rendered in the ticket's."""
    customer = session.get(Customer, ticket.customer_id)
    if order is None and ticket.order_id is not None:
        order = session.get(Order, ticket.order_id)
    replies = canned_replies.catalogue(session)
    return [CannedOut(key=key, title=title,
                      body=canned_replies.render(key, ticket=ticket, customer=customer,
                                                 order=order, agent=viewer, replies=replies))
            for key, title in canned_replies.options(language, replies)]


def attachment_file(session: Session, *, ticket: Ticket, message_id: int, index: int,
                    root: Path) -> Path:
    """The stored photo of message ``message_id``'s attachment ``index``, on ``ticket``.

    The path is never taken from the request or trusted from the row: the file is named by
    its content hash under ``root`` (``var/attachments/``), and must resolve inside it.
    """
    message = session.scalar(select(TicketMessage).where(TicketMessage.id == message_id,
                                                         TicketMessage.ticket_id == ticket.id))
    found = list(message.attachments or []) if message is not None else []
    if index < 0 or index >= len(found) or not isinstance(found[index], dict):
        raise AttachmentNotFound(message_id=message_id, index=index)
    name = _stored_file(found[index])
    if name is None:
        raise AttachmentNotFound(message_id=message_id, index=index)
    base = root.resolve()
    path = (base / name).resolve()
    if path.parent != base or not path.is_file():
        raise AttachmentNotFound(message_id=message_id, index=index)
    return path
