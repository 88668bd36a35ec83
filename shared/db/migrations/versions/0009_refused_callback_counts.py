"""Refused callbacks kept as counts per minute, source and reason, not one row each

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 05:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NO_MERCHANT = "'00000000-0000-0000-0000-000000000000'::uuid"


def upgrade() -> None:
    op.create_table(
        "refused_callbacks",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("gateway", sa.String(length=32), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sample_sha256", sa.String(length=64), nullable=True),
        sa.CheckConstraint("count > 0", name=op.f("ck_refused_callbacks_count_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refused_callbacks")),
    )
    # One row per (minute, gateway, merchant, source, reason): counts are added, never rows.
    op.create_index(
        "uq_refused_callbacks_bucket",
        "refused_callbacks",
        [
            "minute",
            "gateway",
            sa.text(f"coalesce(merchant_id, {NO_MERCHANT})"),
            "source",
            "reason",
        ],
        unique=True,
    )
    # Each ingress process asks which credentials changed since its last look, by
    # updated_at: kept true for every UPDATE, by the ORM or by hand.
    op.execute(
        "CREATE FUNCTION gateway_credentials_touch() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$"
    )
    op.execute(
        "CREATE TRIGGER gateway_credentials_touch BEFORE UPDATE ON gateway_credentials"
        " FOR EACH ROW EXECUTE FUNCTION gateway_credentials_touch()"
    )
    op.create_index(
        "ix_refused_callbacks_merchant_minute", "refused_callbacks", ["merchant_id", "minute"]
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER gateway_credentials_touch ON gateway_credentials")
    op.execute("DROP FUNCTION gateway_credentials_touch()")
    op.drop_index("ix_refused_callbacks_merchant_minute", table_name="refused_callbacks")
    op.drop_index("uq_refused_callbacks_bucket", table_name="refused_callbacks")
    op.drop_table("refused_callbacks")
