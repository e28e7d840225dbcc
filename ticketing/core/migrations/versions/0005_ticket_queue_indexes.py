"""desk queues: index tickets by assignee and by team

"Mine" (owner or assignee) and the team's tickets are asked on every queue page; without
these indexes both scan the whole table (bench/desk_load.py at 100,000 tickets: my queue
60 → 13 ms, the tab counts 65 → 27 ms).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 12:00:00
"""
from __future__ import annotations

from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tickets_assignee_id'), ['assignee_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_team_id'), ['team_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tickets_team_id'))
        batch_op.drop_index(batch_op.f('ix_tickets_assignee_id'))
