"""impersonation grants

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 18:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('impersonation_grants',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('scope_kind', sa.String(length=16), nullable=False),
    sa.Column('scope_value', sa.Text(), nullable=False),
    sa.Column('created', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['mailboxes.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id', 'scope_kind', 'scope_value', name='uq_impersonation_grants'),
    sqlite_autoincrement=True
    )


def downgrade() -> None:
    op.drop_table('impersonation_grants')
