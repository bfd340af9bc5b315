"""calendar spans: the time a calendar item (or a recurring series) covers, indexed

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('items', sa.Column('span_start', sa.String(length=32), nullable=True))
    op.add_column('items', sa.Column('span_end', sa.String(length=32), nullable=True))
    op.create_index('ix_items_folder_span', 'items', ['folder_id', 'is_associated', 'span_end', 'span_start'])


def downgrade() -> None:
    op.drop_index('ix_items_folder_span', table_name='items')
    op.drop_column('items', 'span_end')
    op.drop_column('items', 'span_start')
