"""admin_sessions (server-side admin sign-ins), sign_in_failures (lockout per account and
IP); the admin columns they replace go

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 23:40:00

"""
from alembic import op
import sqlalchemy as sa
import newsletter.db  # noqa: F401 - custom column types


# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('admin_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('admin_id', sa.Integer(), nullable=False),
    sa.Column('created_at', newsletter.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', newsletter.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.Column('user_agent', sa.String(length=300), nullable=True),
    sa.ForeignKeyConstraint(['admin_id'], ['admins.id'], name=op.f('fk_admin_sessions_admin_id_admins'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_admin_sessions_token_hash'))
    )
    with op.batch_alter_table('admin_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_admin_sessions_admin_id', ['admin_id'], unique=False)
    op.create_table('sign_in_failures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('ip', sa.String(length=45), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('first_at', newsletter.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('locked_until', newsletter.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sign_in_failures')),
    sa.UniqueConstraint('account', 'ip', name=op.f('uq_sign_in_failures_account_ip'))
    )
    with op.batch_alter_table('admins', schema=None) as batch_op:
        batch_op.drop_column('session_epoch')
        batch_op.drop_column('locked_until')
        batch_op.drop_column('failed_logins')


def downgrade():
    with op.batch_alter_table('admins', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failed_logins', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('locked_until', newsletter.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('session_epoch', sa.Integer(), nullable=False, server_default='0'))
    op.drop_table('sign_in_failures')
    with op.batch_alter_table('admin_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_admin_sessions_admin_id')
    op.drop_table('admin_sessions')
