"""The command bus: API keys' command-signing secrets and refused-command counts

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 14:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("signing_key_id", sa.String(32), nullable=True))
    op.add_column("api_keys", sa.Column("signing_ciphertext", sa.LargeBinary(), nullable=True))
    op.create_table(
        "refused_commands",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("key_prefix", sa.String(32), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("count > 0", name=op.f("ck_refused_commands_count_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refused_commands")),
        sa.UniqueConstraint(
            "minute",
            "reason",
            "key_prefix",
            name=op.f("uq_refused_commands_minute_reason_key_prefix"),
        ),
    )


def downgrade() -> None:
    op.drop_table("refused_commands")
    op.drop_column("api_keys", "signing_ciphertext")
    op.drop_column("api_keys", "signing_key_id")
