"""paid tier: billing accounts, subscriptions, handled Stripe events; readers.plan_until

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 05:54:54.670421

"""
from alembic import op
import sqlalchemy as sa
import newsletter.db  # noqa: F401 - custom column types


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('billing_events',
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('outcome', sa.String(length=200), nullable=False),
    sa.Column('received_at', newsletter.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_events'))
    )
    op.create_table('billing_accounts',
    sa.Column('reader_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.String(length=255), nullable=True),
    sa.Column('comp', sa.Boolean(), nullable=False),
    sa.Column('comp_note', sa.String(length=200), nullable=False),
    sa.Column('comp_by', sa.String(length=320), nullable=False),
    sa.Column('comp_at', newsletter.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', newsletter.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', newsletter.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['reader_id'], ['readers.id'], name=op.f('fk_billing_accounts_reader_id_readers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('reader_id', name=op.f('pk_billing_accounts')),
    sa.UniqueConstraint('customer_id', name=op.f('uq_billing_accounts_customer_id'))
    )
    op.create_table('billing_subscriptions',
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('reader_id', sa.Integer(), nullable=True),
    sa.Column('customer_id', sa.String(length=255), nullable=True),
    sa.Column('status', sa.String(length=30), nullable=False),
    sa.Column('price_id', sa.String(length=255), nullable=True),
    sa.Column('interval', sa.String(length=10), nullable=True),
    sa.Column('interval_count', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=True),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('current_period_end', newsletter.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cancel_at_period_end', sa.Boolean(), nullable=False),
    sa.Column('cancel_at', newsletter.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('trial_end', newsletter.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('canceled_at', newsletter.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', newsletter.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('grace_until', newsletter.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sync_seq', sa.Integer(), nullable=False),
    sa.Column('applied_seq', sa.Integer(), nullable=False),
    sa.Column('created_at', newsletter.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', newsletter.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['reader_id'], ['readers.id'], name=op.f('fk_billing_subscriptions_reader_id_readers'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_subscriptions'))
    )
    with op.batch_alter_table('billing_subscriptions', schema=None) as batch_op:
        batch_op.create_index('ix_billing_subscriptions_customer_id', ['customer_id'], unique=False)
        batch_op.create_index('ix_billing_subscriptions_reader_id', ['reader_id'], unique=False)
        batch_op.create_index('ix_billing_subscriptions_status', ['status'], unique=False)

    with op.batch_alter_table('readers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('plan_until', newsletter.db.UTCDateTime(timezone=True), nullable=True))



def downgrade():
    with op.batch_alter_table('readers', schema=None) as batch_op:
        batch_op.drop_column('plan_until')

    with op.batch_alter_table('billing_subscriptions', schema=None) as batch_op:
        batch_op.drop_index('ix_billing_subscriptions_status')
        batch_op.drop_index('ix_billing_subscriptions_reader_id')
        batch_op.drop_index('ix_billing_subscriptions_customer_id')

    op.drop_table('billing_subscriptions')
    op.drop_table('billing_accounts')
    op.drop_table('billing_events')
