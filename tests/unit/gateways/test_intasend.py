"""IntaSend's pure rules: codes, invoice reading, the challenge check, webhook parsing."""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain import errors
from shared.domain.errors import MalipoError
from shared.domain.money import Money
from shared.gateways.base import (
    CallbackMalformed,
    CustomerDetails,
    InboundCallback,
    Outcome,
    PaymentRequest,
)
from shared.gateways.catalogue import describe
from shared.gateways.description import GatewaySettings
from shared.gateways.intasend import DESCRIPTION, codes
from shared.gateways.intasend.client import IntaSendAdapter
from shared.gateways.intasend.transformers import (
    IntaSendCredentials,
    InvoiceUnreadable,
    error_text,
    invoice_verdict,
    stk_push_body,
)
from tests.unit.properties import PROPERTY

CHALLENGE = "a-dashboard-challenge"
PHONE = "254712345678"
CREDENTIALS = dict(DESCRIPTION.simulator_credentials)


def adapter() -> IntaSendAdapter:
    return IntaSendAdapter(GatewaySettings("http://127.0.0.1:1/api/v1", 1, 1))


def invoice(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "invoice_id": "XMSLWOS",
        "state": "COMPLETE",
        "provider": "M-PESA",
        "charges": "3.50",
        "net_amount": "96.50",
        "currency": "KES",
        "value": "100.00",
        "account": PHONE,
        "api_ref": "attempt-1",
        "mpesa_reference": "RKL7N8XQ2P",
        "failed_reason": None,
        "failed_code": None,
    }
    return {**base, **fields}


def inbound(document: Any) -> InboundCallback:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return InboundCallback("POST", "", body, {}, "127.0.0.1", "path-secret")


# -- description and codes -------------------------------------------------------------------


def test_the_catalogue_finds_intasend_by_its_description() -> None:
    assert describe("intasend") is DESCRIPTION
    assert DESCRIPTION.confirm_before_credit
    assert [c.name for c in DESCRIPTION.credentials] == [
        "publishable_key",
        "secret_key",
        "challenge",
        "wallet_id",
        "payout_approval",
    ]
    verifiers = DESCRIPTION.callback_verifiers({"challenge": CHALLENGE})
    assert verifiers == {"challenge_sha256": hashlib.sha256(CHALLENGE.encode()).hexdigest()}


def test_the_simulator_credentials_are_valid_credentials() -> None:
    assert adapter().credentials(CREDENTIALS).publishable_key.startswith("ISPubKey_test_")


@pytest.mark.parametrize(
    ("code", "outcome", "failure"),
    [
        ("1032", Outcome.CANCELLED, "cancelled_by_user"),
        (1032, Outcome.CANCELLED, "cancelled_by_user"),
        ("1", Outcome.FAILED, "insufficient_funds"),
        ("2001", Outcome.FAILED, "wrong_pin"),
        ("1037", Outcome.EXPIRED, "customer_unreachable"),
        ("1019", Outcome.EXPIRED, "transaction_expired"),
        ("77777", Outcome.FAILED, "gateway_error"),
        (None, Outcome.FAILED, "gateway_error"),
    ],
)
def test_failed_codes_are_m_pesa_result_codes(code: object, outcome: Outcome, failure: str) -> None:
    meaning = codes.meaning_of("FAILED", code, None)
    assert (meaning.outcome, meaning.failure_code) == (outcome, failure)


@pytest.mark.parametrize(
    ("reason", "failure"),
    [
        ("Request cancelled by user", "cancelled_by_user"),
        ("The balance is insufficient for the transaction", "insufficient_funds"),
        ("DS timeout user cannot be reached", "customer_unreachable"),
        ("Transaction has expired", "transaction_expired"),
        ("The initiator information is invalid.", "wrong_pin"),
        ("Something odd", "gateway_error"),
    ],
)
def test_without_a_known_code_the_reason_text_decides(reason: str, failure: str) -> None:
    assert codes.meaning_of("FAILED", None, reason).failure_code == failure


def test_a_known_code_wins_over_the_reason_text() -> None:
    assert codes.meaning_of("FAILED", "1", "Request cancelled by user").failure_code == (
        "insufficient_funds"
    )


@pytest.mark.parametrize("state", ["PENDING", "PROCESSING"])
def test_in_flight_states_are_pending(state: str) -> None:
    assert codes.meaning_of(state).outcome == Outcome.PENDING


def test_an_unknown_state_is_refused() -> None:
    with pytest.raises(ValueError, match="not an IntaSend invoice state"):
        codes.meaning_of("RETRY")


@given(st.sampled_from(sorted(codes.STATES)), st.one_of(st.none(), st.text(), st.integers()))
@PROPERTY
def test_every_state_and_code_maps_to_a_catalogue_code(state: str, failed_code: object) -> None:
    meaning = codes.meaning_of(state, failed_code, None)
    if meaning.failure_code is not None:
        assert errors.lookup(meaning.failure_code).code == meaning.failure_code
    assert (meaning.outcome == Outcome.SUCCEEDED) == (state == "COMPLETE")
    assert len(codes.result_code(state, failed_code)) <= 40


