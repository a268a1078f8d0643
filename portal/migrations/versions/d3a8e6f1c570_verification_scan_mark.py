"""Verification reads only what changed: a scan mark per enterprise, rows indexed by when they changed

Revision ID: d3a8e6f1c570
Revises: b7d41f0c9e26
Create Date: 2026-11-30 06:50:00

Each verification pass read every invoice and pushed invoice of the verifying enterprises to find the
few keys without a result (~4.7 s of PostgreSQL time a pass at 1M invoices, with nothing due). Now a
pass reads the rows changed since the enterprise's last complete scan. Plain column and index
statements: SQLite rebuilds no table, so the seller triggers of 9c2f4e7a1b36 stay in place.
"""
from alembic import op
import sqlalchemy as sa


revision = "d3a8e6f1c570"
down_revision = "b7d41f0c9e26"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("enterprises", sa.Column("verify_scanned_at", sa.DateTime(), nullable=True))
    op.create_index("ix_invoices_enterprise_updated", "invoices", ["enterprise_id", "updated_at"])
    op.create_index("ix_expected_invoices_enterprise_received", "expected_invoices", ["enterprise_id", "received_at"])


def downgrade():
    op.drop_index("ix_expected_invoices_enterprise_received", table_name="expected_invoices")
    op.drop_index("ix_invoices_enterprise_updated", table_name="invoices")
    with op.batch_alter_table("enterprises") as batch_op:
        batch_op.drop_column("verify_scanned_at")
