"""readers.first_name: what to call a reader in a greeting

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 07:42:02.056391

"""
from alembic import op
import sqlalchemy as sa
import newsletter.db  # noqa: F401 - custom column types


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('readers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_name', sa.String(length=60), nullable=True))



def downgrade():
    with op.batch_alter_table('readers', schema=None) as batch_op:
        batch_op.drop_column('first_name')

