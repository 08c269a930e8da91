"""api_tokens.scopes: what each API token may do

Tokens made from now on hold only the scopes they were given (ingest syntheses, unless
told otherwise). Tokens that exist when this runs were made when a token could do
everything, and the systems holding them use it: they keep every scope, so no integration
stops working at the upgrade (a breaking-news edition refused 403 at the moment it matters
is worse than the risk that was there yesterday). Each is marked in the audit log
("kept every scope", actor "migration 0014") and shown with its scopes on the owners' API
tokens page, so an owner can replace it with a narrower one and revoke it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08 00:30:00

"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa
import newsletter.db  # noqa: F401 - custom column types


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

# The scopes as this revision knows them (the enum may grow; old tokens keep these).
ALL_SCOPES = ["syntheses:write", "editions:draft", "editions:send", "readers:add",
              "readers:read", "readers:write"]


def upgrade():
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scopes', sa.JSON(), nullable=True))
    conn = op.get_bind()
    tokens = sa.table('api_tokens', sa.column('id', sa.Integer()),
                      sa.column('name', sa.String()), sa.column('scopes', sa.JSON()))
    audit_log = sa.table('audit_log', sa.column('at', newsletter.db.UTCDateTime()),
                         sa.column('admin_id', sa.Integer()), sa.column('actor', sa.String()),
                         sa.column('action', sa.String()), sa.column('target', sa.String()),
                         sa.column('detail', sa.JSON()), sa.column('ip', sa.String()))
    existing = conn.execute(sa.select(tokens.c.id, tokens.c.name)).all()
    conn.execute(tokens.update().values(scopes=ALL_SCOPES))
    now = datetime.now(timezone.utc)
    for _, name in existing:
        conn.execute(audit_log.insert().values(
            at=now, admin_id=None, actor="migration 0014", action="kept every scope",
            target=f"api token {name}"[:200], ip=None,
            detail={"scopes": ALL_SCOPES,
                    "why": "made before tokens had scopes; replace it with a token that "
                           "holds only what its system needs"}))
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.alter_column('scopes', existing_type=sa.JSON(), nullable=False)


def downgrade():
    # Without the column every token can do everything again, as before this revision.
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('scopes')
