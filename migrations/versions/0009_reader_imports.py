"""reader imports and their skipped lines

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa
import newsletter.db  # noqa: F401 - custom column types


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('reader_imports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('admin_id', sa.Integer(), nullable=True),
    sa.Column('admin_email', sa.String(length=320), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=True),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('encoding', sa.String(length=10), nullable=False),
    sa.Column('delimiter', sa.String(length=1), nullable=False),
    sa.Column('has_header', sa.Boolean(), nullable=False),
    sa.Column('total_rows', sa.Integer(), nullable=False),
    sa.Column('mapping', sa.JSON(), nullable=False),
    sa.Column('topics', sa.JSON(), nullable=False),
    sa.Column('consent_source', sa.String(length=300), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('claim', sa.String(length=32), nullable=True),
    sa.Column('lease_until', newsletter.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('rows_done', sa.Integer(), nullable=False),
    sa.Column('added', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('created_at', newsletter.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', newsletter.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', newsletter.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['admin_id'], ['admins.id'], name=op.f('fk_reader_imports_admin_id_admins'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reader_imports'))
    )
    with op.batch_alter_table('reader_imports', schema=None) as batch_op:
        batch_op.create_index('ix_reader_imports_status', ['status'], unique=False)

    op.create_table('reader_import_problems',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('value', sa.String(length=120), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['reader_imports.id'], name=op.f('fk_reader_import_problems_job_id_reader_imports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reader_import_problems'))
    )
    with op.batch_alter_table('reader_import_problems', schema=None) as batch_op:
        batch_op.create_index('ix_reader_import_problems_job_id_line', ['job_id', 'line'], unique=False)


def downgrade():
    with op.batch_alter_table('reader_import_problems', schema=None) as batch_op:
        batch_op.drop_index('ix_reader_import_problems_job_id_line')

    op.drop_table('reader_import_problems')
    with op.batch_alter_table('reader_imports', schema=None) as batch_op:
        batch_op.drop_index('ix_reader_imports_status')

    op.drop_table('reader_imports')
