"""expected_invoices: a partial index of the pushed files still to download

Revision ID: f4c2b9d7e813
Revises: d3a8e6f1c570
Create Date: 2026-11-30 07:40:00

The sync-mode download pass looked for rows with a download address and no fetched image by reading
every pushed invoice (~135 ms a pass at 2M pushed invoices on PostgreSQL, growing with every push).
The partial index holds only the rows still to fetch. A plain index statement: SQLite rebuilds no table.
"""
from alembic import op
import sqlalchemy as sa


revision = "f4c2b9d7e813"
down_revision = "d3a8e6f1c570"
branch_labels = None
depends_on = None

WHERE = sa.text("fetched_image_id IS NULL AND download_url IS NOT NULL")


def upgrade():
    op.create_index("ix_expected_invoices_to_fetch", "expected_invoices", ["enterprise_id", "id"],
                    sqlite_where=WHERE, postgresql_where=WHERE)


def downgrade():
    op.drop_index("ix_expected_invoices_to_fetch", table_name="expected_invoices")
