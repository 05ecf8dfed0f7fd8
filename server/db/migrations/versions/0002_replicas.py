"""replicas: the replay memory and the hello rate buckets in the database

Revision 0002, after 0001; made 2026-12-01 05:10:44.886943.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rate_buckets',
    sa.Column('key', sa.String(length=120), nullable=False),
    sa.Column('tokens', sa.Float(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_index(op.f('ix_rate_buckets_at'), 'rate_buckets', ['at'], unique=False)
    op.create_table('seen_signatures',
    sa.Column('signature', sa.String(length=100), nullable=False),
    sa.Column('forget_after', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('signature')
    )
    op.create_index(op.f('ix_seen_signatures_forget_after'), 'seen_signatures',
                    ['forget_after'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_seen_signatures_forget_after'), table_name='seen_signatures')
    op.drop_table('seen_signatures')
    op.drop_index(op.f('ix_rate_buckets_at'), table_name='rate_buckets')
    op.drop_table('rate_buckets')
