"""private items: a partial index on the private items of each folder (delegates without
ViewPrivateItems get views without them)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 23:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_items_folder_private', 'items', ['folder_id', 'is_associated'], unique=False,
                    sqlite_where=sa.text("json_extract(props, '$.Sensitivity') = 'Private'"),
                    postgresql_where=sa.text("(props ->> 'Sensitivity') = 'Private'"))


def downgrade() -> None:
    op.drop_index('ix_items_folder_private', table_name='items')
