"""``malipo webhook``: a merchant's webhook endpoint and its signing secrets.

Secrets are printed once, when made (``set`` of a new endpoint, ``rotate-secret``),
and never again; ``show`` tells only how many sign. Every change is audited.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from sqlalchemy.orm import Session

from shared import audit
from shared.commands.base import cli_cipher, cli_database, cli_settings
from shared.crypto import CredentialCipher
from shared.db.models import Merchant, WebhookEndpoint
from shared.egress import redact_url
from shared.settings import Settings
from shared.webhooks import (
    EndpointRefused,
    drop_old_secrets,
    endpoint_view,
    rotate_secret,
    set_endpoint,
    set_endpoint_enabled,
    webhook_endpoint,
)


@click.group("webhook")
def webhook() -> None:
    """Merchants' webhook endpoints (Standard Webhooks, signed with whsec_ secrets)."""


@contextmanager
def _unit_of_work() -> Iterator[tuple[Session, CredentialCipher, Settings]]:
    """A transaction, the cipher, and the settings; errors become CLI errors."""
    settings = cli_settings()
    cipher = cli_cipher(settings)
    try:
        with cli_database(settings) as database, database.transaction() as session:
            yield session, cipher, settings
    except (LookupError, EndpointRefused) as exc:
        raise click.ClickException(str(exc)) from None


def _audit(session: Session, action: str, merchant_id: uuid.UUID, **detail: Any) -> None:
    audit.record(
        session,
        actor="cli",
        action=f"webhook_endpoint.{action}",
        subject_type="webhook_endpoint",
        subject_id=merchant_id,
        detail=detail,
    )


def _echo(value: dict[str, Any]) -> None:
    click.echo(json.dumps(value, indent=2))


@webhook.command("set")
@click.argument("merchant_id", type=click.UUID)
@click.argument("url")
def webhook_set(merchant_id: uuid.UUID, url: str) -> None:
    """Create the endpoint (prints its new secret once) or change its URL (secrets kept).

    Refused when the host resolves to an address that is not public (loopback,
    private, link-local...), unless ``MALIPO_WEBHOOK_ALLOW_HOSTS`` names it (sandbox).
    The audit row keeps the URL with its query values masked (they may be tokens).
    """
    with _unit_of_work() as (session, cipher, settings):
        if session.get(Merchant, merchant_id) is None:
            raise LookupError(f"no merchant {merchant_id}")
        secret = set_endpoint(
            session,
            cipher,
            merchant_id,
            url,
            production=settings.env == "production",
            allowed_hosts=settings.webhook_allowed_hosts(),
        )
        _audit(session, "set", merchant_id, url=redact_url(url), new_secret=secret is not None)
        view = endpoint_view(cipher, _endpoint(session, merchant_id))
    _echo({**view, "secret": secret} if secret else view)


@webhook.command("rotate-secret")
@click.argument("merchant_id", type=click.UUID)
def webhook_rotate_secret(merchant_id: uuid.UUID) -> None:
    """Add a new secret in front of the current one (both sign); prints the new one once."""
    with _unit_of_work() as (session, cipher, _):
        secret = rotate_secret(session, cipher, merchant_id)
        _audit(session, "secret_rotated", merchant_id)
    _echo({"merchant_id": str(merchant_id), "secret": secret})


@webhook.command("drop-old-secrets")
@click.argument("merchant_id", type=click.UUID)
def webhook_drop_old_secrets(merchant_id: uuid.UUID) -> None:
    """End a rotation: only the newest secret signs from now on."""
    with _unit_of_work() as (session, cipher, _):
        dropped = drop_old_secrets(session, cipher, merchant_id)
        _audit(session, "old_secrets_dropped", merchant_id, dropped=dropped)
    _echo({"merchant_id": str(merchant_id), "dropped": dropped})


def _switch(merchant_id: uuid.UUID, enabled: bool, reason: str | None) -> None:
    with _unit_of_work() as (session, cipher, _):
        row = set_endpoint_enabled(session, merchant_id, enabled, reason)
        _audit(session, "enabled" if enabled else "disabled", merchant_id, reason=reason)
        view = endpoint_view(cipher, row)
    _echo(view)


@webhook.command("enable")
@click.argument("merchant_id", type=click.UUID)
def webhook_enable(merchant_id: uuid.UUID) -> None:
    """Deliver again (held events wait for a replay: POST /ops/webhooks/replay)."""
    _switch(merchant_id, True, None)


@webhook.command("disable")
@click.argument("merchant_id", type=click.UUID)
@click.option("--reason", default=None, help="why (shown with the endpoint)")
def webhook_disable(merchant_id: uuid.UUID, reason: str | None) -> None:
    """Stop delivering; new events are held."""
    _switch(merchant_id, False, reason)


@webhook.command("show")
@click.argument("merchant_id", type=click.UUID)
def webhook_show(merchant_id: uuid.UUID) -> None:
    """The endpoint: URL, state, how many secrets sign (never the secrets)."""
    with _unit_of_work() as (session, cipher, _):
        view = endpoint_view(cipher, _endpoint(session, merchant_id))
    _echo(view)


def _endpoint(session: Session, merchant_id: uuid.UUID) -> WebhookEndpoint:
    row = webhook_endpoint(session, merchant_id)
    if row is None:
        raise LookupError(f"merchant {merchant_id} has no webhook endpoint")
    return row
