"""bills.last_position: a per-bill counter so concurrent uploads get distinct image positions

Revision ID: 5e7a1c9d2b40
Revises: 7a1c0e5d2b90
Create Date: 2026-11-30 00:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5e7a1c9d2b40'
down_revision = '7a1c0e5d2b90'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('bills', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_position', sa.Integer(), server_default='0', nullable=False))
    # Existing bills continue after the highest position they already used.
    op.execute("UPDATE bills SET last_position = COALESCE("
               "(SELECT MAX(images.position) FROM images WHERE images.bill_id = bills.id), 0)")


def downgrade():
    with op.batch_alter_table('bills', schema=None) as batch_op:
        batch_op.drop_column('last_position')
