"""The ``malipo`` command.

Process commands (``ingress``, ``workers``, ``scheduler``, ``sandbox``, and later
operator tools) are contributed by their own packages through the
``malipo.commands`` entry-point group and loaded only when used, so this module
imports none of them.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import entry_points
from typing import Any

import click

from shared.crypto import CredentialCipher
from shared.db.migrate import upgrade
from shared.db.session import Database, create_database_if_missing
from shared.domain.errors import catalogue
from shared.merchants import (
    CredentialsRefused,
    create_merchant,
    issue_api_key,
    store_gateway_credentials,
)
from shared.settings import ConfigurationError, Settings, load_settings, parse_credentials_keys


class PluginGroup(click.Group):
    """A group whose extra commands come from the ``malipo.commands`` entry points."""

    def _plugins(self) -> dict[str, Any]:
        return {ep.name: ep for ep in entry_points(group="malipo.commands")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugins()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        plugin = self._plugins().get(cmd_name)
        return plugin.load() if plugin is not None else None


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(cls=PluginGroup)
def main() -> None:
    """malipo: mobile-money payments pipeline."""


@main.group()
def db() -> None:
    """Database set-up."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create the database if it is missing, then run every migration."""
    settings = settings_or_exit()
    url = settings.database_url.get_secret_value()
    if create_database_if_missing(url):
        click.echo("created the database", err=True)
    upgrade(url)
    click.echo("database is at the latest migration", err=True)


@main.group()
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
    settings = settings_or_exit()
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
    cipher = CredentialCipher(parse_credentials_keys(settings.credentials_keys.get_secret_value()))
    database = Database(settings.database_url.get_secret_value(), pool_size=1)
    output: dict[str, Any] = {}
    try:
        with database.transaction() as session:
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
    finally:
        database.dispose()
    click.echo(json.dumps(output, indent=2))


@main.command("errors")
@click.option("--markdown", is_flag=True, help="as the README's table")
def errors_command(markdown: bool) -> None:
    """Print the error catalogue (code, HTTP status, meaning)."""
    for entry in catalogue():
        if markdown:
            click.echo(f"| `{entry.code}` | {entry.http_status} | {entry.message} |")
        else:
            click.echo(f"{entry.code:28} {entry.http_status}  {entry.message}")


@main.command("dev")
def dev() -> None:
    """Run the whole stack locally (what `make run` does after set-up)."""
    from shared.devstack import run_stack  # the supervisor is only needed here

    sys.exit(run_stack(settings_or_exit()))


if __name__ == "__main__":
    main()
