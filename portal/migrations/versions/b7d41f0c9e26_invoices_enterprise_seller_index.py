"""invoices: seller names indexed per enterprise, in id order

Revision ID: b7d41f0c9e26
Revises: 9c2f4e7a1b36
Create Date: 2026-11-30 06:10:00

The list's seller search walks one seller's invoices newest first. On the old ``(seller_name)`` index
that meant reading every invoice of the seller in both enterprises and sorting them (a seller on 80,000
invoices: ~60 ms on PostgreSQL at 1M invoices); ``(enterprise_id, seller_name, id)`` yields them already
in id order, so a page reads 51 entries. Plain index statements: SQLite needs no table rebuild for them,
so the seller triggers of 9c2f4e7a1b36 stay in place.
"""
from alembic import op


revision = "b7d41f0c9e26"
down_revision = "9c2f4e7a1b36"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_invoices_enterprise_seller_name", "invoices", ["enterprise_id", "seller_name", "id"])
    op.drop_index("ix_invoices_seller_name", table_name="invoices")


def downgrade():
    op.create_index("ix_invoices_seller_name", "invoices", ["seller_name"])
    op.drop_index("ix_invoices_enterprise_seller_name", table_name="invoices")
