"""Outbox events published on the malipo.events exchange: when each one was

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 11:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "webhook_events", sa.Column("streamed_at", sa.DateTime(timezone=True), nullable=True)
    )
    # Events from before the exchange existed had no subscribers: they count as streamed
    # (``malipo events replay`` publishes history on request).
    op.execute("UPDATE webhook_events SET streamed_at = created_at")
    op.create_index(
        "ix_webhook_events_unstreamed",
        "webhook_events",
        ["id"],
        postgresql_where=sa.text("streamed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_events_unstreamed", table_name="webhook_events")
    op.drop_column("webhook_events", "streamed_at")
