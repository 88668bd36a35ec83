"""IntaSend's money out, pure: request bodies, chargeback and send-money mapping, webhooks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.money import Money
from shared.gateways.base import CallbackMalformed, Capability, InboundCallback
from shared.gateways.description import GatewaySettings
from shared.gateways.intasend import DESCRIPTION
from shared.gateways.intasend import transfers as wire
from shared.gateways.intasend.client import IntaSendAdapter
from shared.gateways.intasend.transformers import IntaSendCredentials
from shared.gateways.intasend.webhooks import parse_collection_webhook
from shared.gateways.transfers import (
    TransferKind,
    TransferRequest,
    TransferResults,
    TransferState,
)
from tests.unit.properties import PROPERTY

REF = "0f" * 16


def request(
    kind: TransferKind = TransferKind.REFUND, amount_minor: int = 10_000
) -> TransferRequest:
    return TransferRequest(
        kind=kind,
        transfer_id="3b7e4c8a-0d51-4f6e-9a2b-7c1d3e5f9a01",
        request_ref=REF,
        amount=Money(amount_minor, "KES"),
        phone="254712345678",
        reason="Returned goods",
        result_url=f"https://malipo.example/callbacks/intasend/s3cret/xr-{REF}",
        timeout_url=f"https://malipo.example/callbacks/intasend/s3cret/xt-{REF}",
        payment_gateway_ref="XMSLWOS",
    )


def batch(batch_code: str, code: str, **transaction: Any) -> dict[str, Any]:
    return {
        "tracking_id": "7e96bc5c-191c-40bd-94f2-be4a0226c69c",
        "status": "Completed",
        "status_code": batch_code,
        "transactions": [
            {
                "status": "Successful" if code == "TS100" else "Failed",
                "status_code": code,
                "status_description": "done",
                "idempotency_key": REF,
                "provider_reference": "TJRHC8IET4",
                "amount": "100.00",
                **transaction,
            }
        ],
        "challenge": "the-challenge",
    }


def adapter() -> IntaSendAdapter:
    return IntaSendAdapter(GatewaySettings("http://127.0.0.1:1/api/v1", 1, 1))


def test_the_description_lists_refunds_and_payouts_and_the_approval_option() -> None:
    assert {Capability.REFUND, Capability.PAYOUT} <= DESCRIPTION.capabilities
    assert isinstance(adapter(), TransferResults)
    stored = dict(DESCRIPTION.simulator_credentials)
    assert not IntaSendCredentials.from_stored(stored).payout_approval
    assert IntaSendCredentials.from_stored({**stored, "payout_approval": "yes"}).payout_approval
    with pytest.raises(ValueError, match="payout_approval"):
        IntaSendCredentials.from_stored({**stored, "payout_approval": "maybe"})


def test_a_chargeback_carries_our_ref_in_reason_details() -> None:
    assert wire.chargeback_body(request()) == {
        "invoice": "XMSLWOS",
        "amount": "100.00",
        "reason": "Returned goods",
        "reason_details": REF,
    }


def test_a_payout_is_one_b2c_transaction_with_our_ref_and_the_result_url() -> None:
    body = wire.send_money_body(request(TransferKind.PAYOUT), requires_approval=True)

    assert body == {
        "provider": "MPESA-B2C",
        "currency": "KES",
        "transactions": [
            {
                "account": "254712345678",
                "amount": "100.00",
                "narrative": "Returned goods",
                "idempotency_key": REF,
            }
        ],
        "callback_url": f"https://malipo.example/callbacks/intasend/s3cret/xr-{REF}",
        "requires_approval": "YES",
        "api_ref": REF,
    }
    assert wire.send_money_body(request(), requires_approval=False)["requires_approval"] == "NO"


@pytest.mark.parametrize(
    ("status", "state", "failure"),
    [
        ("COMPLETED", TransferState.SUCCEEDED, None),
        ("CANCELLED", TransferState.FAILED, "transfer_refused"),
        ("PENDING", TransferState.PENDING, None),
        ("DISPUTED", TransferState.PENDING, None),
        ("overdue", TransferState.PENDING, None),
    ],
)
def test_chargeback_statuses(status: str, state: TransferState, failure: str | None) -> None:
    verdict = wire.chargeback_verdict({"id": "CB1", "status": status, "amount": "50.00"})

    assert (verdict.state, verdict.failure_code) == (state, failure)
    assert verdict.amount == Money(5_000, "KES")
    assert verdict.receipt == "CB1"


def test_an_unknown_chargeback_status_is_unreadable() -> None:
    with pytest.raises(wire.TransferUnreadable):
        wire.chargeback_verdict({"id": "CB1", "status": "REFUNDED"})


@pytest.mark.parametrize(
    ("batch_code", "code", "description", "state", "failure"),
    [
        ("BC100", "TS100", "ok", TransferState.SUCCEEDED, None),
        (
            "BC100",
            "TF106",
            "The recipient is not registered",
            TransferState.FAILED,
            "recipient_invalid",
        ),
        ("BC100", "TF103", "something broke", TransferState.FAILED, "transfer_refused"),
        ("BC100", "TC108", "cancelled", TransferState.FAILED, "transfer_refused"),
        ("BP110", "TP102", "", TransferState.PENDING, None),
        ("BC100", "TF105", "cannot be determined", TransferState.PENDING, None),
        ("BC100", "TH107", "under observation", TransferState.PENDING, None),
        ("BF105", "TP101", "float", TransferState.FAILED, "gateway_funds_low"),
        ("BE111", "TP101", "", TransferState.FAILED, "transfer_refused"),
        # A failed batch whose transaction was sent already is not read as failed.
        ("BE111", "TP102", "", TransferState.PENDING, None),
        ("BP103", "TP101", "awaiting approval", TransferState.PENDING, None),
    ],
)
def test_send_money_codes(
    batch_code: str, code: str, description: str, state: TransferState, failure: str | None
) -> None:
    verdict = wire.send_money_verdict(batch(batch_code, code, status_description=description), REF)

    assert (verdict.state, verdict.failure_code) == (state, failure)
    assert verdict.receipt == ("TJRHC8IET4" if state is TransferState.SUCCEEDED else None)


def test_status_words_decide_only_without_a_code() -> None:
    document = batch("", "", status="Successful")

    assert wire.send_money_verdict(document, REF).state is TransferState.SUCCEEDED
    document["transactions"][0]["status"] = "Queued"
    assert wire.send_money_verdict(document, REF).state is TransferState.PENDING


@given(code=st.text(max_size=8), batch_code=st.text(max_size=8), status=st.text(max_size=12))
@PROPERTY
def test_only_ts100_or_a_success_word_without_a_code_is_a_success(
    code: str, batch_code: str, status: str
) -> None:
    state = wire.transaction_state(batch_code.upper(), code.upper(), status)

    if state is TransferState.SUCCEEDED:
        assert code.upper() == "TS100" or (
            code == "" and status.strip().lower() in ("successful", "success", "completed")
        )


def test_our_transaction_is_found_by_its_idempotency_key() -> None:
    document = batch("BC100", "TS100")
    other = {**document["transactions"][0], "idempotency_key": "x", "status_code": "TF106"}
    document["transactions"].insert(0, other)

    assert wire.send_money_verdict(document, REF).state is TransferState.SUCCEEDED
    with pytest.raises(wire.TransferUnreadable):
        wire.send_money_verdict(document, None)
    assert wire.is_our_batch(document, REF)
    assert not wire.is_our_batch(document, "ab" * 16)


def test_pages_are_a_bare_list_or_results_with_next() -> None:
    assert wire.page_items([{"id": 1}, 2]) == ([{"id": 1}], False)
    assert wire.page_items({"results": [{"id": 1}], "next": "?page=2"}) == ([{"id": 1}], True)
    with pytest.raises(wire.TransferUnreadable):
        wire.page_items({"detail": "Not found."})


def _inbound(document: Any) -> InboundCallback:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return InboundCallback("POST", "", body, {}, "127.0.0.1", "s3cret")


def test_a_send_money_result_is_a_transfer_event_with_the_tail_s_ref() -> None:
    event = adapter().transfer_result(_inbound(batch("BC100", "TS100")), f"xr-{REF}")

    assert event is not None
    assert (event.request_ref, event.gateway_ref) == (REF, "7e96bc5c-191c-40bd-94f2-be4a0226c69c")
    assert event.event_key == "send-money:7e96bc5c-191c-40bd-94f2-be4a0226c69c:BC100:TS100"
    assert event.verdict.state is TransferState.SUCCEEDED
    assert "the-challenge" not in event.masked_body


def test_a_chargeback_webhook_is_a_transfer_event_and_a_collection_is_none() -> None:
    chargeback = {
        "chargeback_id": "CB7",
        "invoice": {"invoice_id": "XMSLWOS", "state": "COMPLETE"},
        "amount": "100.00",
        "reason": "Returned goods",
        "status": "COMPLETED",
        "resolution": "Refunded",
        "challenge": "the-challenge",
    }
    event = adapter().transfer_result(_inbound(chargeback), None)

    assert event is not None
    assert (event.event_key, event.gateway_ref) == ("chargeback:CB7:COMPLETED", "CB7")
    assert event.verdict.state is TransferState.SUCCEEDED
    collection = {"invoice_id": "XMSLWOS", "state": "COMPLETE", "value": "100.00"}
    assert adapter().transfer_result(_inbound(collection), None) is None
    assert adapter().transfer_result(_inbound(b"not json"), None) is None


def test_an_unreadable_transfer_result_is_malformed() -> None:
    with pytest.raises(CallbackMalformed):
        adapter().transfer_result(_inbound(b"<html>"), f"xr-{REF}")
    with pytest.raises(CallbackMalformed):
        adapter().transfer_result(_inbound({"chargeback_id": "CB7", "status": "??"}), None)
    with pytest.raises(CallbackMalformed):
        adapter().transfer_result(_inbound({"invoice_id": "X", "state": "COMPLETE"}), f"xr-{REF}")


def test_transfer_payloads_are_not_read_as_collections() -> None:
    for document in (batch("BC100", "TS100"), {"chargeback_id": "CB7", "status": "PENDING"}):
        with pytest.raises(CallbackMalformed):
            parse_collection_webhook(json.dumps(document).encode())


@pytest.mark.parametrize(
    ("kind", "amount_minor", "failure"),
    [
        (TransferKind.REFUND, 10_050, "invalid_amount"),
        (TransferKind.REFUND, 150_001_00, "limit_exceeded"),
        (TransferKind.PAYOUT, 9_00, "limit_exceeded"),
    ],
)
def test_amounts_outside_intasend_s_limits_are_refused_without_a_call(
    kind: TransferKind, amount_minor: int, failure: str
) -> None:
    credentials = IntaSendCredentials.from_stored(DESCRIPTION.simulator_credentials)
    send = adapter().refund if kind is TransferKind.REFUND else adapter().payout

    submission = send(credentials, request(kind, amount_minor))  # port 1: a call would raise

    assert (submission.accepted, submission.failure_code) == (False, failure)
