"""Callbacks POSTed to a real local HTTP receiver: shape, built-in rules, once/twice/none."""

from __future__ import annotations

import re
from typing import Any

import pytest

from sandbox.daraja import Simulator
from tests.sandbox.helpers import (
    PHONE,
    CallbackReceiver,
    Daraja,
    SimFactory,
    settle,
    wait_until,
)


def items_by_name(callback: dict[str, Any]) -> dict[str, Any]:
    """Callback metadata read by Name, as integrators must."""
    stk = callback["Body"]["stkCallback"]
    return {item["Name"]: item.get("Value") for item in stk["CallbackMetadata"]["Item"]}


def test_success_callback_has_daraja_shape(daraja: Daraja, receiver: CallbackReceiver) -> None:
    push = daraja.push(Amount=1).json

    (received,) = receiver.wait_for(1)

    assert received.path == "/payment-callback/secret"
    assert received.headers["Content-Type"] == "application/json;charset=UTF-8"
    stk = received.body["Body"]["stkCallback"]
    assert stk["MerchantRequestID"] == push["MerchantRequestID"]
    assert stk["CheckoutRequestID"] == push["CheckoutRequestID"]
    assert stk["ResultCode"] == 0
    assert stk["ResultDesc"] == "The service request is processed successfully."
    names = [item["Name"] for item in stk["CallbackMetadata"]["Item"]]
    assert names == ["Amount", "MpesaReceiptNumber", "Balance", "TransactionDate", "PhoneNumber"]
    values = items_by_name(received.body)
    assert values["Amount"] == 1.0
    assert isinstance(values["Amount"], float)
    assert re.fullmatch(r"[A-Z0-9]{10}", str(values["MpesaReceiptNumber"]))
    assert values["Balance"] is None
    assert re.fullmatch(r"20\d{12}", str(values["TransactionDate"]))
    assert values["PhoneNumber"] == int(PHONE)


def test_receipts_are_unique(daraja: Daraja, receiver: CallbackReceiver) -> None:
    for _ in range(10):
        daraja.push()

    received = receiver.wait_for(10)

    assert len({items_by_name(r.body)["MpesaReceiptNumber"] for r in received}) == 10


def test_delivery_is_recorded(daraja: Daraja, receiver: CallbackReceiver) -> None:
    checkout_id = daraja.accepted()
    wait_until(lambda: bool(daraja.control("GET", "/callbacks").json))

    (delivery,) = daraja.control("GET", "/callbacks").json

    assert delivery["checkout_request_id"] == checkout_id
    assert delivery["url"] == receiver.url
    assert delivery["status"] == 200
    assert delivery["error"] is None
    assert delivery["body"]["Body"]["stkCallback"]["CheckoutRequestID"] == checkout_id


def test_a_failed_delivery_is_not_retried(daraja: Daraja, receiver: CallbackReceiver) -> None:
    receiver.status = 503
    daraja.push()
    receiver.wait_for(1)
    settle()

    assert len(receiver.received) == 1
    assert [d["status"] for d in daraja.control("GET", "/callbacks").json] == [503]


def test_an_unreachable_callback_url_is_recorded_as_an_error(sim: Simulator) -> None:
    daraja = Daraja(sim, "http://127.0.0.1:9/unreachable")
    daraja.push()
    wait_until(lambda: bool(daraja.control("GET", "/callbacks").json))

    (delivery,) = daraja.control("GET", "/callbacks").json
    assert delivery["status"] is None
    assert "ConnectionError" in delivery["error"]


@pytest.mark.parametrize(
    ("phone", "code", "desc"),
    [
        ("254708374149", 1037, "DS timeout user cannot be reached"),
        ("254700001032", 1032, "Request cancelled by user"),
        ("254700001037", 1037, "DS timeout user cannot be reached"),
        ("254700000001", 1, "The balance is insufficient for the transaction."),
        ("254700002001", 2001, "The initiator information is invalid."),
        ("254700001019", 1019, "Transaction has expired"),
        ("254700000017", 17, "Rule limited."),
    ],
)
def test_builtin_failure_rules(
    daraja: Daraja, receiver: CallbackReceiver, phone: str, code: int, desc: str
) -> None:
    checkout_id = daraja.accepted(PhoneNumber=phone, PartyA=phone)

    (received,) = receiver.wait_for(1)

    stk = received.body["Body"]["stkCallback"]
    assert stk["CheckoutRequestID"] == checkout_id
    assert stk["ResultCode"] == code
    assert stk["ResultDesc"] == desc
    assert "CallbackMetadata" not in stk
    assert daraja.query(checkout_id).json["ResultCode"] == str(code)


@pytest.mark.parametrize(("phone", "code"), [("254700009999", "0"), ("254700009997", "1032")])
def test_builtin_rules_without_callback(
    daraja: Daraja, receiver: CallbackReceiver, phone: str, code: str
) -> None:
    checkout_id = daraja.accepted(PhoneNumber=phone)
    settle()

    assert receiver.received == []
    assert daraja.query(checkout_id).json["ResultCode"] == code


def test_builtin_duplicate_rule_sends_the_same_callback_twice(
    daraja: Daraja, receiver: CallbackReceiver
) -> None:
    daraja.push(PhoneNumber="254700009998")

    first, second = receiver.wait_for(2)

    assert first.body == second.body
    assert first.body["Body"]["stkCallback"]["ResultCode"] == 0


def test_resend_delivers_the_same_callback_again(
    daraja: Daraja, receiver: CallbackReceiver
) -> None:
    checkout_id = daraja.accepted()
    receiver.wait_for(1)

    result = daraja.control("POST", f"/callbacks/{checkout_id}/resend")

    assert result.status_code == 202
    first, second = receiver.wait_for(2)
    assert first.body == second.body


def test_resend_of_unknown_or_not_yet_due_transaction(make_sim: SimFactory) -> None:
    daraja = Daraja(make_sim(callback_delay_s=60))
    checkout_id = daraja.accepted()

    assert daraja.control("POST", "/callbacks/ws_CO_nope/resend").status_code == 404
    assert daraja.control("POST", f"/callbacks/{checkout_id}/resend").status_code == 409
