"""Background OCR of uploaded images (state, attempts, lease) and 待确认 on OCR'd invoices

Revision ID: e1a7c3b95d20
Revises: e2b7c5a9d013
Create Date: 2026-11-30 03:20:00

"""
from alembic import op
import sqlalchemy as sa


revision = "e1a7c3b95d20"
down_revision = "e2b7c5a9d013"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ocr_state", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("ocr_attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("ocr_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("ocr_due_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("ocr_lease_until", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("ocr_token", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("ocr_finished_at", sa.DateTime(), nullable=True))
        batch_op.create_index("ix_images_ocr_due", ["ocr_state", "ocr_due_at"], unique=False)
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("needs_confirm", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("confirmed_by", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("confirmed_at", sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_column("confirmed_at")
        batch_op.drop_column("confirmed_by")
        batch_op.drop_column("needs_confirm")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index("ix_images_ocr_due")
        batch_op.drop_column("ocr_finished_at")
        batch_op.drop_column("ocr_token")
        batch_op.drop_column("ocr_lease_until")
        batch_op.drop_column("ocr_due_at")
        batch_op.drop_column("ocr_error")
        batch_op.drop_column("ocr_attempts")
        batch_op.drop_column("ocr_state")
