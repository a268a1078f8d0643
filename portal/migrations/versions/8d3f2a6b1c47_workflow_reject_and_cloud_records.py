"""Reject the ERP task on return (per enterprise); cloud record fields on pushed invoices

Revision ID: 8d3f2a6b1c47
Revises: 5b1f0c2e9a7d
Create Date: 2026-11-30 01:15:00

"""
from alembic import op
import sqlalchemy as sa


revision = "8d3f2a6b1c47"
down_revision = "5b1f0c2e9a7d"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("enterprises", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reject_on_return", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("expected_invoices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cloud_type", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("cloud", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("extra", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("expected_invoices", schema=None) as batch_op:
        batch_op.drop_column("extra")
        batch_op.drop_column("cloud")
        batch_op.drop_column("cloud_type")
    with op.batch_alter_table("enterprises", schema=None) as batch_op:
        batch_op.drop_column("reject_on_return")
