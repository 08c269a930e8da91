"""readers.address_version: raised when a reader's address changes or is put back, so
sessions and own-inbox links from before stop working

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08 00:10:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('readers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('address_version', sa.Integer(), nullable=False,
                                      server_default='0'))


def downgrade():
    with op.batch_alter_table('readers', schema=None) as batch_op:
        batch_op.drop_column('address_version')