# -- amounts ---------------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=10**12), st.booleans())
@PROPERTY
def test_amounts_read_alike_as_decimal_strings_or_numbers(minor: int, as_string: bool) -> None:
    text = f"{Decimal(minor).scaleb(-2):.2f}"
    value: object = text if as_string else float(text) if minor % 100 else minor // 100
    verdict = invoice_verdict(invoice(value=value, charges=0))
    assert verdict.amount == Money(minor, "KES")
    assert verdict.fee is None


def test_charges_are_the_fee_and_the_receipt_the_mpesa_reference() -> None:
    verdict = invoice_verdict(invoice(value=100, charges=3.5))
    assert (verdict.outcome, verdict.amount, verdict.fee) == (
        Outcome.SUCCEEDED,
        Money(10_000, "KES"),
        Money(350, "KES"),
    )
    assert (verdict.receipt, verdict.phone, verdict.result_code) == (
        "RKL7N8XQ2P",
        PHONE,
        "COMPLETE",
    )


@pytest.mark.parametrize("value", ["ten", "1.005", True, "-5.00", [1]])
def test_unreadable_amounts_are_refused(value: object) -> None:
    with pytest.raises(InvoiceUnreadable):
        invoice_verdict(invoice(value=value))


def test_a_failed_invoice_says_its_code_and_reason() -> None:
    verdict = invoice_verdict(
        invoice(state="FAILED", failed_code="1032", failed_reason="Request cancelled by user")
    )
    assert (verdict.outcome, verdict.failure_code, verdict.result_code) == (
        Outcome.CANCELLED,
        "cancelled_by_user",
        "FAILED:1032",
    )
    assert verdict.message == "Request cancelled by user"


@pytest.mark.parametrize(
    ("minor", "currency", "error"),
    [
        (10_000, "AMD", errors.INVALID_CURRENCY),
        (50, "KES", errors.INVALID_AMOUNT),
        (10_050, "KES", errors.INVALID_AMOUNT),
        (15_000_100, "KES", errors.AMOUNT_OUT_OF_RANGE),
    ],
)
def test_check_amount_refuses_what_intasend_would(
    minor: int, currency: str, error: errors.ErrorCode
) -> None:
    with pytest.raises(MalipoError) as refused:
        adapter().check_amount(Money(minor, currency))
    assert refused.value.code == error.code


@pytest.mark.parametrize("minor", [100, 15_000_000])
def test_check_amount_takes_one_to_150000_shillings(minor: int) -> None:
    adapter().check_amount(Money(minor, "KES"))


# -- credentials and the push body -----------------------------------------------------------


@pytest.mark.parametrize(
    "override",
    [
        {"publishable_key": "pk_live_123"},
        {"secret_key": "ISPubKey_test_x"},
        {"challenge": ""},
        {"wallet_id": "bad wallet"},
    ],
)
def test_bad_credentials_are_a_value_error(override: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="must"):
        IntaSendCredentials.from_stored({**CREDENTIALS, **override})


def test_missing_credentials_name_the_field() -> None:
    with pytest.raises(ValueError, match="secret_key is required"):
        IntaSendCredentials.from_stored({"publishable_key": CREDENTIALS["publishable_key"]})


def test_the_push_body_is_intasend_s() -> None:
    credentials = IntaSendCredentials.from_stored({**CREDENTIALS, "wallet_id": "QZ7WOPR"})
    request = PaymentRequest(
        payment_id="p1",
        attempt_ref="attempt-1",
        amount=Money(10_000, "KES"),
        phone=PHONE,
        reference="ORDER-1",
        description=None,
        callback_url="http://unused",
        customer=CustomerDetails(first_name="Wanjiku", last_name="Kamau", email="w@example.com"),
    )
    assert stk_push_body(credentials, request) == {
        "currency": "KES",
        "method": "M-PESA",
        "amount": "100.00",
        "phone_number": PHONE,
        "api_ref": "attempt-1",
        "narrative": "ORDER-1",
        "name": "Wanjiku Kamau",
        "email": "w@example.com",
        "wallet_id": "QZ7WOPR",
    }
    assert credentials.api_headers()["INTASEND_PUBLIC_API_KEY"] == credentials.publishable_key


def test_error_text_reads_both_shapes() -> None:
    assert error_text({"detail": "Invalid authentication credentials"}) == (
        "Invalid authentication credentials"
    )
    listed = {
        "type": "client_error",
        "errors": [{"code": "invalid", "detail": "Enter a valid phone", "attr": "phone_number"}],
    }
    assert error_text(listed) == "invalid: Enter a valid phone (phone_number)"
    assert error_text({}) == ""


# -- webhooks --------------------------------------------------------------------------------


