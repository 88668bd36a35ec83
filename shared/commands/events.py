"""``malipo events replay``: publish history from the outbox on ``malipo.events`` again.

For a service that lost its queue or binds a new one: every event of the window (and
merchant, and type) is published again in id order, with the same ids and bodies and
the header ``replay: true``. Subscribers dedupe on the event id, so replaying more
than was lost is harmless. The replay is in the audit log (``events.replayed``) with who asked.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import click
from sqlalchemy import select

from shared import audit
from shared.bus import OUTBOX_COLUMNS, EventStream, outbound
from shared.commands.base import cli_database, cli_settings
from shared.db.models import WebhookEvent

REPLAY_BATCH = 500


@click.group("events")
def events() -> None:
    """The malipo.events stream services subscribe to."""


def _moment(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date or time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@events.command("replay")
@click.option("--since", required=True, help="first moment (ISO 8601; UTC when no offset)")
@click.option("--until", "until", default=None, help="end of the window (default: now)")
@click.option("--merchant", type=click.UUID, default=None, help="only this merchant's events")
@click.option("--type", "event_type", default=None, help="only this type, e.g. payment.succeeded")
def replay(
    since: str,
    until: str | None,
    merchant: uuid.UUID | None,
    event_type: str | None,
) -> None:
    """Publish the window's events again, oldest first; prints how many."""
    start, end = _moment(since), _moment(until) if until else datetime.now(UTC)
    if end <= start:
        raise click.BadParameter("--until must be after --since")
    settings = cli_settings()
    stream = EventStream(settings.broker_url.get_secret_value())
    query = select(*OUTBOX_COLUMNS).where(
        WebhookEvent.created_at >= start, WebhookEvent.created_at < end
    )
    if merchant is not None:
        query = query.where(WebhookEvent.merchant_id == merchant)
    if event_type is not None:
        query = query.where(WebhookEvent.event_type == event_type)
    published, after = 0, 0
    try:
        with cli_database(settings) as database:
            while True:
                with database.transaction() as session:
                    rows = session.execute(
                        query.where(WebhookEvent.id > after)
                        .order_by(WebhookEvent.id)
                        .limit(REPLAY_BATCH)
                    ).all()
                if not rows:
                    break
                published += stream.publish(outbound(rows), replay=True)
                after = rows[-1].id
            with database.transaction() as session:
                audit.record(
                    session,
                    actor=audit.cli_actor(),
                    action="events.replayed",
                    subject_type="merchant" if merchant else "platform",
                    subject_id=merchant or "all",
                    detail={
                        "since": start.isoformat(),
                        "until": end.isoformat(),
                        "type": event_type,
                        "published": published,
                    },
                )
    finally:
        stream.close()
    click.echo(f"replayed {published} events on malipo.events")
