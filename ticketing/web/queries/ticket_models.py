"""The ticket page's models: each is both a JSON API response model (``/api/v1/tickets/{id}``,
the customer card, refunds) and what the templates render, so the page and the API never
disagree."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel


class AgentRef(BaseModel):
    id: int
    name: str


class Moment(BaseModel):
    """An instant: UTC ISO for machines, the shop's local time for people."""

    at: datetime
    local: str


class AttachmentOut(BaseModel):
    index: int
    kind: str
    url: str | None  # None: the file never reached the server (only the channel's reference)


class DeliveryOut(BaseModel):
    """Where an agent reply stands in the outbox: ``pending``, ``delivered`` or ``failed``."""

    state: Literal["pending", "delivered", "failed"]
    label: str
    attempts: int
    delivered: Moment | None = None


class MessageOut(BaseModel):
    id: int
    at: Moment
    author_type: str  # customer | bot | agent | system
    author: str
    body: str
    internal: bool
    attachments: list[AttachmentOut]
    delivery: DeliveryOut | None = None


class EventOut(BaseModel):
    id: int
    at: Moment
    kind: str
    label: str
    actor_type: str
    actor: str
    from_value: str | None
    to_value: str | None
    change: str | None  # from → to as people read it
    reason: str | None
    data: dict[str, Any]


class TimerOut(BaseModel):
    id: int
    kind: str
    label: str
    generation: int
    status: str  # active | paused | done
    status_label: str
    deadline: Moment | None
    remaining: str | None  # business time left while paused
    breached: bool
    warned: bool


class TicketOut(BaseModel):
    id: int
    number: str
    subject: str
    state: str
    state_label: str
    category: str
    category_label: str
    priority: str
    priority_label: str
    tier: int
    channel: str
    language: str
    flags: list[str]
    owner: AgentRef | None
    assignee: AgentRef | None
    team: str | None
    customer_id: int
    order_id: int | None
    resolution: str | None
    created: Moment
    solved: Moment | None
    next_deadline: Moment | None
    version: int


class IdentityOut(BaseModel):
    channel: str
    verified: bool
    handed_off_ticket_id: int | None


class TrackingOut(BaseModel):
    carrier: str
    tracking_number: str
    status: str | None
    description: str | None
    location: str | None
    at: Moment | None


class OrderOut(BaseModel):
    id: int
    number: str
    state: str
    state_label: str
    total: str
    refunded: str
    created: Moment
    tracking: TrackingOut | None


class RefundOut(BaseModel):
    id: int
    order_id: int
    order_number: str
    customer_id: int
    state: str
    state_label: str
    amount: str
    amount_cents: int
    reason: str
    reason_label: str
    reason_text: str
    created: Moment
    rejection_reason: str | None
    ticket_id: int | None


class PastTicketOut(BaseModel):
    """Another ticket of the customer; subject and link only when the viewer may open it."""

    id: int | None
    number: str
    subject: str | None
    state: str
    state_label: str
    category_label: str
    created: Moment
    csat_score: int | None


class CustomerCard(BaseModel):
    id: int
    name: str
    guest: bool
    segment: str
    segment_label: str
    language: str
    phone: str | None  # masked
    address: str | None  # masked
    identities: list[IdentityOut]
    orders: list[OrderOut]
    refunds: list[RefundOut]
    tickets: list[PastTicketOut]


class Permissions(BaseModel):
    """What the viewer may do here; the services check again on every write."""

    claim: bool
    work: bool  # reply, note, wait, solve, escalate, reopen (as the state allows)
    transfer: bool
    reveal: bool
    review_refunds: bool


class CannedOut(BaseModel):
    key: str
    title: str
    body: str


class TicketDetail(BaseModel):
    ticket: TicketOut
    thread: list[MessageOut]
    events: list[EventOut]
    timers: list[TimerOut]
    customer: CustomerCard
    permissions: Permissions
    actions: list[str]  # the actions the state and the viewer allow right now
