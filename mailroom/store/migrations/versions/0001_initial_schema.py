"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21 17:33:29.293785
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('domains',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('created', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    sqlite_autoincrement=True
    )
    op.create_table('mailbox_databases',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('guid', sa.String(length=36), nullable=False),
    sa.Column('last_change', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('guid'),
    sa.UniqueConstraint('name'),
    sqlite_autoincrement=True
    )
    op.create_table('journal',
    sa.Column('database_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('mailbox_id', sa.BigInteger(), nullable=False),
    sa.Column('object_kind', sa.String(length=8), nullable=False),
    sa.Column('object_id', sa.BigInteger(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('folder_id', sa.BigInteger(), nullable=True),
    sa.Column('old_folder_id', sa.BigInteger(), nullable=True),
    sa.Column('old_object_id', sa.BigInteger(), nullable=True),
    sa.Column('committed', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['database_id'], ['mailbox_databases.id'], ),
    sa.PrimaryKeyConstraint('database_id', 'seq')
    )
    with op.batch_alter_table('journal', schema=None) as batch_op:
        batch_op.create_index('ix_journal_mailbox', ['mailbox_id', 'seq'], unique=False)

    op.create_table('mailboxes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('guid', sa.String(length=36), nullable=False),
    sa.Column('database_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('domain_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('display_name', sa.String(length=256), nullable=False),
    sa.Column('password_hash', sa.String(length=256), nullable=True),
    sa.Column('created', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['database_id'], ['mailbox_databases.id'], ),
    sa.ForeignKeyConstraint(['domain_id'], ['domains.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('address'),
    sa.UniqueConstraint('guid'),
    sqlite_autoincrement=True
    )
    op.create_table('aliases',
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('mailbox_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['mailbox_id'], ['mailboxes.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('address')
    )
    with op.batch_alter_table('aliases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_aliases_mailbox_id'), ['mailbox_id'], unique=False)

    op.create_table('folders',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('mailbox_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('parent_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('distinguished_id', sa.String(length=64), nullable=True),
    sa.Column('display_name', sa.String(length=256), nullable=False),
    sa.Column('folder_class', sa.String(length=256), nullable=True),
    sa.Column('change_number', sa.BigInteger(), nullable=False),
    sa.Column('created', sa.String(length=32), nullable=False),
    sa.Column('modified', sa.String(length=32), nullable=False),
    sa.Column('total_count', sa.Integer(), nullable=False),
    sa.Column('associated_count', sa.Integer(), nullable=False),
    sa.Column('unread_count', sa.Integer(), nullable=False),
    sa.Column('child_folder_count', sa.Integer(), nullable=False),
    sa.Column('hidden', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['mailbox_id'], ['mailboxes.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['parent_id'], ['folders.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('mailbox_id', 'distinguished_id', name='uq_folders_distinguished'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('folders', schema=None) as batch_op:
        batch_op.create_index('ix_folders_mailbox', ['mailbox_id'], unique=False)
        batch_op.create_index('ix_folders_parent', ['parent_id', 'display_name'], unique=False)

    op.create_table('items',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('mailbox_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('folder_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('change_number', sa.BigInteger(), nullable=False),
    sa.Column('item_class', sa.String(length=256), nullable=False),
    sa.Column('subject', sa.Text(), nullable=True),
    sa.Column('date_received', sa.String(length=32), nullable=True),
    sa.Column('date_sent', sa.String(length=32), nullable=True),
    sa.Column('date_created', sa.String(length=32), nullable=False),
    sa.Column('last_modified', sa.String(length=32), nullable=False),
    sa.Column('is_read', sa.Boolean(), nullable=False),
    sa.Column('is_associated', sa.Boolean(), nullable=False),
    sa.Column('importance', sa.String(length=16), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('has_attachments', sa.Boolean(), nullable=False),
    sa.Column('message_id', sa.String(length=998), nullable=True),
    sa.Column('body_type', sa.String(length=8), nullable=True),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('props', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['folder_id'], ['folders.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['mailbox_id'], ['mailboxes.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.create_index('ix_items_folder_created', ['folder_id', 'is_associated', 'date_created', 'id'],
                              unique=False)
        batch_op.create_index('ix_items_folder_received', ['folder_id', 'is_associated', 'date_received', 'id'],
                              unique=False)
        batch_op.create_index('ix_items_folder_subject', ['folder_id', 'is_associated', 'subject'], unique=False)
        batch_op.create_index('ix_items_folder_unread', ['folder_id', 'is_read'], unique=False)
        batch_op.create_index('ix_items_message_id', ['mailbox_id', 'message_id'], unique=False)

    op.create_table('attachments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('item_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('content_type', sa.String(length=255), nullable=True),
    sa.Column('content_id', sa.String(length=998), nullable=True),
    sa.Column('content_location', sa.Text(), nullable=True),
    sa.Column('is_inline', sa.Boolean(), nullable=False),
    sa.Column('is_contact_photo', sa.Boolean(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('last_modified', sa.String(length=32), nullable=False),
    sa.Column('content', sa.LargeBinary().with_variant(postgresql.BYTEA(), 'postgresql'), nullable=True),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attachments_item_id'), ['item_id'], unique=False)

    op.create_table('extended_properties',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('item_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('folder_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('prop_key', sa.String(length=300), nullable=False),
    sa.Column('prop_type', sa.String(length=32), nullable=False),
    sa.Column('value', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('str_value', sa.Text(), nullable=True),
    sa.Column('num_value', sa.Double(), nullable=True),
    sa.ForeignKeyConstraint(['folder_id'], ['folders.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('extended_properties', schema=None) as batch_op:
        batch_op.create_index('ix_extprops_folder', ['folder_id', 'prop_key'], unique=False)
        batch_op.create_index('ix_extprops_item', ['item_id', 'prop_key'], unique=False)

    op.create_table('item_mime',
    sa.Column('item_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('mime', sa.LargeBinary().with_variant(postgresql.BYTEA(), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('item_id')
    )



def downgrade() -> None:

    op.drop_table('item_mime')
    with op.batch_alter_table('extended_properties', schema=None) as batch_op:
        batch_op.drop_index('ix_extprops_item')
        batch_op.drop_index('ix_extprops_folder')

    op.drop_table('extended_properties')
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attachments_item_id'))

    op.drop_table('attachments')
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.drop_index('ix_items_message_id')
        batch_op.drop_index('ix_items_folder_unread')
        batch_op.drop_index('ix_items_folder_subject')
        batch_op.drop_index('ix_items_folder_received')
        batch_op.drop_index('ix_items_folder_created')

    op.drop_table('items')
    with op.batch_alter_table('folders', schema=None) as batch_op:
        batch_op.drop_index('ix_folders_parent')
        batch_op.drop_index('ix_folders_mailbox')

    op.drop_table('folders')
    with op.batch_alter_table('aliases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_aliases_mailbox_id'))

    op.drop_table('aliases')
    op.drop_table('mailboxes')
    with op.batch_alter_table('journal', schema=None) as batch_op:
        batch_op.drop_index('ix_journal_mailbox')

    op.drop_table('journal')
    op.drop_table('mailbox_databases')
    op.drop_table('domains')

