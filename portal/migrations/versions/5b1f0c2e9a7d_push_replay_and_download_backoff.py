"""push replay receipts, 只接受加密推送, download backoff

Revision ID: 5b1f0c2e9a7d
Revises: 5e3d9a7c41b2
Create Date: 2026-11-30 00:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5b1f0c2e9a7d'
down_revision = '5e3d9a7c41b2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'push_receipts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('client_id', sa.String(length=64), nullable=False),
        sa.Column('timestamp', sa.String(length=16), nullable=False),
        sa.Column('sign', sa.String(length=128), nullable=False),
        sa.Column('body_sha256', sa.String(length=64), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('client_id', 'timestamp', 'sign'),
    )
    with op.batch_alter_table('push_receipts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_push_receipts_expires_at'), ['expires_at'], unique=False)

    # Existing enterprises get the safe setting too: a plain push is refused until ops turn it off.
    with op.batch_alter_table('enterprises', schema=None) as batch_op:
        batch_op.add_column(sa.Column('encrypted_push_only', sa.Boolean(), server_default=sa.true(), nullable=False))

    with op.batch_alter_table('expected_invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fetch_attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('fetch_next_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('expected_invoices', schema=None) as batch_op:
        batch_op.drop_column('fetch_next_at')
        batch_op.drop_column('fetch_attempts')

    with op.batch_alter_table('enterprises', schema=None) as batch_op:
        batch_op.drop_column('encrypted_push_only')

    with op.batch_alter_table('push_receipts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_push_receipts_expires_at'))

    op.drop_table('push_receipts')
