"""``malipo merchant``: merchants, their API keys and their gateway credentials.

Every change is audited (in the transaction that makes it) as ``operator:<login name>``
(``cli`` when the process has none); see ``shared.merchants``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlsplit

import click

from shared import audit
from shared.commands.base import cli_cipher, cli_database, cli_settings
from shared.db.models import ApiKey, Merchant
from shared.domain.errors import MalipoError
from shared.gateways import catalogue
from shared.gateways.description import GatewayDescription
from shared.merchants import (
    DEFAULT_SCOPES,
    OPERATOR_SCOPES,
    SCOPES,
    CredentialsRefused,
    create_merchant,
    gateway_credential,
    issue_api_key,
    list_api_keys,
    revoke_api_key,
    route_for,
    set_callback_policy,
    set_ip_allowlist,
    set_route,
    store_gateway_credentials,
)
from shared.settings import parse_networks


@click.group("merchant")
def merchant() -> None:
    """Merchants and their credentials."""


def credential_options(command: Any) -> Any:
    """One ``--<gateway>-<field>`` option per credential field of every gateway."""
    for description in reversed(catalogue.descriptions()):
        for credential in reversed(description.credentials):
            command = click.option(
                description.option(credential),
                envvar=description.envvar(credential),
                default=None,
                type=click.Choice(credential.choices) if credential.choices else str,
                help=f"{description.title}: {credential.help}"
                + (f" (default {credential.default})" if credential.default else ""),
                show_envvar=True,
            )(command)
    return command


def given_credentials(
    description: GatewayDescription, options: dict[str, Any]
) -> dict[str, str] | None:
    """The gateway's credentials from the options, None if none were given; all or nothing."""
    values = {
        c.name: options.get(description.option(c).lstrip("-").replace("-", "_"))
        for c in description.credentials
    }
    required = [c.name for c in description.credentials if c.required]
    if not any(values[name] for name in required):
        return None
    missing = sorted(name for name in required if not values[name])
    if missing:
        raise click.UsageError(f"{description.title} credentials need all of: {', '.join(missing)}")
    stored = {c.name: values[c.name] or c.default for c in description.credentials}
    return {name: str(value) for name, value in stored.items() if value}


@merchant.command("create")
@click.argument("name")
@click.option("--bus", is_flag=True, help="its API key may also sign commands on malipo.commands")
@credential_options
def merchant_create(name: str, bus: bool, **options: Any) -> None:
    """Create a merchant; print its id, API key (shown once) and callback URLs as JSON.

    Credentials given for a gateway enable it and add it to the merchant's route for
    its currencies (see ``malipo merchant route``).
    """
    settings = cli_settings()
    given = {d.name: given_credentials(d, options) for d in catalogue.descriptions()}
    cipher = cli_cipher(settings)
    actor = audit.cli_actor()
    output: dict[str, Any] = {}
    try:
        with cli_database(settings) as database, database.transaction() as session:
            row = create_merchant(session, name, actor=actor)
            output = {"id": str(row.id), "name": name}
            output["api_key"] = issue_api_key(
                session,
                settings.secret_key.get_secret_value().encode(),
                row.id,
                actor=actor,
                bus_cipher=cipher if bus else None,
            )
            urls = {}
            for gateway, credentials in given.items():
                if credentials is None:
                    continue
                secret = store_gateway_credentials(
                    session,
                    cipher,
                    row.id,
                    gateway,
                    credentials,
                    production=settings.env == "production",
                    actor=actor,
                )
                urls[gateway] = settings.merchant_callback_url(gateway, secret)
            if urls:
                output["callback_urls"] = urls
                output["callback_url"] = next(iter(urls.values()))
            routes = {c: route_for(session, row.id, c) for c in catalogue.currencies()}
            output["routes"] = {currency: route for currency, route in routes.items() if route}
    except CredentialsRefused as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(output, indent=2))


