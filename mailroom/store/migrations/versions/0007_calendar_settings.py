"""calendar settings: per-mailbox Set-CalendarProcessing settings (the Resource Booking Attendant)
and working hours (Set-MailboxCalendarConfiguration)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21 23:20:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('calendar_processing',
    sa.Column('mailbox_id', _ID, nullable=False),
    sa.Column('settings', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
              nullable=False),
    sa.ForeignKeyConstraint(['mailbox_id'], ['mailboxes.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('mailbox_id')
    )
    op.create_table('working_hours',
    sa.Column('mailbox_id', _ID, nullable=False),
    sa.Column('work_days', sa.String(length=64), nullable=False),
    sa.Column('start_minutes', sa.Integer(), nullable=False),
    sa.Column('end_minutes', sa.Integer(), nullable=False),
    sa.Column('time_zone', sa.String(length=128), nullable=True),
    sa.ForeignKeyConstraint(['mailbox_id'], ['mailboxes.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('mailbox_id')
    )


def downgrade() -> None:
    op.drop_table('working_hours')
    op.drop_table('calendar_processing')
