"""reports and admin: per-ticket and per-conversation facts, reply waits, alerts; SLA
policies, desk settings, canned replies and deactivated agents set by admins

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 03:29:38.931836
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ticketing.core.models.base


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('subject', sa.String(length=80), nullable=False),
    sa.Column('opened_at', ticketing.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', ticketing.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('baseline', sa.Float(), nullable=True),
    sa.Column('sample', sa.Integer(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('notified_at', ticketing.core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('resolved_at', ticketing.core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts'))
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alerts_opened_at'), ['opened_at'], unique=False)
        batch_op.create_index('ux_alerts_open', ['kind', 'subject'], unique=True, sqlite_where=sa.text('resolved_at IS NULL'), postgresql_where=sa.text('resolved_at IS NULL'))

    op.create_table('canned_replies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('title_zh', sa.String(length=120), nullable=False),
    sa.Column('title_en', sa.String(length=120), nullable=False),
    sa.Column('body_zh', sa.Text(), nullable=False),
    sa.Column('body_en', sa.Text(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('updated_at', ticketing.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_canned_replies')),
    sa.UniqueConstraint('key', name=op.f('uq_canned_replies_key'))
    )
    op.create_table('conversation_facts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.String(length=160), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('started_at', ticketing.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_day', sa.String(length=10), nullable=False),
    sa.Column('last_message_at', ticketing.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('messages', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('handed_off', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conversation_facts')),
    sa.UniqueConstraint('conversation_id', 'started_at', name=op.f('uq_conversation_facts_conversation_id'))
    )
    with op.batch_alter_table('conversation_facts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_conversation_facts_conversation_id'), ['conversation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_conversation_facts_started_at'), ['started_at'], unique=False)

    op.create_table('desk_settings',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('updated_at', ticketing.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_desk_settings'))
    )
    op.create_table('sla_policies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('priority', sa.String(length=8), nullable=False),
    sa.Column('segment', sa.String(length=16), nullable=False),
    sa.Column('first_response_minutes', sa.Integer(), nullable=False),
    sa.Column('next_response_minutes', sa.Integer(), nullable=False),
    sa.Column('resolution_minutes', sa.Integer(), nullable=False),
    sa.Column('updated_at', ticketing.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sla_policies')),
    sa.UniqueConstraint('priority', 'segment', name=op.f('uq_sla_policies_priority'))
    )
    op.create_table('reply_waits',
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('asked_at', ticketing.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('answered_at', ticketing.core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('seconds', sa.Float(), nullable=True),
    sa.Column('business_seconds', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_reply_waits_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('ticket_id', 'seq', name=op.f('pk_reply_waits'))
    )
    op.create_table('ticket_facts',
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('created_at', ticketing.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_day', sa.String(length=10), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('priority', sa.String(length=8), nullable=False),
    sa.Column('tier', sa.Integer(), nullable=False),
    sa.Column('segment', sa.String(length=16), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=True),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('handed_off', sa.Boolean(), nullable=False),
    sa.Column('first_response_at', ticketing.core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('first_response_s', sa.Float(), nullable=True),
    sa.Column('first_response_bh_s', sa.Float(), nullable=True),
    sa.Column('replies_waited', sa.Integer(), nullable=False),
    sa.Column('first_solved_at', ticketing.core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_solved_at', ticketing.core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('resolution_first_s', sa.Float(), nullable=True),
    sa.Column('resolution_first_bh_s', sa.Float(), nullable=True),
    sa.Column('resolution_last_s', sa.Float(), nullable=True),
    sa.Column('resolution_last_bh_s', sa.Float(), nullable=True),
    sa.Column('reopened', sa.Integer(), nullable=False),
    sa.Column('escalated', sa.Integer(), nullable=False),
    sa.Column('sla_first_response', sa.String(length=8), nullable=True),
    sa.Column('sla_first_response_due_at', ticketing.core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sla_next_response', sa.String(length=8), nullable=True),
    sa.Column('sla_next_response_due_at', ticketing.core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sla_resolution', sa.String(length=8), nullable=True),
    sa.Column('sla_resolution_due_at', ticketing.core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('survey_sent_at', ticketing.core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('survey_day', sa.String(length=10), nullable=True),
    sa.Column('survey_agent_id', sa.Integer(), nullable=True),
    sa.Column('survey_team_id', sa.Integer(), nullable=True),
    sa.Column('csat_score', sa.Integer(), nullable=True),
    sa.Column('refreshed_at', ticketing.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_ticket_facts_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('ticket_id', name=op.f('pk_ticket_facts'))
    )
    with op.batch_alter_table('ticket_facts', schema=None) as batch_op:
        batch_op.create_index('ix_ticket_facts_created', ['created_at'], unique=False)
        batch_op.create_index('ix_ticket_facts_survey', ['survey_sent_at'], unique=False)

    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_column('active')

    with op.batch_alter_table('ticket_facts', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_facts_survey')
        batch_op.drop_index('ix_ticket_facts_created')

    op.drop_table('ticket_facts')
    op.drop_table('reply_waits')
    op.drop_table('sla_policies')
    op.drop_table('desk_settings')
    with op.batch_alter_table('conversation_facts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_conversation_facts_started_at'))
        batch_op.drop_index(batch_op.f('ix_conversation_facts_conversation_id'))

    op.drop_table('conversation_facts')
    op.drop_table('canned_replies')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('ux_alerts_open', sqlite_where=sa.text('resolved_at IS NULL'), postgresql_where=sa.text('resolved_at IS NULL'))
        batch_op.drop_index(batch_op.f('ix_alerts_opened_at'))

    op.drop_table('alerts')
