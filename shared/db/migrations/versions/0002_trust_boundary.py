"""trust boundary: callback auth, customers, redemptions, rate limits, audit chain

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 07:03:23.761165
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column(
            "sealed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_chain_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    op.create_table(
        "rate_limit_windows",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start", name=op.f("pk_rate_limit_windows")),
        prefixes=["UNLOGGED"],
    )
    op.create_table(
        "customers",
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("phone", sa.String(length=16), nullable=False),
        sa.Column("kyc_required", sa.Boolean(), server_default=sa.text("false"), nullable=False),
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
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_customers_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("merchant_id", "phone", name=op.f("pk_customers")),
    )
    op.create_table(
        "redemptions",
        sa.Column("payment_id", sa.Uuid(), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.String(length=100), nullable=False),
        sa.Column("expected_amount_minor", sa.BigInteger(), nullable=False),
        sa.Column(
            "redeemed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_redemptions_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payment_intents.id"],
            name=op.f("fk_redemptions_payment_id_payment_intents"),
        ),
        sa.PrimaryKeyConstraint("payment_id", name=op.f("pk_redemptions")),
    )
    op.add_column("api_keys", sa.Column("label", sa.String(length=100), nullable=True))
    op.alter_column("api_keys", "merchant_id", existing_type=sa.UUID(), nullable=True)
    op.add_column("audit_log", sa.Column("seq", sa.BigInteger(), nullable=True))
    op.add_column("audit_log", sa.Column("prev_hash", sa.String(length=64), nullable=True))
    op.add_column("audit_log", sa.Column("hash", sa.String(length=64), nullable=True))
    op.create_unique_constraint(op.f("uq_audit_log_seq"), "audit_log", ["seq"])
    op.add_column(
        "gateway_credentials",
        sa.Column("ip_allowlist", postgresql.ARRAY(sa.String(length=64)), nullable=True),
    )
    op.add_column(
        "gateway_credentials",
        sa.Column(
            "require_signature", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
    )
    op.add_column(
        "gateway_credentials",
        sa.Column(
            "confirm_before_credit", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
    )
    op.add_column("gateway_events", sa.Column("body_sha256", sa.String(length=64), nullable=True))
    op.add_column(
        "merchants",
        sa.Column(
            "require_registered_customers",
            sa.Boolean(),
            server_default=sa.text("false"),
            nullable=False,
        ),
    )
    op.create_index(
        "ix_payment_intents_phone_created_at",
        "payment_intents",
        ["phone", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_payment_intents_phone_created_at", table_name="payment_intents")
    op.drop_column("merchants", "require_registered_customers")
    op.drop_column("gateway_events", "body_sha256")
    op.drop_column("gateway_credentials", "confirm_before_credit")
    op.drop_column("gateway_credentials", "require_signature")
    op.drop_column("gateway_credentials", "ip_allowlist")
    op.drop_constraint(op.f("uq_audit_log_seq"), "audit_log", type_="unique")
    op.drop_column("audit_log", "hash")
    op.drop_column("audit_log", "prev_hash")
    op.drop_column("audit_log", "seq")
    op.alter_column("api_keys", "merchant_id", existing_type=sa.UUID(), nullable=False)
    op.drop_column("api_keys", "label")
    op.drop_table("redemptions")
    op.drop_table("customers")
    op.drop_table("rate_limit_windows")
    op.drop_table("audit_chain_head")
