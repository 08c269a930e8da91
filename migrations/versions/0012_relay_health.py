"""relay_state: each relay's health as the workers' circuit breakers last saw it

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 21:20:00

"""
from alembic import op
import sqlalchemy as sa
import newsletter.db  # noqa: F401 - custom column types


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('relay_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('down_since', newsletter.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('checked_at', newsletter.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('last_error', sa.String(length=300), nullable=True))


def downgrade():
    with op.batch_alter_table('relay_state', schema=None) as batch_op:
        batch_op.drop_column('last_error')
        batch_op.drop_column('checked_at')
        batch_op.drop_column('down_since')
