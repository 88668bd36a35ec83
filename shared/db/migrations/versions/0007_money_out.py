"""Money out: refunds and payouts (transfers), holds on balances, ledger debits

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 01:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRANSFER_STATES = (
    "awaiting_approval",
    "failed",
    "pending",
    "rejected",
    "requires_action",
    "sending",
    "submitted",
    "succeeded",
    "unknown",
)


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in sorted(values))})"


def upgrade() -> None:
    op.add_column(
        "merchants",
        sa.Column("payouts", postgresql.JSONB(), server_default=sa.text("'{}'"), nullable=False),
    )
    op.add_column(
        "balances",
        sa.Column("held_minor", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )
    op.create_check_constraint("held_not_negative", "balances", "held_minor >= 0")
    for column in ("refund_reserved_minor", "refunded_minor"):
        op.add_column(
            "payment_intents",
            sa.Column(column, sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        )
    op.create_check_constraint(
        "refunds_within_amount",
        "payment_intents",
        "refund_reserved_minor >= 0 AND refund_reserved_minor <= amount_minor",
    )
    op.create_check_constraint(
        "refunded_within_reserved",
        "payment_intents",
        "refunded_minor >= 0 AND refunded_minor <= refund_reserved_minor",
    )
    op.create_table(
        "transfers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), sa.ForeignKey("merchants.id"), nullable=False),
        sa.Column("payment_id", sa.Uuid(), sa.ForeignKey("payment_intents.id"), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("request_ref", sa.String(length=32), nullable=False),
        sa.Column("gateway", sa.String(length=32), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("phone", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("gateway_ref", sa.String(length=100), nullable=True),
        sa.Column("receipt", sa.String(length=100), nullable=True),
        sa.Column("failure_code", sa.String(length=40), nullable=True),
        sa.Column("failure_message", sa.String(length=300), nullable=True),
        sa.Column("requested_by", sa.Uuid(), nullable=True),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("evidence", sa.String(length=500), nullable=True),
        sa.Column("completed_by", sa.String(length=100), nullable=True),
        sa.Column("sends", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("checks", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers")),
        sa.UniqueConstraint(
            "merchant_id",
            "kind",
            "idempotency_key",
            name=op.f("uq_transfers_merchant_id_kind_idempotency_key"),
        ),
        sa.UniqueConstraint("request_ref", name=op.f("uq_transfers_request_ref")),
        sa.UniqueConstraint(
            "gateway", "gateway_ref", name=op.f("uq_transfers_gateway_gateway_ref")
        ),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_transfers_amount_positive")),
        sa.CheckConstraint("kind IN ('payout', 'refund')", name=op.f("ck_transfers_kind_known")),
        sa.CheckConstraint(
            "(kind = 'refund') = (payment_id IS NOT NULL)",
            name=op.f("ck_transfers_refund_has_payment"),
        ),
        sa.CheckConstraint(_in("status", TRANSFER_STATES), name=op.f("ck_transfers_status_known")),
    )
    op.create_index("ix_transfers_payment_id", "transfers", ["payment_id"])
    op.create_index(
        "ix_transfers_due",
        "transfers",
        ["next_check_at"],
        postgresql_where=sa.text("status IN ('pending', 'sending', 'submitted', 'unknown')"),
    )
    op.create_index("ix_transfers_merchant_created", "transfers", ["merchant_id", "created_at"])
    # Ledger debits for refunds and payouts: one per transfer; a collection stays one per intent.
    op.alter_column("ledger_entries", "intent_id", nullable=True)
    op.add_column(
        "ledger_entries",
        sa.Column("transfer_id", sa.Uuid(), sa.ForeignKey("transfers.id"), nullable=True),
    )
    op.create_unique_constraint(
        op.f("uq_ledger_entries_transfer_id"), "ledger_entries", ["transfer_id"]
    )
    op.drop_constraint(op.f("ck_ledger_entries_kind_known"), "ledger_entries", type_="check")
    op.create_check_constraint(
        "kind_known", "ledger_entries", "kind IN ('collection', 'fee', 'payout', 'refund')"
    )
    op.create_check_constraint(
        "one_subject",
        "ledger_entries",
        "(intent_id IS NULL) <> (transfer_id IS NULL)"
        " AND (transfer_id IS NULL OR amount_minor < 0)",
    )
    op.add_column("webhook_events", sa.Column("transfer_id", sa.Uuid(), nullable=True))
    # A payout's recipient may be told by SMS: a notice is a payment's or a transfer's.
    op.alter_column("customer_notifications", "payment_id", nullable=True)
    op.add_column(
        "customer_notifications",
        sa.Column("transfer_id", sa.Uuid(), sa.ForeignKey("transfers.id"), nullable=True),
    )
    op.create_unique_constraint(
        op.f("uq_customer_notifications_transfer_id_channel_event"),
        "customer_notifications",
        ["transfer_id", "channel", "event"],
    )
    op.create_check_constraint(
        "one_subject",
        "customer_notifications",
        "(payment_id IS NULL) <> (transfer_id IS NULL)",
    )


def downgrade() -> None:
    # Refunds and payouts moved money the earlier schema cannot record: refuse to lose them.
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM transfers) THEN RAISE EXCEPTION "
        "'refunds or payouts exist: downgrading below 0007 would lose them'; END IF; END $$"
    )
    op.drop_constraint(
        op.f("ck_customer_notifications_one_subject"), "customer_notifications", type_="check"
    )
    op.drop_constraint(
        op.f("uq_customer_notifications_transfer_id_channel_event"),
        "customer_notifications",
        type_="unique",
    )
    op.drop_column("customer_notifications", "transfer_id")
    op.alter_column("customer_notifications", "payment_id", nullable=False)
    op.drop_column("webhook_events", "transfer_id")
    op.drop_constraint(op.f("ck_ledger_entries_one_subject"), "ledger_entries", type_="check")
    op.drop_constraint(op.f("ck_ledger_entries_kind_known"), "ledger_entries", type_="check")
    op.create_check_constraint("kind_known", "ledger_entries", "kind IN ('collection', 'fee')")
    op.drop_constraint(op.f("uq_ledger_entries_transfer_id"), "ledger_entries", type_="unique")
    op.drop_column("ledger_entries", "transfer_id")
    op.alter_column("ledger_entries", "intent_id", nullable=False)
    op.drop_table("transfers")
    op.drop_constraint(
        op.f("ck_payment_intents_refunded_within_reserved"), "payment_intents", type_="check"
    )
    op.drop_constraint(
        op.f("ck_payment_intents_refunds_within_amount"), "payment_intents", type_="check"
    )
    for column in ("refund_reserved_minor", "refunded_minor"):
        op.drop_column("payment_intents", column)
    op.drop_constraint(op.f("ck_balances_held_not_negative"), "balances", type_="check")
    op.drop_column("balances", "held_minor")
    op.drop_column("merchants", "payouts")
