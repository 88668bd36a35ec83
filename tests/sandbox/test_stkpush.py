"""STK push: the accepted answer, every field rule, content type, JSON and credentials."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from tests.sandbox.helpers import MISSING, TIMESTAMP, Daraja, SimFactory, password

ACCEPTED = "Success. Request accepted for processing"


def test_valid_push_is_accepted_with_daraja_shaped_ids(daraja: Daraja) -> None:
    result = daraja.push()

    assert result.status_code == 200
    assert result.json["ResponseCode"] == "0"
    assert result.json["ResponseDescription"] == ACCEPTED
    assert result.json["CustomerMessage"] == ACCEPTED
    assert re.fullmatch(r"\d{5}-\d{8}-1", result.json["MerchantRequestID"])
    assert re.fullmatch(r"ws_CO_\d{14}\d{10}", result.json["CheckoutRequestID"])


def test_ids_are_unique(daraja: Daraja) -> None:
    answers = [daraja.push().json for _ in range(30)]

    assert len({a["CheckoutRequestID"] for a in answers}) == 30
    assert len({a["MerchantRequestID"] for a in answers}) == 30


def test_push_records_a_pending_transaction(daraja: Daraja) -> None:
    checkout_id = daraja.accepted(Amount="25", PartyA=254712345678)

    tx = daraja.control("GET", f"/transactions/{checkout_id}").json
    assert tx["Amount"] == 25
    assert tx["PartyA"] == "254712345678"
    assert tx["status"] == "pending"
    assert tx["ResultCode"] == 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"BusinessShortCode": 174379, "PartyB": 174379},
        {"Amount": 10.0},
        {"Amount": "250000"},
        {"Amount": 1},
        {"PartyA": "254112345678", "PhoneNumber": 254112345678},
        {"TransactionType": "CustomerBuyGoodsOnline", "PartyB": "5555555"},
        {"CallBackURL": "https://example.com:8443/cb?x=1"},
        {"AccountReference": "A" * 12, "TransactionDesc": "D" * 13},
    ],
)
def test_accepted_variants(daraja: Daraja, overrides: dict[str, Any]) -> None:
    result = daraja.push(**overrides)

    assert result.status_code == 200, result.json


BAD_FIELDS: list[tuple[str, Any]] = [
    ("BusinessShortCode", MISSING),
    ("BusinessShortCode", "1234"),
    ("BusinessShortCode", "12345678"),
    ("BusinessShortCode", "17437a"),
    ("BusinessShortCode", True),
    ("BusinessShortCode", 1743.79),
    ("Password", MISSING),
    ("Password", ""),
    ("Password", 123),
    ("Timestamp", MISSING),
    ("Timestamp", "2026010203040"),
    ("Timestamp", "20261302030405"),
    ("Timestamp", "20260230030405"),
    ("Timestamp", "20260102250405"),
    ("Timestamp", 20260102030405),
    ("TransactionType", MISSING),
    ("TransactionType", "customerpaybillonline"),
    ("TransactionType", "CustomerPayBill"),
    ("Amount", MISSING),
    ("Amount", 0),
    ("Amount", -5),
    ("Amount", 250001),
    ("Amount", 10.5),
    ("Amount", "10.50"),
    ("Amount", "10.0"),
    ("Amount", "ten"),
    ("Amount", ""),
    ("Amount", True),
    ("Amount", None),
    ("PartyA", MISSING),
    ("PartyA", "0712345678"),
    ("PartyA", "+254712345678"),
    ("PartyA", "254212345678"),
    ("PartyA", "25471234567"),
    ("PartyB", MISSING),
    ("PartyB", "1234"),
    ("PartyB", "600000"),
    ("PhoneNumber", MISSING),
    ("PhoneNumber", "254 712345678"),
    ("PhoneNumber", "2547123456789"),
    ("CallBackURL", MISSING),
    ("CallBackURL", "example.com/cb"),
    ("CallBackURL", "ftp://example.com/cb"),
    ("CallBackURL", "https:///cb"),
    ("CallBackURL", "https://example.com/c b"),
    ("CallBackURL", "https://example.com:99999/cb"),
    ("CallBackURL", "https://example.com/callbacks/mpesa/s3/a1"),
    ("CallBackURL", "https://example.com/M-PESA/cb"),
    ("CallBackURL", "https://safaricom-hooks.example.com/cb"),
    ("CallBackURL", "https://example.com/cb/run.exe"),
    ("CallBackURL", "https://example.com/cmd"),
    ("CallBackURL", "https://example.com/cb?query=1"),
    ("CallBackURL", "https://example.com/sql/cb"),
    ("AccountReference", MISSING),
    ("AccountReference", ""),
    ("AccountReference", "A" * 13),
    ("AccountReference", 12345),
    ("TransactionDesc", MISSING),
    ("TransactionDesc", "   "),
    ("TransactionDesc", "D" * 14),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
def test_each_field_rule_gives_400_invalid_field(daraja: Daraja, field: str, value: Any) -> None:
    result = daraja.push(**{field: value})

    assert result.status_code == 400
    assert result.json["errorCode"] == "400.002.02"
    assert result.json["errorMessage"] == f"Bad Request - Invalid {field}"
    assert result.json["requestId"]
    assert daraja.control("GET", "/transactions").json == []


def test_first_failing_field_in_table_order_wins(daraja: Daraja) -> None:
    result = daraja.push(Amount=0, Timestamp="bad", TransactionDesc="")

    assert result.json["errorMessage"] == "Bad Request - Invalid Timestamp"


def test_buy_goods_party_b_may_differ_but_paybill_may_not(daraja: Daraja) -> None:
    till = {"PartyB": "5555555"}

    assert daraja.push(TransactionType="CustomerBuyGoodsOnline", **till).status_code == 200
    assert daraja.push(**till).json["errorMessage"] == "Bad Request - Invalid PartyB"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_invalid_business_short_code(
    daraja: Daraja, content_type: str
) -> None:
    result = daraja.post(
        "/mpesa/stkpush/v1/processrequest", '{"a": 1}', **{"Content-Type": content_type}
    )

    assert result.status_code == 400
    assert result.json["errorCode"] == "400.002.02"
    assert result.json["errorMessage"] == "Bad Request - Invalid BusinessShortCode"


def test_json_content_type_parameters_are_allowed(daraja: Daraja) -> None:
    result = daraja.post(
        "/mpesa/stkpush/v1/processrequest",
        json.dumps(daraja.push_body()),
        **{"Content-Type": "Application/JSON; charset=utf-8"},
    )

    assert result.status_code == 200, result.json


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"text"', ""])
def test_body_that_is_not_a_json_object_is_invalid_json(daraja: Daraja, raw: str) -> None:
    result = daraja.post(
        "/mpesa/stkpush/v1/processrequest", raw, **{"Content-Type": "application/json"}
    )

    assert result.status_code == 400
    assert result.json["errorCode"] == "400.002.02"
    assert result.json["errorMessage"] == "Bad Request - Invalid JSON"


@pytest.mark.parametrize(
    "overrides",
    [
        {"Password": password(passkey="another-passkey")},
        {"Password": password(ts="20260102030406")},
        {"Timestamp": "20260102030406"},
        {"Password": password().lower()},
    ],
)
def test_wrong_password_is_500_wrong_credentials(daraja: Daraja, overrides: dict[str, str]) -> None:
    result = daraja.push(**overrides)

    assert result.status_code == 500
    assert result.json["errorCode"] == "500.001.1001"
    assert result.json["errorMessage"] == "Wrong credentials"
    assert daraja.control("GET", "/transactions").json == []


def test_unregistered_shortcode_is_500_merchant_does_not_exist(daraja: Daraja) -> None:
    result = daraja.push(BusinessShortCode="600000", PartyB="600000", Password=password("600000"))

    assert result.status_code == 500
    assert result.json["errorCode"] == "500.001.1001"
    assert result.json["errorMessage"] == "Merchant does not exist"

    added = daraja.control("POST", "/shortcodes", {"shortcode": "600000", "passkey": "pk"})
    assert added.status_code == 201
    accepted = daraja.push(
        BusinessShortCode="600000", PartyB="600000", Password=password("600000", "pk", TIMESTAMP)
    )
    assert accepted.status_code == 200, accepted.json


def test_latency_delays_gateway_answers_only(make_sim: SimFactory) -> None:
    daraja = Daraja(make_sim(latency_s=0.2))
    started = time.monotonic()
    daraja.control("GET", "/health")
    control_took = time.monotonic() - started
    started = time.monotonic()
    daraja.oauth()
    gateway_took = time.monotonic() - started

    assert control_took < 0.15
    assert gateway_took >= 0.2
