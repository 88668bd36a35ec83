"""Daraja money out, the pure part: SecurityCredential, bodies, amount rules, results."""

from __future__ import annotations

import base64
import datetime
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.errors import MalipoError
from shared.domain.money import Money
from shared.gateways.base import CallbackMalformed, GatewayUnavailable
from shared.gateways.daraja.initiator import (
    InitiatorCertificate,
    public_key_of,
    security_credential,
)
from shared.gateways.daraja.stk import DarajaCredentials
from shared.gateways.daraja.transfers import (
    b2c_body,
    check_payout_amount,
    parse_transfer_result,
    remarks,
    reversal_body,
    status_body,
)
from shared.gateways.transfers import TransferEvent, TransferKind, TransferRequest, TransferState
from tests.unit.properties import PROPERTY

REF = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
CONVERSATION = "AG_20191219_00005797af5d7d75f652"


def self_signed(key: rsa.RSAPrivateKey) -> bytes:
    """A PEM certificate for ``key``, signed by itself."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def key_pair() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key, self_signed(key)


def credentials(**extra: str) -> DarajaCredentials:
    return DarajaCredentials.from_stored(
        {
            "consumer_key": "k",
            "consumer_secret": "s",
            "shortcode": "174379",
            "passkey": "p",
            "initiator_name": "testapi",
            "initiator_password": "pw",
            **extra,
        }
    )


def transfer(kind: TransferKind = TransferKind.PAYOUT, **kw: Any) -> TransferRequest:
    values: dict[str, Any] = {
        "kind": kind,
        "transfer_id": "5b0c5c1e-5d0a-4a63-9d4e-6e8a2f0f1a11",
        "request_ref": REF,
        "amount": Money(10_000, "KES"),
        "phone": "254712345678",
        "reason": "Refund for order 123",
        "result_url": f"https://malipo.test/callbacks/daraja/s3cret/xr-{REF}",
        "timeout_url": f"https://malipo.test/callbacks/daraja/s3cret/xt-{REF}",
        "payment_receipt": "NLJ7RT61SV" if kind == TransferKind.REFUND else None,
        **kw,
    }
    return TransferRequest(**values)


# -- SecurityCredential ---------------------------------------------------------------------


def test_the_security_credential_decrypts_to_the_password(
    key_pair: tuple[rsa.RSAPrivateKey, bytes],
) -> None:
    private, pem = key_pair

    credential = security_credential("Safaricom999!*!", public_key_of(pem))

    decrypted = private.decrypt(base64.b64decode(credential), padding.PKCS1v15())
    assert decrypted == b"Safaricom999!*!"
    assert security_credential("Safaricom999!*!", public_key_of(pem)) != credential  # random


def test_the_certificate_is_read_lazily_and_kept(
    key_pair: tuple[rsa.RSAPrivateKey, bytes], tmp_path: Path
) -> None:
    private, pem = key_pair
    path = tmp_path / "daraja.pem"
    certificate = InitiatorCertificate(str(path))

    with pytest.raises(GatewayUnavailable, match="MALIPO_DARAJA_CERTIFICATE"):
        certificate.credential("pw")
    path.write_bytes(pem)
    credential = certificate.credential("pw")
    path.unlink()

    assert private.decrypt(base64.b64decode(credential), padding.PKCS1v15()) == b"pw"
    assert certificate.credential("pw")  # kept: the file is gone


def test_a_replaced_certificate_is_picked_up(
    key_pair: tuple[rsa.RSAPrivateKey, bytes], tmp_path: Path
) -> None:
    _, first_pem = key_pair
    second_private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "daraja.pem"
    path.write_bytes(first_pem)
    certificate = InitiatorCertificate(str(path))
    certificate.credential("pw")

    path.write_bytes(self_signed(second_private))
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    credential = certificate.credential("pw")

    assert second_private.decrypt(base64.b64decode(credential), padding.PKCS1v15()) == b"pw"


@pytest.mark.parametrize("setting", [None, "", "  "])
def test_no_certificate_setting_is_unavailable_naming_the_variable(setting: str | None) -> None:
    with pytest.raises(GatewayUnavailable, match="MALIPO_DARAJA_CERTIFICATE is not set"):
        InitiatorCertificate(setting).key()


def test_a_file_that_is_no_certificate_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "junk.pem"
    path.write_text("not a certificate")

    with pytest.raises(GatewayUnavailable, match="MALIPO_DARAJA_CERTIFICATE"):
        InitiatorCertificate(str(path)).key()


# -- amounts, texts and bodies --------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "code"),
    [(900, "amount_out_of_range"), (25_000_100, "amount_out_of_range"), (1_050, "invalid_amount")],
)
def test_payout_amounts_b2c_refuses(minor: int, code: str) -> None:
    with pytest.raises(MalipoError) as refused:
        check_payout_amount(Money(minor, "KES"))
    assert refused.value.code == code


@pytest.mark.parametrize(("minor", "shillings"), [(1_000, 10), (25_000_000, 250_000)])
def test_payout_amounts_b2c_takes(minor: int, shillings: int) -> None:
    assert check_payout_amount(Money(minor, "KES")) == shillings


def test_remarks_are_2_to_100_characters() -> None:
    assert remarks("x", "Refund") == "Refund"
    assert remarks("  spaced \n out  ", "Refund") == "spaced out"
    assert len(remarks("y" * 300, "Refund")) == 100


def test_the_b2c_body_is_what_daraja_takes() -> None:
    body = b2c_body(credentials(b2c_shortcode="600999"), transfer(), "CRED")

    assert body == {
        "OriginatorConversationID": REF,
        "InitiatorName": "testapi",
        "SecurityCredential": "CRED",
        "CommandID": "BusinessPayment",
        "Amount": 100,
        "PartyA": "600999",
        "PartyB": "254712345678",
        "Remarks": "Refund for order 123",
        "QueueTimeOutURL": f"https://malipo.test/callbacks/daraja/s3cret/xt-{REF}",
        "ResultURL": f"https://malipo.test/callbacks/daraja/s3cret/xr-{REF}",
        "Occassion": "5b0c5c1e-5d0a-4a63-9d4e-6e8a2f0f1a11",
    }
    assert b2c_body(credentials(), transfer(), "CRED")["PartyA"] == "174379"


def test_the_reversal_body_reverses_the_collection_receipt() -> None:
    body = reversal_body(credentials(), transfer(TransferKind.REFUND), "CRED")

    assert body["TransactionID"] == "NLJ7RT61SV"
    assert (body["ReceiverParty"], body["RecieverIdentifierType"]) == ("174379", "11")
    assert (body["Initiator"], body["CommandID"], body["Amount"]) == (
        "testapi",
        "TransactionReversal",
        100,
    )
    assert body["OriginatorConversationID"] == REF


def test_the_status_body_looks_the_transfer_up_by_our_id_never_the_payment_receipt() -> None:
    body = status_body(credentials(), transfer(TransferKind.REFUND), "CRED")

    assert body["OriginalConversationID"] == REF
    assert "TransactionID" not in body
    assert "OriginatorConversationID" not in body
    assert (body["CommandID"], body["IdentifierType"], body["PartyA"]) == (
        "TransactionStatusQuery",
        "4",
        "174379",
    )
    payout = status_body(credentials(b2c_shortcode="600999"), transfer(), "CRED")
    assert payout["PartyA"] == "600999"


def test_stored_credentials_without_an_initiator_read_as_none() -> None:
    stored = {"consumer_key": "k", "consumer_secret": "s", "shortcode": "174379", "passkey": "p"}

    read = DarajaCredentials.from_stored({**stored, "initiator_name": None})

    assert (read.initiator_name, read.initiator_password, read.payout_shortcode) == (
        None,
        None,
        "174379",
    )
    assert "pw" not in repr(credentials())


# -- results --------------------------------------------------------------------------------


def result(code: Any = 0, ocid: str = REF, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ResultType": 0,
        "ResultCode": code,
        "ResultDesc": "The service request is processed successfully.",
        "OriginatorConversationID": ocid,
        "ConversationID": CONVERSATION,
        "TransactionID": "NLJ41HAY6Q",
        **extra,
    }
    return {"Result": body}


def params(**items: Any) -> dict[str, Any]:
    return {
        "ResultParameters": {"ResultParameter": [{"Key": k, "Value": v} for k, v in items.items()]}
    }


def parse(document: Any, tail: str | None = f"xr-{REF}") -> TransferEvent:
    event = parse_transfer_result(json.dumps(document).encode(), tail)
    assert event is not None
    return event


def test_a_b2c_success_gives_the_receipt_and_amount() -> None:
    document = result(
        **params(
            TransactionAmount=100,
            TransactionReceipt="NLJ41HAY6Q",
            ReceiverPartyPublicName="254708374149 - John Doe",
        )
    )

    event = parse(document)

    assert event.verdict.state == TransferState.SUCCEEDED
    assert (event.verdict.receipt, event.verdict.amount) == ("NLJ41HAY6Q", Money(10_000, "KES"))
    assert (event.request_ref, event.gateway_ref) == (REF, CONVERSATION)
    assert "254708374149" not in event.masked_body
    assert event.event_key == f"transfer:{REF}:{CONVERSATION}:0"


def test_a_reversal_success_reads_its_amount_and_transaction_id() -> None:
    event = parse(result("0", **params(Amount=100.0, OriginalTransactionID="NLJ7RT61SV")))

    assert event.verdict.state == TransferState.SUCCEEDED
    assert (event.verdict.receipt, event.verdict.amount) == ("NLJ41HAY6Q", Money(10_000, "KES"))


@pytest.mark.parametrize(
    ("code", "failure"),
    [
        (2001, "gateway_configuration"),
        ("2001", "gateway_configuration"),
        (1, "gateway_funds_low"),
        (2040, "recipient_invalid"),
        ("R000001", "duplicate_transfer"),
        ("R000002", "transfer_refused"),
        (8006, "gateway_configuration"),
        (424242, "transfer_refused"),
    ],
)
def test_failed_results_map_to_catalogue_codes(code: Any, failure: str) -> None:
    event = parse(result(code))

    assert (event.verdict.state, event.verdict.failure_code) == (TransferState.FAILED, failure)
    assert event.verdict.result_code == str(code)
    assert event.verdict.receipt is None


def test_the_tail_names_the_transfer_and_the_body_is_the_fallback() -> None:
    assert parse(result(ocid=REF), tail="xr-tailref").request_ref == "tailref"
    assert parse(result(ocid=REF), tail=None).request_ref == REF


def test_a_queue_timeout_is_still_pending() -> None:
    event = parse(result(1), tail=f"xt-{REF}")

    assert (event.verdict.state, event.verdict.result_code) == (
        TransferState.PENDING,
        "queue_timeout",
    )
    assert event.request_ref == REF
    assert parse_transfer_result(b"", f"xt-{REF}") is not None  # an empty notice is still one


def test_a_completed_status_result_succeeds_with_the_receipt() -> None:
    status = result(
        0,
        ocid="10571-7910404-1",
        **params(
            TransactionStatus="Completed",
            ReceiptNo="NLJ41HAY6Q",
            Amount=100,
            ConversationID="AG_original",
            CreditPartyName="254708374149 - John Doe",
        ),
    )

    event = parse(status)

    assert event.verdict.state == TransferState.SUCCEEDED
    assert (event.verdict.receipt, event.verdict.amount) == ("NLJ41HAY6Q", Money(10_000, "KES"))
    assert (event.request_ref, event.gateway_ref) == (REF, "AG_original")
    assert event.event_key.startswith("transfer-status:")


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("Failed", TransferState.FAILED),
        ("Reversed", TransferState.FAILED),
        ("Pending", TransferState.PENDING),
    ],
)
def test_other_transaction_statuses(status: str, state: TransferState) -> None:
    event = parse(result(0, ocid="q-1", **params(TransactionStatus=status)))

    assert event.verdict.state == state


def test_a_status_result_for_no_such_transaction_is_not_found() -> None:
    event = parse(result("R000002", ocid="10571-7910404-1"))

    assert event.verdict.state == TransferState.NOT_FOUND


def test_a_failed_status_query_says_nothing_of_the_transfer() -> None:
    event = parse(result(2001, ocid="10571-7910404-1"))

    assert (event.verdict.state, event.verdict.failure_code) == (TransferState.PENDING, None)


def test_event_keys_are_per_delivery_content() -> None:
    success = parse(result(0))

    assert parse(result(0)).event_key == success.event_key
    assert parse(result(2001)).event_key != success.event_key


def test_an_stk_callback_is_not_a_transfer_result() -> None:
    stk = b'{"Body":{"stkCallback":{"CheckoutRequestID":"ws_CO_1","ResultCode":0}}}'

    assert parse_transfer_result(stk, None) is None
    assert parse_transfer_result(stk, "7b0c5c1e5d0a4a639d4e6e8a2f0f1a11") is None
    assert parse_transfer_result(b"not json", None) is None


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"Body": {}}',
        b'{"Result": {"ResultCode": null}}',
        b'{"Result": {"ResultCode": 0, "ResultParameters": {"ResultParameter": 5}}}',
        b'{"Result": {"ResultCode": 0, "ResultParameters": {"ResultParameter": '
        b'[{"Key": "TransactionAmount", "Value": "lots"}]}}}',
    ],
)
def test_an_unreadable_result_is_malformed(body: bytes) -> None:
    with pytest.raises(CallbackMalformed):
        parse_transfer_result(body, f"xr-{REF}")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(
    [
        "Result",
        "ResultCode",
        "ResultParameters",
        "ResultParameter",
        "Key",
        "Value",
        "TransactionStatus",
        "Amount",
        "TransactionAmount",
        "OriginatorConversationID",
        "ConversationID",
        "TransactionID",
        "ReceiptNo",
    ]
)
SHAPED = st.recursive(
    st.none()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["Completed", "0", "R000002", "100.5"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=25,
)


@PROPERTY
@given(
    document=JSON | SHAPED,
    tail=st.sampled_from([None, f"xr-{REF}", f"xt-{REF}", "xr-", "attempt"]),
)
def test_reading_never_fails_but_as_malformed(document: Any, tail: str | None) -> None:
    body = json.dumps(document).encode()
    try:
        event = parse_transfer_result(body, tail)
    except CallbackMalformed:
        return
    assert event is None or isinstance(event, TransferEvent)
