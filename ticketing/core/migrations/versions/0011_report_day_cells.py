"""reports: day cells for the dashboard, their built days and the marks of changed days

A 30-day dashboard read the period's ~80,000 ticket facts four times (this period, the one
before, by day, by agent), each time counting and sorting every duration. Day cells keep a
local day's facts summed per owner and team, their durations' values packed as bytes: a period
is then a few thousand small rows whose values are concatenated and selected from
(ticketing.reports.cells). ``report_days`` says which days are built; ``report_marks`` (written
beside every fact change) which of them changed since.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 15:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ticketing.core.models.base

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_COUNTS = ('tickets', 'escalated', 'solved', 'reopened', 'handed_off', 'unanswered')
_TARGETS = ('first_response', 'next_response', 'resolution')
_VALUES = ('first_response', 'first_response_bh', 'resolution_first', 'resolution_first_bh',
           'resolution_last', 'resolution_last_bh', 'next_response', 'next_response_bh',
           'categories')


def upgrade() -> None:
    columns = [sa.Column(name, sa.Integer(), nullable=False) for name in _COUNTS]
    for target in _TARGETS:
        columns += [sa.Column(f'sla_{target}_met', sa.Integer(), nullable=False),
                    sa.Column(f'sla_{target}_breached', sa.Integer(), nullable=False),
                    sa.Column(f'sla_{target}_pending', sa.LargeBinary(), nullable=True)]
    columns += [sa.Column(name, sa.LargeBinary(), nullable=True) for name in _VALUES]
    op.create_table('report_cells',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('team_id', sa.Integer(), nullable=True),
    *columns,
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_cells'))
    )
    op.create_index('ix_report_cells_day', 'report_cells', ['day'], unique=False)
    op.create_table('report_days',
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('built_at', ticketing.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_report_days'))
    )
    op.create_table('report_marks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_marks'))
    )
    op.create_index('ix_report_marks_day', 'report_marks', ['day'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_report_marks_day', table_name='report_marks')
    op.drop_table('report_marks')
    op.drop_table('report_days')
    op.drop_index('ix_report_cells_day', table_name='report_cells')
    op.drop_table('report_cells')
