"""shop ingestion: external ids, source timestamps, restock subscriptions, shipping-notice opt-out

The shop's own ids (products, customers, shipments, tracking events, refunds; an order keeps its
``number``) are unique where present; ``source_updated_at`` is the time of the shop's version
Kefu holds, so an older version never overwrites a newer one. ``customer_notices`` remembers
each event a customer was told about, so a resent batch tells nothing twice.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 12:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ticketing.core.models.base


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

WAITING = sa.text('notified_at IS NULL')
# tables that get the shop's external id (unique where present) and its version time
KEYED = ('products', 'customers', 'shipments', 'refund_requests')


def _time() -> ticketing.core.models.base.UTCDateTime:
    return ticketing.core.models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    for table in KEYED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('external_id', sa.String(length=64), nullable=True))
            batch_op.add_column(sa.Column('source_updated_at', _time(), nullable=True))
            batch_op.create_unique_constraint(batch_op.f(f'uq_{table}_external_id'),
                                              ['external_id'])
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('shipping_notices_opt_out', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_updated_at', _time(), nullable=True))
    with op.batch_alter_table('tracking_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('external_id', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_tracking_events_external_id'),
                                          ['external_id'])

    op.create_table('restock_subscriptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('created_at', _time(), nullable=False),
    sa.Column('notified_at', _time(), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'],
                            name=op.f('fk_restock_subscriptions_customer_id_customers')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'],
                            name=op.f('fk_restock_subscriptions_product_id_products')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_restock_subscriptions'))
    )
    with op.batch_alter_table('restock_subscriptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_restock_subscriptions_customer_id'), ['customer_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_restock_subscriptions_product_id'), ['product_id'],
                              unique=False)
        batch_op.create_index('uq_restock_subscriptions_waiting', ['customer_id', 'product_id'],
                              unique=True, sqlite_where=WAITING, postgresql_where=WAITING)

    op.create_table('customer_notices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_key', sa.String(length=120), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('outbox_id', sa.Integer(), nullable=False),
    sa.Column('created_at', _time(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'],
                            name=op.f('fk_customer_notices_customer_id_customers')),
    sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id'],
                            name=op.f('fk_customer_notices_outbox_id_outbox')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_notices')),
    sa.UniqueConstraint('event_key', name=op.f('uq_customer_notices_event_key'))
    )
    with op.batch_alter_table('customer_notices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_notices_customer_id'), ['customer_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('customer_notices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customer_notices_customer_id'))
    op.drop_table('customer_notices')
    with op.batch_alter_table('restock_subscriptions', schema=None) as batch_op:
        batch_op.drop_index('uq_restock_subscriptions_waiting')
        batch_op.drop_index(batch_op.f('ix_restock_subscriptions_product_id'))
        batch_op.drop_index(batch_op.f('ix_restock_subscriptions_customer_id'))
    op.drop_table('restock_subscriptions')
    with op.batch_alter_table('tracking_events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_tracking_events_external_id'), type_='unique')
        batch_op.drop_column('external_id')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('source_updated_at')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_column('shipping_notices_opt_out')
    for table in reversed(KEYED):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(batch_op.f(f'uq_{table}_external_id'), type_='unique')
            batch_op.drop_column('source_updated_at')
            batch_op.drop_column('external_id')
