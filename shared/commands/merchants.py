"""``malipo merchant``: merchants, their API keys and their gateway credentials."""

from __future__ import annotations

import json
import uuid
from typing import Any

import click

from shared.commands.base import cli_cipher, cli_database, cli_settings
from shared.db.models import ApiKey, Merchant
from shared.gateways.daraja.security import SAFARICOM_CALLBACK_IPS
from shared.merchants import (
    DEFAULT_SCOPES,
    OPERATOR_SCOPES,
    SCOPES,
    CredentialsRefused,
    create_merchant,
    issue_api_key,
    list_api_keys,
    revoke_api_key,
    set_callback_policy,
    set_ip_allowlist,
    store_gateway_credentials,
)
from shared.settings import parse_networks


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
                output["callback_url"] = settings.merchant_callback_url("mpesa", secret)
    except CredentialsRefused as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(output, indent=2))


def _pepper() -> tuple[Any, bytes]:
    settings = cli_settings()
    return settings, settings.secret_key.get_secret_value().encode()


@merchant.group("key")
def merchant_key() -> None:
    """A merchant's API keys (several per merchant, each with scopes)."""


@merchant_key.command("create")
@click.argument("merchant_id", type=click.UUID)
@click.option("--scope", "scopes", multiple=True, type=click.Choice(SCOPES), help="repeatable")
@click.option("--label", default=None, help="what the key is for")
def merchant_key_create(merchant_id: uuid.UUID, scopes: tuple[str, ...], label: str | None) -> None:
    """Issue a key; prints it once as JSON (default scopes: payments:write, payments:read)."""
    settings, pepper = _pepper()
    chosen = scopes or DEFAULT_SCOPES
    with cli_database(settings) as database, database.transaction() as session:
        if session.get(Merchant, merchant_id) is None:
            raise click.ClickException(f"no merchant {merchant_id}")
        token = issue_api_key(session, pepper, merchant_id, tuple(chosen), label)
    click.echo(
        json.dumps({"merchant_id": str(merchant_id), "api_key": token, "scopes": list(chosen)})
    )


@merchant_key.command("revoke")
@click.argument("prefix")
def merchant_key_revoke(prefix: str) -> None:
    """Revoke a key by its prefix (``mlp_<12 hex>``); the next request with it is refused."""
    settings = cli_settings()
    with cli_database(settings) as database, database.transaction() as session:
        if not revoke_api_key(session, prefix[:16]):
            raise click.ClickException(f"no key with prefix {prefix[:16]}")
    click.echo(f"revoked {prefix[:16]}")


@merchant_key.command("list")
@click.argument("merchant_id", type=click.UUID)
def merchant_key_list(merchant_id: uuid.UUID) -> None:
    """The merchant's keys: prefix, scopes, label, created, revoked (never the secret)."""
    settings = cli_settings()
    with cli_database(settings) as database, database.transaction() as session:
        rows = [key_view(row) for row in list_api_keys(session, merchant_id)]
    click.echo(json.dumps(rows, indent=2))


def key_view(row: ApiKey) -> dict[str, Any]:
    return {
        "prefix": row.prefix,
        "scopes": row.scopes,
        "label": row.label,
        "created_at": row.created_at.isoformat(),
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }


@merchant.command("callbacks")
@click.argument("merchant_id", type=click.UUID)
@click.option("--gateway", default="mpesa", show_default=True)
@click.option(
    "--ip-allowlist",
    default=None,
    help="'safaricom' (the published list), 'off', or comma-separated addresses/CIDRs",
)
@click.option("--require-signature/--no-require-signature", default=None)
@click.option("--confirm-before-credit/--no-confirm-before-credit", default=None)
def merchant_callbacks(
    merchant_id: uuid.UUID,
    gateway: str,
    ip_allowlist: str | None,
    require_signature: bool | None,
    confirm_before_credit: bool | None,
) -> None:
    """How the merchant's callbacks are trusted, beyond the path secret."""
    settings = cli_settings()
    try:
        with cli_database(settings) as database, database.transaction() as session:
            row = set_callback_policy(
                session,
                merchant_id,
                gateway,
                require_signature=require_signature,
                confirm_before_credit=confirm_before_credit,
            )
            if ip_allowlist is not None:
                row = set_ip_allowlist(session, merchant_id, gateway, parse_allowlist(ip_allowlist))
            view = {
                "merchant_id": str(merchant_id),
                "gateway": gateway,
                "ip_allowlist": row.ip_allowlist,
                "require_signature": row.require_signature,
                "confirm_before_credit": row.confirm_before_credit,
                "enabled": row.enabled,
            }
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(view, indent=2))


def parse_allowlist(raw: str) -> list[str] | None:
    if raw == "off":
        return None
    if raw == "safaricom":
        return list(SAFARICOM_CALLBACK_IPS)
    try:
        return [str(network) for network in parse_networks(raw)]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ip-allowlist") from None


@merchant.command("gateway")
@click.argument("merchant_id", type=click.UUID)
@click.argument("gateway")
@click.option("--enable/--disable", required=True)
def merchant_gateway(merchant_id: uuid.UUID, gateway: str, enable: bool) -> None:
    """Enable or disable a gateway for a merchant (disabled: payments refused, gateway_disabled)."""
    settings = cli_settings()
    try:
        with cli_database(settings) as database, database.transaction() as session:
            set_callback_policy(session, merchant_id, gateway, enabled=enable)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{gateway} {'enabled' if enable else 'disabled'} for {merchant_id}")


@merchant.command("settings")
@click.argument("merchant_id", type=click.UUID)
@click.option(
    "--require-registered-customers/--any-customer",
    default=None,
    help="refuse payments from phones the merchant has not registered (account_missing)",
)
def merchant_settings(merchant_id: uuid.UUID, require_registered_customers: bool | None) -> None:
    """Merchant-wide settings."""
    settings = cli_settings()
    with cli_database(settings) as database, database.transaction() as session:
        row = session.get(Merchant, merchant_id)
        if row is None:
            raise click.ClickException(f"no merchant {merchant_id}")
        if require_registered_customers is not None:
            row.require_registered_customers = require_registered_customers
        view = {
            "merchant_id": str(row.id),
            "require_registered_customers": row.require_registered_customers,
        }
    click.echo(json.dumps(view, indent=2))


@click.group("operator")
def operator() -> None:
    """Platform operators (keys without a merchant, for /ops across every merchant)."""


@operator.group("key")
def operator_key() -> None:
    """Operators' API keys."""


@operator_key.command("create")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(OPERATOR_SCOPES))
@click.option("--label", default=None)
def operator_key_create(scopes: tuple[str, ...], label: str | None) -> None:
    """Issue an operator key (default: ops:read and ops:write); prints it once."""
    settings, pepper = _pepper()
    chosen = scopes or OPERATOR_SCOPES
    with cli_database(settings) as database, database.transaction() as session:
        token = issue_api_key(session, pepper, None, tuple(chosen), label)
    click.echo(json.dumps({"api_key": token, "scopes": list(chosen)}))
