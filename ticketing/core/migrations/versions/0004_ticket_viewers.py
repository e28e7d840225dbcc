"""desk: who has a ticket open (the collision hint without Redis)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 12:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ticketing.core.models.base


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ticket_viewers',
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('connection', sa.String(length=32), nullable=False),
    sa.Column('seen_at', ticketing.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_ticket_viewers_agent_id_agents')),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_ticket_viewers_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('ticket_id', 'agent_id', 'connection', name=op.f('pk_ticket_viewers'))
    )
    with op.batch_alter_table('ticket_viewers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_viewers_seen_at'), ['seen_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ticket_viewers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_viewers_seen_at'))
    op.drop_table('ticket_viewers')