def verifiers() -> dict[str, str]:
    return DESCRIPTION.callback_verifiers({"challenge": CHALLENGE})


def test_the_right_challenge_is_accepted() -> None:
    assert (
        adapter().authenticate_callback(verifiers(), inbound(invoice(challenge=CHALLENGE))) is None
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (invoice(), "challenge_missing"),
        (invoice(challenge=123), "challenge_missing"),
        (b"not json", "challenge_missing"),
        (invoice(challenge="guess"), "challenge_invalid"),
        (invoice(challenge=CHALLENGE + " "), "challenge_invalid"),
    ],
)
def test_a_missing_or_wrong_challenge_is_refused(body: Any, reason: str) -> None:
    assert adapter().authenticate_callback(verifiers(), inbound(body)) == reason


def test_without_a_stored_verifier_every_challenge_is_refused() -> None:
    refusal = adapter().authenticate_callback({}, inbound(invoice(challenge=CHALLENGE)))
    assert refusal == "challenge_invalid"


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
@PROPERTY
def test_only_the_stored_challenge_passes(stored: str, presented: str) -> None:
    refusal = adapter().authenticate_callback(
        DESCRIPTION.callback_verifiers({"challenge": stored}), inbound({"challenge": presented})
    )
    assert (refusal is None) == (stored == presented)


def test_a_webhook_is_an_event_about_its_invoice_and_state() -> None:
    event = adapter().parse_callback(inbound(invoice(challenge=CHALLENGE)))
    assert (event.event_key, event.gateway_ref, event.secondary_ref) == (
        "invoice:XMSLWOS:COMPLETE",
        "XMSLWOS",
        "attempt-1",
    )
    assert event.verdict.outcome == Outcome.SUCCEEDED
    assert event.verdict.amount == Money(10_000, "KES")


def test_a_repeated_delivery_shares_its_event_key() -> None:
    body = inbound(invoice(challenge=CHALLENGE))
    assert adapter().parse_callback(body).event_key == adapter().parse_callback(body).event_key


def test_processing_after_complete_is_a_pending_word_with_its_own_key() -> None:
    complete = adapter().parse_callback(inbound(invoice(challenge=CHALLENGE)))
    late = adapter().parse_callback(
        inbound(invoice(state="PROCESSING", mpesa_reference=None, challenge=CHALLENGE))
    )
    assert late.verdict.outcome == Outcome.PENDING
    assert late.event_key != complete.event_key


def test_the_kept_body_has_no_challenge_and_no_full_phone() -> None:
    document = invoice(challenge=CHALLENGE, customer_phone="0712345678")
    event = adapter().parse_callback(inbound(document))
    assert CHALLENGE not in event.masked_body
    assert json.loads(event.masked_body)["challenge"] == "[redacted]"
    assert PHONE not in event.masked_body
    assert "712345678" not in event.masked_body
    assert "2547****5678" in event.masked_body


@given(st.from_regex(re.compile(r"2547[0-9]{8}"), fullmatch=True), st.text(min_size=1))
@PROPERTY
def test_masking_never_keeps_the_phone_or_the_challenge(phone: str, challenge: str) -> None:
    event = adapter().parse_callback(inbound(invoice(account=phone, challenge=challenge)))
    assert phone not in event.masked_body
    assert json.loads(event.masked_body)["challenge"] == "[redacted]"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        json.dumps({"state": "COMPLETE"}).encode(),
        json.dumps(invoice(state=None)).encode(),
        json.dumps(invoice(state="RETRY")).encode(),
        json.dumps(invoice(invoice_id="")).encode(),
        json.dumps(invoice(value="lots")).encode(),
        json.dumps({"chargeback_id": 1, "invoice": invoice(), "challenge": "c"}).encode(),
    ],
)
def test_unreadable_webhooks_are_malformed(body: bytes) -> None:
    with pytest.raises(CallbackMalformed):
        adapter().parse_callback(inbound(body))


def test_the_acknowledgement_is_a_200() -> None:
    reply = adapter().acknowledgement(inbound(invoice()))
    assert reply.status == 200
    assert json.loads(reply.body) == {"status": "received"}


def test_a_failed_invoice_reads_its_code_with_m_pesa_s_own_table() -> None:
    # IntaSend wraps M-Pesa: every code that ends an STK push unpaid means for an
    # IntaSend invoice what it means from Daraja, whatever the reason text says.
    from shared.gateways.base import Outcome
    from shared.gateways.intasend.codes import failure_meaning
    from shared.gateways.mpesa_results import RESULT_CODES

    failing = {
        code: meaning
        for code, meaning in RESULT_CODES.items()
        if meaning.outcome not in (Outcome.SUCCEEDED, Outcome.PENDING)
    }
    assert "2028" in failing  # product not assigned: the merchant's set-up
    for code, meaning in failing.items():
        assert failure_meaning(code, "some text") == meaning
        if code.isdigit():  # codes arrive as numbers too
            assert failure_meaning(int(code), None) == meaning
