"""``malipo refund`` and ``malipo payout``: what operators do with money out.

``list`` shows the transfers waiting for someone (``requires_action`` refunds, ``unknown``
transfers the gateway left undecided, ``awaiting_approval`` payouts); ``complete``
records how one ended, settling or releasing its hold, in the audit log with who.
"""

from __future__ import annotations

import json
import uuid

import click
from sqlalchemy import select

from shared.commands.base import cli_database, cli_settings
from shared.db.models import Transfer
from shared.domain.errors import MalipoError
from shared.domain.states import TransferStatus
from shared.gateways.transfers import TransferKind
from shared.transfers import complete_by_operator, transfer_view


def _group(kind: TransferKind, default_status: TransferStatus, help_text: str) -> click.Group:
    group = click.Group(kind.value, help=help_text)

    @group.command("list")
    @click.option(
        "--status",
        type=click.Choice([s.value for s in TransferStatus]),
        default=default_status.value,
        show_default=True,
    )
    @click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
    def list_command(status: str, limit: int) -> None:
        """Transfers in one state, oldest first (one JSON object per line)."""
        with cli_database(cli_settings()) as database, database.transaction() as session:
            rows = session.scalars(
                select(Transfer)
                .where(Transfer.kind == kind.value, Transfer.status == status)
                .order_by(Transfer.created_at)
                .limit(limit)
            )
            for row in rows:
                click.echo(json.dumps(transfer_view(row)))

    @group.command("complete")
    @click.argument("transfer_id", type=click.UUID)
    @click.option("--evidence", required=True, help="how the money moved (reference, channel)")
    @click.option(
        "--operator",
        envvar="USER",
        required=True,
        help="who records it (default: $USER); kept in the audit log",
    )
    @click.option("--not-paid", is_flag=True, help="the money did not move: it fails, released")
    def complete_command(
        transfer_id: uuid.UUID, evidence: str, operator: str, not_paid: bool
    ) -> None:
        """Record how a requires_action or unknown transfer ended (settles or releases it)."""
        try:
            with cli_database(cli_settings()) as database, database.transaction() as session:
                transfer, _ = complete_by_operator(
                    session, transfer_id, evidence, operator, paid=not not_paid, kind=kind
                )
                shown = transfer_view(transfer)
        except MalipoError as exc:
            raise click.ClickException(f"{exc.code}: {exc.detail}") from None
        # The merchant's webhook goes out through the outbox relay.
        click.echo(json.dumps(shown))

    return group


refund = _group(
    TransferKind.REFUND,
    TransferStatus.REQUIRES_ACTION,
    "Refunds: list them, and complete those a gateway cannot refund (or left undecided).",
)
payout = _group(
    TransferKind.PAYOUT,
    TransferStatus.UNKNOWN,
    "Payouts: list them, and complete those a gateway left undecided.",
)
