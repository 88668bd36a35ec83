"""``malipo template``: the wording of customer notices, per merchant or for the platform.

Without ``--merchant`` a command acts on the platform's wording (what every
merchant without its own uses); ``reset`` removes a stored template, so the next
scope applies again (merchant → platform → built-in). Bodies and subjects may
use only the placeholders ``malipo template list`` prints.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import click
from sqlalchemy.orm import Session

from shared.commands.base import cli_database, cli_settings
from shared.db.models import Merchant
from shared.notify.templates import (
    CHANNELS,
    EVENTS,
    PLACEHOLDERS,
    NoticeTemplate,
    TemplateInvalid,
    list_templates,
    reset_template,
    set_template,
    validate_template,
)

_merchant_option = click.option(
    "--merchant",
    "merchant_id",
    type=click.UUID,
    default=None,
    help="a merchant's own wording (default: the platform's)",
)
_scope_options = [
    click.option("--channel", type=click.Choice(CHANNELS), required=True),
    click.option("--event", type=click.Choice(EVENTS), required=True),
    _merchant_option,
]


F = TypeVar("F", bound=Callable[..., Any])


def _scoped(command: F) -> F:
    """The ``--channel``, ``--event`` and ``--merchant`` options of ``set`` and ``reset``."""
    for option in reversed(_scope_options):
        command = option(command)
    return command


@click.group("template")
def template() -> None:
    """Wording of the SMS and e-mails customers get when a payment does not complete."""


@template.command("list")
@_merchant_option
def template_list(merchant_id: uuid.UUID | None) -> None:
    """The wording in force for each channel and event, with where it comes from, as JSON."""
    settings = cli_settings()
    with cli_database(settings) as database, database.transaction() as session:
        _require_merchant(session, merchant_id)
        rows = [template_view(row) for row in list_templates(session, merchant_id)]
    click.echo(json.dumps({"placeholders": PLACEHOLDERS, "templates": rows}, indent=2))


@template.command("set")
@_scoped
@click.option("--subject", default=None, help="e-mail subject (default: the built-in one)")
@click.option("--body", required=True, help="the text, with $placeholders")
def template_set(
    channel: str, event: str, merchant_id: uuid.UUID | None, subject: str | None, body: str
) -> None:
    """Store the wording for one channel and event; unknown placeholders are refused."""
    try:
        validate_template(channel, event, body=body, subject=subject)
    except TemplateInvalid as exc:
        raise click.UsageError(str(exc)) from None
    settings = cli_settings()
    try:
        with cli_database(settings) as database, database.transaction() as session:
            _require_merchant(session, merchant_id)
            stored = set_template(session, merchant_id, channel, event, body=body, subject=subject)
    except TemplateInvalid as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(json.dumps(template_view(stored), indent=2))


@template.command("reset")
@_scoped
def template_reset(channel: str, event: str, merchant_id: uuid.UUID | None) -> None:
    """Remove the stored wording for one channel and event (the next scope applies)."""
    settings = cli_settings()
    with cli_database(settings) as database, database.transaction() as session:
        _require_merchant(session, merchant_id)
        removed = reset_template(session, merchant_id, channel, event)
    scope = f"merchant {merchant_id}" if merchant_id else "the platform"
    if not removed:
        click.echo(f"no {channel} {event} template stored for {scope}")
        return
    click.echo(f"removed the {channel} {event} template of {scope}")


def template_view(row: NoticeTemplate) -> dict[str, Any]:
    return {
        "channel": row.channel,
        "event": row.event,
        "source": row.source,
        "subject": row.subject,
        "body": row.body,
    }


def _require_merchant(session: Session, merchant_id: uuid.UUID | None) -> None:
    if merchant_id is not None and session.get(Merchant, merchant_id) is None:
        raise click.ClickException(f"no merchant {merchant_id}")
