"""reports: cover the survey and conversation counts with their indexes

Satisfaction counts read surveys by sending time and conversation rates read conversations by
start time; both indexes only located the rows, and those rows lie scattered over their tables
(the 48,436 surveys of two 30-day spans sat on 48,286 pages), so a dashboard read about a heap
page per row. With the grouped columns in the index PostgreSQL answers
from the index alone (index-only scans; the survey index keeps only the tickets that were
surveyed, so it stays about as small as before). Measured on bench/reports.py's database
(1,000,000 tickets, 300,000 surveys, 500,000 conversations; PostgreSQL 15, 2 shared cores),
EXPLAIN (ANALYZE, BUFFERS) medians of the 30-day dashboard's statements: surveys this period
and the one before 31 -> 11 ms (48,286 -> 304 buffers), by day and by agent 15 -> 5 ms each
(24,004 -> 153 buffers), conversations this period and the one before 37 -> 11 ms
(77,853 -> 435 buffers; with one aggregate per span instead of a grouped one). SQLite has no INCLUDE: there the survey index becomes partial and the
conversation index stays as it was.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 14:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

SURVEYED = sa.text("survey_sent_at IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table('ticket_facts', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_facts_survey')
        batch_op.create_index(
            'ix_ticket_facts_survey', ['survey_sent_at'], unique=False,
            postgresql_include=['survey_day', 'csat_score', 'survey_agent_id', 'survey_team_id'],
            postgresql_where=SURVEYED, sqlite_where=SURVEYED)
    with op.batch_alter_table('conversation_facts', schema=None) as batch_op:
        batch_op.drop_index('ix_conversation_facts_started_at')
        batch_op.create_index(
            'ix_conversation_facts_started_at', ['started_at'], unique=False,
            postgresql_include=['ticket_id', 'handed_off', 'channel'])


def downgrade() -> None:
    with op.batch_alter_table('conversation_facts', schema=None) as batch_op:
        batch_op.drop_index('ix_conversation_facts_started_at')
        batch_op.create_index('ix_conversation_facts_started_at', ['started_at'], unique=False)
    with op.batch_alter_table('ticket_facts', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_facts_survey')
        batch_op.create_index('ix_ticket_facts_survey', ['survey_sent_at'], unique=False)
