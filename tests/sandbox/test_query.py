"""STK push query: pending until the outcome is due, then the result; unknown ids."""

from __future__ import annotations

import pytest

from tests.sandbox.helpers import MISSING, Daraja, FakeClock, SimFactory, password

QUERY_ACCEPTED = "The service request has been accepted successsfully"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_query_is_pending_then_final(make_sim: SimFactory, clock: FakeClock) -> None:
    daraja = Daraja(make_sim(clock=clock, callback_delay_s=30))
    push = daraja.push().json

    pending = daraja.query(push["CheckoutRequestID"])
    clock.advance(30)
    final = daraja.query(push["CheckoutRequestID"])

    assert pending.status_code == 500
    assert pending.json["errorCode"] == "500.001.1001"
    assert pending.json["errorMessage"] == "The transaction is being processed"
    assert final.status_code == 200
    assert final.json == {
        "ResponseCode": "0",
        "ResponseDescription": QUERY_ACCEPTED,
        "MerchantRequestID": push["MerchantRequestID"],
        "CheckoutRequestID": push["CheckoutRequestID"],
        "ResultCode": "0",
        "ResultDesc": "The service request is processed successfully.",
    }


def test_pending_style_4999_answers_200(make_sim: SimFactory, clock: FakeClock) -> None:
    daraja = Daraja(make_sim(clock=clock, callback_delay_s=30, query_pending_style="4999"))
    checkout_id = daraja.accepted(PhoneNumber="254700001032")

    pending = daraja.query(checkout_id)
    clock.advance(31)
    final = daraja.query(checkout_id)

    assert pending.status_code == 200
    assert pending.json["ResultCode"] == "4999"
    assert final.json["ResultCode"] == "1032"
    assert final.json["ResultDesc"] == "Request cancelled by user"


def test_result_code_is_a_string_in_query_answers(make_sim: SimFactory, clock: FakeClock) -> None:
    daraja = Daraja(make_sim(clock=clock))
    daraja.scenario({"match": {"phone": "254711000000"}, "result_code": "SFC_IC0003"})
    checkout_id = daraja.accepted(PhoneNumber="254711000000")
    clock.advance(1)

    answer = daraja.query(checkout_id).json

    assert answer["ResultCode"] == "SFC_IC0003"
    assert answer["ResultDesc"] == "The operator does not exist."


def test_unknown_checkout_id_does_not_exist(daraja: Daraja) -> None:
    result = daraja.query("ws_CO_000000000000000000000000")

    assert result.status_code == 500
    assert result.json["errorCode"] == "500.001.1001"
    assert result.json["errorMessage"] == "The transaction does not Exist"


def test_checkout_id_of_another_shortcode_does_not_exist(daraja: Daraja) -> None:
    daraja.control("POST", "/shortcodes", {"shortcode": 600000, "passkey": "pk"})
    checkout_id = daraja.accepted()

    result = daraja.query(
        checkout_id, BusinessShortCode="600000", Password=password("600000", "pk")
    )

    assert result.json["errorMessage"] == "The transaction does not Exist"


def test_query_with_wrong_password_is_wrong_credentials(daraja: Daraja) -> None:
    checkout_id = daraja.accepted()

    result = daraja.query(checkout_id, Password=password(passkey="nope"))

    assert result.status_code == 500
    assert result.json["errorMessage"] == "Wrong credentials"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("BusinessShortCode", "12"),
        ("Password", MISSING),
        ("Timestamp", "2026"),
        ("CheckoutRequestID", MISSING),
        ("CheckoutRequestID", ""),
        ("CheckoutRequestID", 42),
    ],
)
def test_query_field_rules(daraja: Daraja, field: str, value: object) -> None:
    result = daraja.query("ws_CO_x", **{field: value})

    assert result.status_code == 400
    assert result.json["errorMessage"] == f"Bad Request - Invalid {field}"


def test_query_tells_the_outcome_when_no_callback_is_sent(
    make_sim: SimFactory, clock: FakeClock
) -> None:
    sim = make_sim(clock=clock)
    daraja = Daraja(sim)
    checkout_id = daraja.accepted(PhoneNumber="254700009999")
    clock.advance(1)

    assert daraja.query(checkout_id).json["ResultCode"] == "0"
    assert sim.dispatcher.pending() == 0
    assert daraja.control("GET", "/callbacks").json == []
