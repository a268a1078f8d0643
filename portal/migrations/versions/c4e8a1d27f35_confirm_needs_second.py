"""Manual match confirmation needs a second person (per enterprise, on by default)

Revision ID: c4e8a1d27f35
Revises: 8d3f2a6b1c47
Create Date: 2026-11-30 01:40:00

"""
from alembic import op
import sqlalchemy as sa


revision = "c4e8a1d27f35"
down_revision = "8d3f2a6b1c47"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("enterprises", schema=None) as batch_op:
        batch_op.add_column(sa.Column("confirm_needs_second", sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade():
    with op.batch_alter_table("enterprises", schema=None) as batch_op:
        batch_op.drop_column("confirm_needs_second")
