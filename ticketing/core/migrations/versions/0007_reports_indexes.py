"""reports: index the open tickets' SLA verdicts, the answered next waits and refunds by ticket

Measured by bench/reports.py at 1,000,000 tickets (PostgreSQL, 2 cores): "breached now" (every
dashboard and summary) 99-124 ms -> 2-3 ms (index-only scan of the open tickets instead of a
scan of every fact); the next-response percentiles' join 136-208 ms -> 127-135 ms for 60 days
(index-only scan instead of reading all of reply_waits); a drill-down page's refund reason
with 50,000 refund requests 168 -> 3 ms (the CSV export of 1,613 rows 5.2 s -> 0.03 s).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 12:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

OPEN = sa.text("state IN ('new', 'open', 'waiting_customer')")
ANSWERED_NEXT = sa.text("seq > 0 AND seconds IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table('ticket_facts', schema=None) as batch_op:
        batch_op.create_index(
            'ix_ticket_facts_open', ['state'], unique=False,
            postgresql_include=['sla_first_response', 'sla_first_response_due_at',
                                'sla_next_response', 'sla_next_response_due_at',
                                'sla_resolution', 'sla_resolution_due_at'],
            postgresql_where=OPEN, sqlite_where=OPEN)
    with op.batch_alter_table('reply_waits', schema=None) as batch_op:
        batch_op.create_index(
            'ix_reply_waits_next', ['ticket_id'], unique=False,
            postgresql_include=['seconds', 'business_seconds'],
            postgresql_where=ANSWERED_NEXT, sqlite_where=ANSWERED_NEXT)
    with op.batch_alter_table('refund_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refund_requests_ticket_id'), ['ticket_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('refund_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refund_requests_ticket_id'))
    with op.batch_alter_table('reply_waits', schema=None) as batch_op:
        batch_op.drop_index('ix_reply_waits_next')
    with op.batch_alter_table('ticket_facts', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_facts_open')
