"""Which turn answers a message: the one whose transaction marks it handled first.

Every answer the gateway queues (the assistant's words, an apology with a fallback ticket, a
message appended to a ticket thread) is written in the same transaction that records the
message's route, and only if that transaction is the one that records it.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from ticketing.conversations import inbound

# outbox payload key: the inbound message a bot answer or apology answers, so an operator (and
# the fault suite) can tell a message answered twice, or answers out of order, from the rows
REPLY_TO = "reply_to"


class AnsweredElsewhere(Exception):
    """Another turn routed the message first, so this one's transaction is rolled back.

    Turns of a conversation are serial through the turn lock, but a turn that ran without it
    (Redis away for a moment: the lock fails open) cannot be told from a dead one by a
    gateway replaying unhandled messages. The database settles it: the transaction that marks
    the message handled is the one whose answer stands (``inbound.mark_handled``).
    """


def claim(session: Session, inbound_id: int, route: str, ticket_id: int | None = None) -> None:
    """Record the message's route in this transaction, or raise :class:`AnsweredElsewhere`."""
    if not inbound.mark_handled(session, message_id=inbound_id, route=route, ticket_id=ticket_id):
        raise AnsweredElsewhere(inbound_id)
