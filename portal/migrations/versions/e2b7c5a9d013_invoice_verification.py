"""Invoice verification (发票查验) with the invoice cloud: per-enterprise switch and results per invoice key

Revision ID: e2b7c5a9d013
Revises: c4e8a1d27f35
Create Date: 2026-11-30 03:20:00

"""
from alembic import op
import sqlalchemy as sa


revision = "e2b7c5a9d013"
down_revision = "c4e8a1d27f35"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("enterprises", schema=None) as batch_op:
        batch_op.add_column(sa.Column("verify_invoices", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "invoice_verifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("enterprise_id", sa.Integer(), nullable=False),
        sa.Column("invoice_key", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=True),
        sa.Column("message", sa.String(length=500), nullable=True),
        sa.Column("checked_at", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_try_at", sa.DateTime(), nullable=True),
        sa.Column("request", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["enterprise_id"], ["enterprises.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("enterprise_id", "invoice_key"),
    )
    op.create_index("ix_invoice_verifications_due", "invoice_verifications", ["status", "next_try_at"], unique=False)


def downgrade():
    op.drop_index("ix_invoice_verifications_due", table_name="invoice_verifications")
    op.drop_table("invoice_verifications")
    with op.batch_alter_table("enterprises", schema=None) as batch_op:
        batch_op.drop_column("verify_invoices")