@merchant.command("route")
@click.argument("merchant_id", type=click.UUID)
@click.argument("currency")
@click.argument("gateways")
def merchant_route(merchant_id: uuid.UUID, currency: str, gateways: str) -> None:
    """Order the gateways a currency's payments go to (``M KES daraja,intasend``).

    A payment that names no gateway goes to the first enabled one.
    """
    settings = cli_settings()
    currency = currency.upper()
    names = [part.strip() for part in gateways.split(",") if part.strip()]
    try:
        with cli_database(settings) as database, database.transaction() as session:
            if session.get(Merchant, merchant_id) is None:
                raise click.ClickException(f"no merchant {merchant_id}")
            for name in names:
                if gateway_credential(session, merchant_id, catalogue.describe(name).name) is None:
                    raise click.ClickException(f"merchant {merchant_id} has no {name} credentials")
            routed = set_route(session, merchant_id, currency, names, actor=audit.cli_actor())
    except (ValueError, MalipoError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        json.dumps({"merchant_id": str(merchant_id), "currency": currency, "gateways": routed})
    )


@merchant.command("pay-page")
@click.argument("merchant_id", type=click.UUID)
@click.option("--support-url", default=None, help="the help link the pay page shows ('' clears)")
@click.option(
    "--allow-retries/--no-retries",
    default=None,
    help="whether a customer whose payment failed may try again from the pay page",
)
def merchant_pay_page(
    merchant_id: uuid.UUID, support_url: str | None, allow_retries: bool | None
) -> None:
    """What malipo's pay page shows for this merchant's customers (prints the result)."""
    settings = cli_settings()
    if support_url and urlsplit(support_url).scheme not in ("http", "https", "mailto"):
        raise click.ClickException("--support-url must be an http(s) or mailto: URL")
    with cli_database(settings) as database, database.transaction() as session:
        row = session.get(Merchant, merchant_id)
        if row is None:
            raise click.ClickException(f"no merchant {merchant_id}")
        page = dict(row.pay_page or {})
        if support_url is not None:
            page["support_url"] = support_url or None
        if allow_retries is not None:
            page["allow_retries"] = allow_retries
        row.pay_page = {k: v for k, v in page.items() if v is not None}
        shown = dict(row.pay_page)
    click.echo(json.dumps({"merchant_id": str(merchant_id), "pay_page": shown}))


@merchant.command("payouts")
@click.argument("merchant_id", type=click.UUID)
@click.option(
    "--approval-above",
    "approval_above",
    multiple=True,
    metavar="CUR=MINOR",
    help="payouts above this many minor units of CUR wait for a second key "
    "(payouts:approve); CUR= clears it; repeatable",
)
@click.option(
    "--notify-recipient/--no-notify-recipient",
    default=None,
    help="whether the phone a payout paid gets an SMS (template event payout_received)",
)
def merchant_payouts(
    merchant_id: uuid.UUID, approval_above: tuple[str, ...], notify_recipient: bool | None
) -> None:
    """The merchant's payout rules: four-eyes thresholds per currency, the recipient's SMS
    (prints the result)."""
    changes: dict[str, int | None] = {}
    for item in approval_above:
        currency, _, amount = item.partition("=")
        currency = currency.strip().upper()
        if currency not in catalogue.currencies():
            raise click.ClickException(f"--approval-above: no gateway takes {currency!r}")
        if amount.strip() and not amount.strip().isdigit():
            raise click.ClickException("--approval-above takes CUR=<minor units>, e.g. KES=500000")
        changes[currency] = int(amount) if amount.strip() else None
    with cli_database(cli_settings()) as database, database.transaction() as session:
        row = session.get(Merchant, merchant_id)
        if row is None:
            raise click.ClickException(f"no merchant {merchant_id}")
        rules = dict(row.payouts or {})
        limits = dict(rules.get("approval_above") or {})
        for currency, threshold in changes.items():
            if threshold is None:
                limits.pop(currency, None)
            else:
                limits[currency] = threshold
        rules["approval_above"] = limits
        if notify_recipient is not None:
            rules["notify_recipient"] = notify_recipient
        before = dict(row.payouts or {})
        row.payouts = rules
        shown = dict(row.payouts)
        if shown != before:  # four eyes or not: who may send money out alone
            audit.record(
                session,
                actor=audit.cli_actor(),
                action="merchant.payout_rules_changed",
                subject_type="merchant",
                subject_id=merchant_id,
                detail={"from": before, "to": shown},
            )
    click.echo(json.dumps({"merchant_id": str(merchant_id), "payouts": shown}))


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
@click.option("--bus", is_flag=True, help="the key may also sign commands on malipo.commands")
def merchant_key_create(
    merchant_id: uuid.UUID, scopes: tuple[str, ...], label: str | None, bus: bool
) -> None:
    """Issue a key; prints it once as JSON (default scopes: payments:write, payments:read)."""
    settings, pepper = _pepper()
    chosen = scopes or DEFAULT_SCOPES
    cipher = cli_cipher(settings) if bus else None
    with cli_database(settings) as database, database.transaction() as session:
        if session.get(Merchant, merchant_id) is None:
            raise click.ClickException(f"no merchant {merchant_id}")
        token = issue_api_key(
            session,
            pepper,
            merchant_id,
            tuple(chosen),
            label,
            actor=audit.cli_actor(),
            bus_cipher=cipher,
        )
    click.echo(
        json.dumps({"merchant_id": str(merchant_id), "api_key": token, "scopes": list(chosen)})
    )


