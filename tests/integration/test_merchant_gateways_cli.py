"""``malipo merchant create`` and ``malipo merchant route``: options built from the gateways'
descriptions, credentials all or nothing, routes per currency."""

from __future__ import annotations

import json
import uuid
from typing import Any

from click.testing import CliRunner, Result

from shared.cli import main
from shared.db.models import GatewayCredential
from shared.db.session import Database
from shared.merchants import route_for
from tests.conftest import DARAJA_CREDENTIALS


def malipo(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def daraja_options() -> list[str]:
    return [
        "--daraja-consumer-key",
        DARAJA_CREDENTIALS["consumer_key"],
        "--daraja-consumer-secret",
        DARAJA_CREDENTIALS["consumer_secret"],
        "--daraja-shortcode",
        DARAJA_CREDENTIALS["shortcode"],
        "--daraja-passkey",
        DARAJA_CREDENTIALS["passkey"],
    ]


def created(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.output)
    return document


def test_create_with_a_gateways_options_enables_and_routes_it(db: Database) -> None:
    merchant = created(malipo("merchant", "create", "shop", *daraja_options()))

    assert set(merchant["callback_urls"]) == {"daraja"}
    assert "/callbacks/daraja/" in merchant["callback_urls"]["daraja"]
    assert merchant["routes"] == {"KES": ["daraja"]}
    with db.transaction() as session:
        assert route_for(session, uuid.UUID(merchant["id"]), "KES") == ["daraja"]


def test_a_gateways_credentials_are_all_or_nothing(db: Database) -> None:
    result = malipo("merchant", "create", "shop", "--daraja-consumer-key", "only-this")

    assert result.exit_code != 0
    assert "consumer_secret" in result.output
    assert "passkey" in result.output


def test_route_orders_the_gateways_and_refuses_what_it_cannot_route(db: Database) -> None:
    merchant = created(malipo("merchant", "create", "shop", *daraja_options()))
    merchant_id = merchant["id"]

    wrong_currency = malipo("merchant", "route", merchant_id, "XOF", "daraja")
    unknown = malipo("merchant", "route", merchant_id, "KES", "nosuchpay")
    ok = malipo("merchant", "route", merchant_id, "kes", "mpesa")

    assert wrong_currency.exit_code != 0
    assert "does not take XOF" in wrong_currency.output
    assert unknown.exit_code != 0
    assert "no gateway named" in unknown.output
    assert json.loads(ok.output) == {
        "merchant_id": merchant_id,
        "currency": "KES",
        "gateways": ["daraja"],  # the former name resolves to the gateway
    }


def test_a_gateway_with_a_status_api_may_confirm_before_credit_by_default(db: Database) -> None:
    merchant = created(malipo("merchant", "create", "shop", *daraja_options()))

    with db.transaction() as session:
        row = (
            session.query(GatewayCredential).filter_by(merchant_id=uuid.UUID(merchant["id"])).one()
        )
        # Daraja's description leaves it off (the STK query is asked only when the merchant says).
        assert (row.gateway, row.confirm_before_credit, row.callback_verifiers) == (
            "daraja",
            False,
            {},
        )
