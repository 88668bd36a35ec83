"""Trust boundary II: accepted payment commands; event keys per merchant; change notices

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 02:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NO_MERCHANT = "'00000000-0000-0000-0000-000000000000'::uuid"


def upgrade() -> None:
    # What the ingress accepted, by payment id: a replayed key gets the first answer even
    # before a worker stored the payment, and a limit counts each payment once.
    op.create_table(
        "accepted_commands",
        sa.Column("payment_id", sa.Uuid(), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), sa.ForeignKey("merchants.id"), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("gateway", sa.String(length=32), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("payment_id", name=op.f("pk_accepted_commands")),
    )
    # One merchant's callback can no longer make another's real one look like a duplicate.
    op.drop_constraint(
        op.f("uq_gateway_events_gateway_event_key"), "gateway_events", type_="unique"
    )
    op.create_index(
        "uq_gateway_events_merchant_event_key",
        "gateway_events",
        ["gateway", sa.text(f"coalesce(merchant_id, {NO_MERCHANT})"), "event_key"],
        unique=True,
    )

    # A waiting GET /v1/payments/{id}?wait= is woken by this, not by polling the table.
    op.execute(
        """
        CREATE FUNCTION malipo_notify_payment_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
          IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status
             OR NEW.next_action IS DISTINCT FROM OLD.next_action THEN
            PERFORM pg_notify('malipo_payment_changes', NEW.id::text);
          END IF;
          RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER payment_intents_notify_change AFTER INSERT OR UPDATE ON payment_intents"
        " FOR EACH ROW EXECUTE FUNCTION malipo_notify_payment_change()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER payment_intents_notify_change ON payment_intents")
    op.execute("DROP FUNCTION malipo_notify_payment_change()")
    op.drop_index("uq_gateway_events_merchant_event_key", table_name="gateway_events")
    op.create_unique_constraint(
        op.f("uq_gateway_events_gateway_event_key"), "gateway_events", ["gateway", "event_key"]
    )
    op.drop_table("accepted_commands")