@merchant_key.command("revoke")
@click.argument("prefix")
def merchant_key_revoke(prefix: str) -> None:
    """Revoke a key by its prefix (``mlp_<12 hex>``); the next request with it is refused."""
    settings = cli_settings()
    with cli_database(settings) as database, database.transaction() as session:
        if not revoke_api_key(session, prefix[:16], actor=audit.cli_actor()):
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
        "bus": row.signing_ciphertext is not None,
        "created_at": row.created_at.isoformat(),
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }


@merchant.command("callbacks")
@click.argument("merchant_id", type=click.UUID)
@click.option("--gateway", default="daraja", show_default=True)
@click.option(
    "--ip-allowlist",
    default=None,
    help="a gateway's named list ('safaricom'), 'off', or comma-separated addresses/CIDRs",
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
    actor = audit.cli_actor()
    try:
        gateway = catalogue.describe(gateway).name
        with cli_database(settings) as database, database.transaction() as session:
            row = set_callback_policy(
                session,
                merchant_id,
                gateway,
                require_signature=require_signature,
                confirm_before_credit=confirm_before_credit,
                actor=actor,
            )
            if ip_allowlist is not None:
                allowlist = parse_allowlist(ip_allowlist, catalogue.describe(gateway))
                row = set_ip_allowlist(session, merchant_id, gateway, allowlist, actor=actor)
            view = {
                "merchant_id": str(merchant_id),
                "gateway": gateway,
                "ip_allowlist": row.ip_allowlist,
                "require_signature": row.require_signature,
                "confirm_before_credit": row.confirm_before_credit,
                "enabled": row.enabled,
            }
    except (LookupError, MalipoError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(view, indent=2))


def parse_allowlist(raw: str, description: GatewayDescription) -> list[str] | None:
    if raw == "off":
        return None
    if raw in description.named_allowlists:
        return list(description.named_allowlists[raw])
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
        gateway = catalogue.describe(gateway).name
        with cli_database(settings) as database, database.transaction() as session:
            set_callback_policy(
                session, merchant_id, gateway, enabled=enable, actor=audit.cli_actor()
            )
    except (LookupError, MalipoError) as exc:
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
        before = row.require_registered_customers
        if require_registered_customers is not None:
            row.require_registered_customers = require_registered_customers
        if row.require_registered_customers != before:  # who may pay this merchant
            audit.record(
                session,
                actor=audit.cli_actor(),
                action="merchant.settings_changed",
                subject_type="merchant",
                subject_id=merchant_id,
                detail={
                    "require_registered_customers": {
                        "from": before,
                        "to": row.require_registered_customers,
                    }
                },
            )
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
        token = issue_api_key(session, pepper, None, tuple(chosen), label, actor=audit.cli_actor())
    click.echo(json.dumps({"api_key": token, "scopes": list(chosen)}))
