"""invoice_sellers: each enterprise's seller names, kept by triggers, for the seller-fragment search

Revision ID: 9c2f4e7a1b36
Revises: e1a7c3b95d20
Create Date: 2026-11-30 03:35:00

The invoice list's seller-name fragment used to be resolved by skipping through the seller-name index
of all invoices (one seek per distinct name: ~45 ms on PostgreSQL at 1M invoices and 2,000 sellers);
this small table answers it with one scan. Triggers on ``invoices`` keep it (insert, and an update of the
seller name or enterprise), on SQLite and on PostgreSQL. A later batch migration that recreates
``invoices`` on SQLite drops its triggers: recreate them there (tests/test_migrations.py checks they exist).
"""
from alembic import op
import sqlalchemy as sa


revision = "9c2f4e7a1b36"
down_revision = "e1a7c3b95d20"
branch_labels = None
depends_on = None

SQLITE_TRIGGERS = [
    """CREATE TRIGGER invoice_sellers_on_insert AFTER INSERT ON invoices WHEN NEW.seller_name IS NOT NULL
       BEGIN INSERT OR IGNORE INTO invoice_sellers (enterprise_id, name) VALUES (NEW.enterprise_id, NEW.seller_name); END""",
    """CREATE TRIGGER invoice_sellers_on_update AFTER UPDATE OF seller_name, enterprise_id ON invoices
       WHEN NEW.seller_name IS NOT NULL
       BEGIN INSERT OR IGNORE INTO invoice_sellers (enterprise_id, name) VALUES (NEW.enterprise_id, NEW.seller_name); END""",
]
POSTGRESQL_TRIGGERS = [
    """CREATE FUNCTION invoice_sellers_keep() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NEW.seller_name IS NOT NULL THEN
           INSERT INTO invoice_sellers (enterprise_id, name) VALUES (NEW.enterprise_id, NEW.seller_name)
           ON CONFLICT DO NOTHING;
         END IF;
         RETURN NULL;
       END $$""",
    """CREATE TRIGGER invoice_sellers_on_insert AFTER INSERT ON invoices
       FOR EACH ROW EXECUTE FUNCTION invoice_sellers_keep()""",
    """CREATE TRIGGER invoice_sellers_on_update AFTER UPDATE OF seller_name, enterprise_id ON invoices
       FOR EACH ROW EXECUTE FUNCTION invoice_sellers_keep()""",
]


def upgrade():
    op.create_table(
        "invoice_sellers",
        sa.Column("enterprise_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["enterprise_id"], ["enterprises.id"], name=op.f("fk_invoice_sellers_enterprise_id_enterprises"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("enterprise_id", "name", name=op.f("pk_invoice_sellers")),
    )
    op.execute("INSERT INTO invoice_sellers (enterprise_id, name) "
               "SELECT DISTINCT enterprise_id, seller_name FROM invoices WHERE seller_name IS NOT NULL")
    dialect = op.get_bind().dialect.name
    for ddl in POSTGRESQL_TRIGGERS if dialect == "postgresql" else SQLITE_TRIGGERS if dialect == "sqlite" else []:
        op.execute(ddl)


def downgrade():
    dialect = op.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        op.execute("DROP TRIGGER IF EXISTS invoice_sellers_on_insert" + (" ON invoices" if dialect == "postgresql" else ""))
        op.execute("DROP TRIGGER IF EXISTS invoice_sellers_on_update" + (" ON invoices" if dialect == "postgresql" else ""))
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS invoice_sellers_keep()")
    op.drop_table("invoice_sellers")
