"""Galaxy workflow pull: form ids and amount field per connection, pull status, ERP orgs, bill origin

Revision ID: 7a1c0e5d2b90
Revises: 28ebbbb0fecf
Create Date: 2026-11-30 00:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = "7a1c0e5d2b90"
down_revision = "28ebbbb0fecf"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("docking_connections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("form_ids", sa.String(length=300), nullable=False,
                                      server_default="ER_ExpReimbursement"))
        batch_op.add_column(sa.Column("amount_field", sa.String(length=64), nullable=False,
                                      server_default="FExpenseAmount"))
        batch_op.add_column(sa.Column("pulled_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("pull_tasks", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("pull_opened", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("pull_error", sa.String(length=500), nullable=True))
    with op.batch_alter_table("enterprises", schema=None) as batch_op:
        batch_op.add_column(sa.Column("erp_orgs", sa.String(length=300), nullable=False, server_default=""))
    with op.batch_alter_table("bills", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin", sa.String(length=8), nullable=False, server_default="api"))
        batch_op.add_column(sa.Column("task_post_id", sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table("bills", schema=None) as batch_op:
        batch_op.drop_column("task_post_id")
        batch_op.drop_column("origin")
    with op.batch_alter_table("enterprises", schema=None) as batch_op:
        batch_op.drop_column("erp_orgs")
    with op.batch_alter_table("docking_connections", schema=None) as batch_op:
        batch_op.drop_column("pull_error")
        batch_op.drop_column("pull_opened")
        batch_op.drop_column("pull_tasks")
        batch_op.drop_column("pulled_at")
        batch_op.drop_column("amount_field")
        batch_op.drop_column("form_ids")
