"""Kefu's data model (SQLAlchemy 2). Import models from here."""

from ticketing.core.models.access import ApiToken, DeskSession
from ticketing.core.models.base import Base, UTCDateTime
from ticketing.core.models.catalog import Product
from ticketing.core.models.customers import ChannelIdentity, Customer, Segment
from ticketing.core.models.desk import Agent, Availability, Role, Team, Tier
from ticketing.core.models.facts import Alert, ConversationFact, ReplyWait, TicketFact
from ticketing.core.models.feedback import Survey
from ticketing.core.models.messaging import AuditLog, InboundMessage, Notification, OutboxMessage
from ticketing.core.models.orders import (
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
from ticketing.core.models.policies import CannedReplyRow, DeskSetting, SlaPolicyRow
from ticketing.core.models.presence import TicketViewer
from ticketing.core.models.rollups import ReportCell, ReportDay, ReportMark
from ticketing.core.models.tickets import (
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
    "Alert", "CannedReplyRow", "ReportCell", "ReportDay", "ReportMark", "ConversationFact", "DeskSetting", "ReplyWait", "SlaPolicyRow", "TicketFact",
    "ACTIVE_REFUND_STATES", "Agent", "ApiToken", "DeskSession", "AuditLog", "Availability", "Base", "Category", "Channel",
    "ChannelIdentity", "Customer", "InboundMessage", "Notification", "Order", "OrderItem", "OrderState",
    "OutboxMessage", "Priority", "Product", "RefundKind", "RefundMethod", "RefundRequest",
    "RefundState", "Role", "Segment", "Shipment", "SlaTimer", "Survey", "Team", "Ticket",
    "TicketEvent", "TicketMessage", "TicketState", "TicketViewer", "Tier", "TimerKind", "TimerStatus",
    "TrackingEvent", "UTCDateTime",
]
from ticketing.core.models.webhooks import (  # noqa: E402
    DUE_STATUSES,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)

__all__ += [
    "DUE_STATUSES", "DeliveryStatus", "WebhookAttempt", "WebhookDelivery", "WebhookEndpoint",
    "WebhookEvent",
]

# shop ingestion (ticketing.shop.ingest): restock subscriptions and the notices sent once
from ticketing.core.models.catalog import RestockSubscription  # noqa: E402
from ticketing.core.models.notices import CustomerNotice  # noqa: E402

__all__ += ["CustomerNotice", "RestockSubscription"]
