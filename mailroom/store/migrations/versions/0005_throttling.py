"""throttling policies and their assignment to mailboxes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 20:10:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('throttling_policies',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
              nullable=False),
    sa.Column('created', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    sqlite_autoincrement=True
    )
    op.create_table('throttling_assignments',
    sa.Column('mailbox_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('policy_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['mailbox_id'], ['mailboxes.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['policy_id'], ['throttling_policies.id']),
    sa.PrimaryKeyConstraint('mailbox_id')
    )
    op.create_index(op.f('ix_throttling_assignments_policy_id'), 'throttling_assignments', ['policy_id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_throttling_assignments_policy_id'), table_name='throttling_assignments')
    op.drop_table('throttling_assignments')
    op.drop_table('throttling_policies')
