"""Kefu's data model (SQLAlchemy 2). Import models from here."""

from ticketing.models.base import Base, UTCDateTime
from ticketing.models.catalog import Product
from ticketing.models.customers import ChannelIdentity, Customer, Segment
from ticketing.models.desk import Agent, Availability, Role, Team, Tier
from ticketing.models.feedback import Survey
from ticketing.models.messaging import AuditLog, InboundMessage, Notification, OutboxMessage
from ticketing.models.orders import (
    ACTIVE_REFUND_STATES,
    Order,
    OrderItem,
    OrderState,
    RefundKind,
    RefundMethod,
    RefundRequest,
    RefundState,
    Shipment,
    TrackingEvent,
)
from ticketing.models.tickets import (
    Category,
    Channel,
    Priority,
    SlaTimer,
    Ticket,
    TicketEvent,
    TicketMessage,
    TicketState,
    TimerKind,
    TimerStatus,
)

__all__ = [
    "ACTIVE_REFUND_STATES", "Agent", "AuditLog", "Availability", "Base", "Category", "Channel",
    "ChannelIdentity", "Customer", "InboundMessage", "Notification", "Order", "OrderItem", "OrderState",
    "OutboxMessage", "Priority", "Product", "RefundKind", "RefundMethod", "RefundRequest",
    "RefundState", "Role", "Segment", "Shipment", "SlaTimer", "Survey", "Team", "Ticket",
    "TicketEvent", "TicketMessage", "TicketState", "Tier", "TimerKind", "TimerStatus",
    "TrackingEvent", "UTCDateTime",
]
