"""Reconciliation runs and items; indexes for reading a window of payments

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 11:05:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reconciliation_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("gateway", sa.String(length=32), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("executions", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "counts",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column(
            "amounts",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column("discrepancies", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'failed')",
            name=op.f("ck_reconciliation_runs_status_known"),
        ),
        sa.CheckConstraint(
            "window_end > window_start", name=op.f("ck_reconciliation_runs_window_ordered")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_reconciliation_runs_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_runs")),
    )
    op.create_index(
        "uq_reconciliation_runs_window",
        "reconciliation_runs",
        [
            "gateway",
            sa.literal_column(
                "coalesce(merchant_id, '00000000-0000-0000-0000-000000000000'::uuid)"
            ),
            "window_start",
            "window_end",
            "source",
        ],
        unique=True,
    )
    op.create_table(
        "reconciliation_items",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("item_key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=True),
        sa.Column("payment_id", sa.Uuid(), nullable=True),
        sa.Column("receipt", sa.String(length=100), nullable=True),
        sa.Column("gateway_ref", sa.String(length=100), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("our_amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("their_amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("our_status", sa.String(length=16), nullable=True),
        sa.Column("their_status", sa.String(length=16), nullable=True),
        sa.Column(
            "evidence",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column("resolution", sa.String(length=40), nullable=True),
        sa.Column("resolution_note", sa.String(length=500), nullable=True),
        sa.Column("resolved_by", sa.String(length=100), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('amount_mismatch', 'duplicate_receipt', 'matched', 'missing_at_gateway', "
            "'missing_here', 'pending_verification', 'status_mismatch')",
            name=op.f("ck_reconciliation_items_kind_known"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_reconciliation_items_merchant_id_merchants"),
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payment_intents.id"],
            name=op.f("fk_reconciliation_items_payment_id_payment_intents"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["reconciliation_runs.id"],
            name=op.f("fk_reconciliation_items_run_id_reconciliation_runs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_items")),
        sa.UniqueConstraint(
            "run_id", "item_key", name=op.f("uq_reconciliation_items_run_id_item_key")
        ),
    )
    op.create_index(
        op.f("ix_reconciliation_items_payment_id"),
        "reconciliation_items",
        ["payment_id"],
        unique=False,
    )
    op.create_index(
        "ix_reconciliation_items_run_kind", "reconciliation_items", ["run_id", "kind"], unique=False
    )
    op.create_index(
        "ix_payment_intents_accepted_at", "payment_intents", ["accepted_at"], unique=False
    )
    op.create_index(
        "ix_payment_intents_merchant_accepted",
        "payment_intents",
        ["merchant_id", "accepted_at"],
        unique=False,
    )
    op.create_index(
        "ix_payment_intents_receipt",
        "payment_intents",
        ["receipt"],
        unique=False,
        postgresql_where=sa.text("receipt IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_payment_intents_receipt",
        table_name="payment_intents",
        postgresql_where=sa.text("receipt IS NOT NULL"),
    )
    op.drop_index("ix_payment_intents_merchant_accepted", table_name="payment_intents")
    op.drop_index("ix_payment_intents_accepted_at", table_name="payment_intents")
    op.drop_index("ix_reconciliation_items_run_kind", table_name="reconciliation_items")
    op.drop_index(op.f("ix_reconciliation_items_payment_id"), table_name="reconciliation_items")
    op.drop_table("reconciliation_items")
    op.drop_index("uq_reconciliation_runs_window", table_name="reconciliation_runs")
    op.drop_table("reconciliation_runs")
