"""directory: mailbox kinds (rooms, equipment), directory attributes, public groups and room lists

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 21:20:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.add_column('mailboxes', sa.Column('kind', sa.String(length=16), server_default='user', nullable=False))
    op.create_table('directory_attributes',
    sa.Column('mailbox_id', _ID, nullable=False),
    sa.Column('manager_id', _ID, nullable=True),
    sa.Column('attributes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
              nullable=False),
    sa.ForeignKeyConstraint(['mailbox_id'], ['mailboxes.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['manager_id'], ['mailboxes.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('mailbox_id')
    )
    op.create_index(op.f('ix_directory_attributes_manager_id'), 'directory_attributes', ['manager_id'], unique=False)
    op.create_table('groups',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('domain_id', _ID, nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('display_name', sa.String(length=256), nullable=False),
    sa.Column('room_list', sa.Boolean(), nullable=False),
    sa.Column('created', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['domain_id'], ['domains.id']),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('address'),
    sqlite_autoincrement=True
    )
    op.create_table('group_members',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('group_id', _ID, nullable=False),
    sa.Column('mailbox_id', _ID, nullable=True),
    sa.Column('member_group_id', _ID, nullable=True),
    sa.Column('address', sa.String(length=320), nullable=True),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['mailbox_id'], ['mailboxes.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_group_id'], ['groups.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=True
    )
    op.create_index(op.f('ix_group_members_group_id'), 'group_members', ['group_id'], unique=False)
    op.create_index(op.f('ix_group_members_mailbox_id'), 'group_members', ['mailbox_id'], unique=False)
    op.create_index(op.f('ix_group_members_member_group_id'), 'group_members', ['member_group_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_group_members_member_group_id'), table_name='group_members')
    op.drop_index(op.f('ix_group_members_mailbox_id'), table_name='group_members')
    op.drop_index(op.f('ix_group_members_group_id'), table_name='group_members')
    op.drop_table('group_members')
    op.drop_table('groups')
    op.drop_index(op.f('ix_directory_attributes_manager_id'), table_name='directory_attributes')
    op.drop_table('directory_attributes')
    with op.batch_alter_table('mailboxes', schema=None) as batch_op:
        batch_op.drop_column('kind')
