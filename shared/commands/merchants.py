"""``malipo merchant``: merchants, their API keys and their gateway credentials."""

from __future__ import annotations

import json
from typing import Any

import click

from shared.commands.base import cli_cipher, cli_database, cli_settings
from shared.merchants import (
    CredentialsRefused,
    create_merchant,
    issue_api_key,
    store_gateway_credentials,
)


@click.group("merchant")
def merchant() -> None:
    """Merchants and their credentials."""


@merchant.command("create")
@click.argument("name")
@click.option("--daraja-consumer-key", envvar="MALIPO_DARAJA_CONSUMER_KEY", default=None)
@click.option("--daraja-consumer-secret", envvar="MALIPO_DARAJA_CONSUMER_SECRET", default=None)
@click.option("--daraja-shortcode", envvar="MALIPO_DARAJA_SHORTCODE", default=None)
@click.option("--daraja-passkey", envvar="MALIPO_DARAJA_PASSKEY", default=None)
@click.option(
    "--daraja-mode",
    envvar="MALIPO_DARAJA_MODE",
    type=click.Choice(["paybill", "till"]),
    default="paybill",
)
@click.option(
    "--daraja-till", envvar="MALIPO_DARAJA_TILL", default=None, help="till number (till mode)"
)
def merchant_create(
    name: str,
    daraja_consumer_key: str | None,
    daraja_consumer_secret: str | None,
    daraja_shortcode: str | None,
    daraja_passkey: str | None,
    daraja_mode: str,
    daraja_till: str | None,
) -> None:
    """Create a merchant; print its id, API key (shown once) and callback URL as JSON."""
    settings = cli_settings()
    daraja = {
        "consumer_key": daraja_consumer_key,
        "consumer_secret": daraja_consumer_secret,
        "shortcode": daraja_shortcode,
        "passkey": daraja_passkey,
    }
    given = {k: v for k, v in daraja.items() if v}
    if given and len(given) != len(daraja):
        missing = sorted(k for k, v in daraja.items() if not v)
        raise click.UsageError("Daraja credentials need all of: " + ", ".join(missing))
    cipher = cli_cipher(settings)
    output: dict[str, Any] = {}
    try:
        with cli_database(settings) as database, database.transaction() as session:
            row = create_merchant(session, name)
            output = {"id": str(row.id), "name": name}
            output["api_key"] = issue_api_key(
                session, settings.secret_key.get_secret_value().encode(), row.id
            )
            if given:
                stored = {**given, "mode": daraja_mode, "party_b": daraja_till or daraja_shortcode}
                secret = store_gateway_credentials(
                    session,
                    cipher,
                    row.id,
                    "mpesa",
                    stored,
                    production=settings.env == "production",
                )
                output["callback_url"] = f"{settings.public_base_url}/callbacks/mpesa/{secret}"
    except CredentialsRefused as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(output, indent=2))
