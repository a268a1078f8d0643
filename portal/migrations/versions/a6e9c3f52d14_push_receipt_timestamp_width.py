"""push_receipts.timestamp holds the written form yyyyMMddHHmmssffff (18 characters)

Revision ID: a6e9c3f52d14
Revises: f4c2b9d7e813
Create Date: 2026-11-30 07:55:00

Pushes may sign a Beijing time written as digits (reference §B.1) besides Unix seconds and
milliseconds; the replay receipt keeps the timestamp as signed. Only push_receipts is rebuilt on
SQLite (no triggers there).
"""
from alembic import op
import sqlalchemy as sa


revision = "a6e9c3f52d14"
down_revision = "f4c2b9d7e813"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("push_receipts") as batch_op:
        batch_op.alter_column("timestamp", existing_type=sa.String(length=16), type_=sa.String(length=20),
                              existing_nullable=False)


def downgrade():
    with op.batch_alter_table("push_receipts") as batch_op:
        batch_op.alter_column("timestamp", existing_type=sa.String(length=20), type_=sa.String(length=16),
                              existing_nullable=False)
