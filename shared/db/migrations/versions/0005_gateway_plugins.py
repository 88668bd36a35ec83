"""Gateways as plugins: routes per currency, callback verifiers, hosted flows, fees

Daraja was stored as ``mpesa``; it is now ``daraja`` everywhere (credentials
encrypted before the rename stay readable: their AES-GCM context names the old
name, and ``malipo keys rotate`` re-encrypts them under the new one).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 20:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RENAMED = ("gateway_credentials", "payment_intents", "payment_attempts", "gateway_events")


def upgrade() -> None:
    for table in (*RENAMED, "ledger_entries"):
        op.execute(f"UPDATE {table} SET gateway = 'daraja' WHERE gateway = 'mpesa'")  # noqa: S608
    op.add_column(
        "gateway_credentials",
        sa.Column(
            "callback_verifiers",
            postgresql.JSONB(),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
    )
    op.create_table(
        "gateway_routes",
        sa.Column("merchant_id", sa.Uuid(), sa.ForeignKey("merchants.id"), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("gateways", postgresql.ARRAY(sa.String(length=32)), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("merchant_id", "currency", name=op.f("pk_gateway_routes")),
    )
    # Every merchant that could collect KES through Daraja keeps doing so when it names no gateway.
    op.execute(
        "INSERT INTO gateway_routes (merchant_id, currency, gateways)"
        " SELECT merchant_id, 'KES', ARRAY['daraja'] FROM gateway_credentials"
        " WHERE gateway = 'daraja' ON CONFLICT DO NOTHING"
    )
    op.add_column(
        "payment_intents",
        sa.Column("flow", sa.String(length=16), server_default=sa.text("'push'"), nullable=False),
    )
    op.add_column("payment_intents", sa.Column("next_action", postgresql.JSONB(), nullable=True))
    op.add_column(
        "payment_intents",
        sa.Column("checkout", postgresql.JSONB(), server_default=sa.text("'{}'"), nullable=False),
    )
    op.add_column("payment_intents", sa.Column("fee_minor", sa.BigInteger(), nullable=True))
    op.drop_constraint(op.f("ck_ledger_entries_kind_known"), "ledger_entries", type_="check")
    op.create_check_constraint("kind_known", "ledger_entries", "kind IN ('collection', 'fee')")


def downgrade() -> None:
    op.execute("DELETE FROM ledger_entries WHERE kind = 'fee'")
    op.drop_constraint(op.f("ck_ledger_entries_kind_known"), "ledger_entries", type_="check")
    op.create_check_constraint("kind_known", "ledger_entries", "kind IN ('collection')")
    for column in ("fee_minor", "checkout", "next_action", "flow"):
        op.drop_column("payment_intents", column)
    op.drop_table("gateway_routes")
    op.drop_column("gateway_credentials", "callback_verifiers")
    for table in (*RENAMED, "ledger_entries"):
        op.execute(f"UPDATE {table} SET gateway = 'mpesa' WHERE gateway = 'daraja'")  # noqa: S608
