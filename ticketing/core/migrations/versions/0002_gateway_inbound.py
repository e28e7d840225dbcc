"""gateway: inbound message log; outbox rows for anonymous visitors

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 09:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ticketing.core.models.base


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('inbound_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('conversation_id', sa.String(length=160), nullable=False),
    sa.Column('dedupe_key', sa.String(length=128), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('received_at', ticketing.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('handled_at', ticketing.core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('route', sa.String(length=24), nullable=True),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_inbound_messages_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_messages')),
    sa.UniqueConstraint('channel', 'dedupe_key', name=op.f('uq_inbound_messages_channel'))
    )
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbound_messages_conversation_id'), ['conversation_id'], unique=False)
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('customer_id', existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('customer_id', existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_messages_conversation_id'))
    op.drop_table('inbound_messages')
