"""``malipo refund`` and ``malipo payout``: what operators do with money out."""

from __future__ import annotations

import json
import uuid

import click
from sqlalchemy import select

from shared.commands.base import cli_database, cli_settings
from shared.db.models import Transfer
from shared.domain.errors import MalipoError
from shared.domain.states import TransferStatus
from shared.transfers import complete_manual_refund, transfer_view


@click.group("refund")
def refund() -> None:
    """Refunds: list them, and complete those a gateway cannot refund by itself."""


@refund.command("list")
@click.option(
    "--status",
    type=click.Choice([s.value for s in TransferStatus]),
    default=TransferStatus.REQUIRES_ACTION.value,
    show_default=True,
)
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
def refund_list(status: str, limit: int) -> None:
    """Refunds in one state, oldest first (one JSON object per line)."""
    with cli_database(cli_settings()) as database, database.transaction() as session:
        rows = session.scalars(
            select(Transfer)
            .where(Transfer.kind == "refund", Transfer.status == status)
            .order_by(Transfer.created_at)
            .limit(limit)
        )
        for row in rows:
            click.echo(json.dumps(transfer_view(row)))


@refund.command("complete")
@click.argument("refund_id", type=click.UUID)
@click.option("--evidence", required=True, help="how the money went back (reference, channel)")
@click.option(
    "--operator",
    envvar="USER",
    required=True,
    help="who records it (default: $USER); kept in the audit log",
)
@click.option("--not-paid", is_flag=True, help="the money could not be paid back: the refund fails")
def refund_complete(refund_id: uuid.UUID, evidence: str, operator: str, not_paid: bool) -> None:
    """Record how a ``requires_action`` refund was paid back (settles its hold)."""
    settings = cli_settings()
    try:
        with cli_database(settings) as database, database.transaction() as session:
            transfer, _ = complete_manual_refund(
                session, refund_id, evidence, operator, paid=not not_paid
            )
            shown = transfer_view(transfer)
    except MalipoError as exc:
        raise click.ClickException(f"{exc.code}: {exc.detail}") from None
    # The merchant's webhook goes out through the outbox relay.
    click.echo(json.dumps(shown))
