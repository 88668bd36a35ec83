"""Telcell Money: the signed invoice link, the result's checksum, and the result."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.errors import MalipoError
from shared.domain.money import Money
from shared.gateways import catalogue
from shared.gateways.base import (
    CallbackMalformed,
    Capability,
    InboundCallback,
    Outcome,
    PaymentRequest,
    PrecheckReader,
    SignedCallbacks,
)
from shared.gateways.description import GatewaySettings
from shared.gateways.telcell import DESCRIPTION
from shared.gateways.telcell.client import TelcellAdapter
from shared.gateways.telcell.credentials import TelcellCredentials
from shared.gateways.telcell.wire import RESULT_CHECKSUM_FIELDS, result_checksum, security_code

STORED = dict(DESCRIPTION.simulator_credentials)
CREDENTIALS = TelcellCredentials.from_stored(STORED)
REFERENCE = "0b7f3c9e-6a52-4d2e-9a8f-6a1c2b3d4e5f"
ISSUER_ID = base64.b64encode(REFERENCE.encode()).decode()
TEXT = st.text(
    alphabet=st.characters(categories=("L", "N", "P", "S"), max_codepoint=0x58F),
    min_size=1,
    max_size=30,
)


@pytest.fixture
def adapter() -> TelcellAdapter:
    return TelcellAdapter(GatewaySettings("https://telcell.invalid/", 1, 1))


def payment(**changes: Any) -> PaymentRequest:
    fields: dict[str, Any] = {
        "payment_id": str(uuid.uuid4()),
        "attempt_ref": REFERENCE,
        "amount": Money(500000, "AMD"),
        "phone": "37491123456",
        "reference": "ORDER-42",
        "description": "Սուրճ",
        "callback_url": "https://malipo.example/callbacks/telcell/s3cret",
    }
    return PaymentRequest(**{**fields, **changes})


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def result(shop_key: str = CREDENTIALS.shop_key, **changes: str) -> dict[str, str]:
    fields = {
        "issuer_id": ISSUER_ID,
        "status": "PAID",
        "invoice": "4000000123",
        "payment_id": "100000000777",
        "currency": "֏",
        "sum": "5000",
        "time": "2026-01-02 03:04:05",
        **changes,
    }
    # The checksum as the integration's text defines it, written out independently.
    fields["checksum"] = md5(
        shop_key
        + fields["invoice"]
        + fields["issuer_id"]
        + fields["payment_id"]
        + fields["currency"]
        + fields["sum"]
        + fields["time"]
        + fields["status"]
    )
    return fields


def posted(fields: dict[str, str]) -> InboundCallback:
    return InboundCallback(
        method="POST",
        query_string="",
        body=urlencode(fields).encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
        remote_addr="203.0.113.7",
        path_secret="s3cret",
    )


def link_params(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


# -- the description ---------------------------------------------------------------------------


def test_the_description_is_a_hosted_gateway_whose_result_url_is_in_the_cabinet() -> None:
    assert catalogue.describe("telcell") is DESCRIPTION
    assert catalogue.for_callback_segment("telcell") is DESCRIPTION
    assert (DESCRIPTION.currencies, DESCRIPTION.phone_regions) == (("AMD",), ("AM",))
    assert DESCRIPTION.capabilities == {Capability.HOSTED, Capability.CALLBACKS}
    assert DESCRIPTION.default_flow is Capability.HOSTED
    assert DESCRIPTION.pay_page
    assert DESCRIPTION.result_url_in_cabinet
    assert not DESCRIPTION.confirm_before_credit
    assert DESCRIPTION.simulator_path == "/telcell"
    assert set(DESCRIPTION.base_urls.values()) == {"https://telcellmoney.am"}
    assert [c.name for c in DESCRIPTION.credentials] == ["shop_id", "shop_key", "language"]
    assert [c.name for c in DESCRIPTION.credentials if c.secret] == ["shop_key"]
    # A result names no shop: nothing for the ingress to compare.
    assert DESCRIPTION.callback_verifiers(STORED) == {}


def test_the_adapter_verifies_signatures_and_asks_no_precheck(adapter: TelcellAdapter) -> None:
    assert isinstance(adapter, SignedCallbacks)
    assert not isinstance(adapter, PrecheckReader)
    assert adapter.authenticate_callback({}, posted(result())) is None


# -- credentials -------------------------------------------------------------------------------


def test_credentials_default_to_english_and_never_print_the_key() -> None:
    credentials = TelcellCredentials.from_stored({"shop_id": "s@x.am", "shop_key": "k"})

    assert credentials.language == "en"
    assert TelcellCredentials.from_stored({**STORED, "language": "AM"}).language == "am"
    assert CREDENTIALS.shop_key not in repr(CREDENTIALS)


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        ({"shop_key": "k"}, "shop_id"),
        ({"shop_id": "s@x.am"}, "shop_key"),
        ({"shop_id": "s @x.am", "shop_key": "k"}, "spaces"),
        ({"shop_id": "s@x.am", "shop_key": "k\x00"}, "control"),
        ({"shop_id": "s@x.am", "shop_key": "k", "language": "fr"}, "language"),
    ],
)
def test_bad_credentials_are_refused(stored: dict[str, str], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        TelcellCredentials.from_stored(stored)


# -- the invoice link --------------------------------------------------------------------------


def test_start_hosted_sends_the_browser_to_a_signed_invoice_link(adapter: TelcellAdapter) -> None:
    started = adapter.start_hosted(CREDENTIALS, payment())

    assert started.accepted
    assert started.gateway_ref == REFERENCE
    assert started.next_action is not None
    assert started.next_action.type == "redirect"
    url = started.next_action.url
    assert url is not None
    assert url.startswith("https://telcell.invalid/invoices?action=PostInvoice&issuer=")
    params = link_params(url)
    assert list(params) == [
        "action",
        "issuer",
        "currency",
        "price",
        "product",
        "issuer_id",
        "valid_days",
        "lang",
        "security_code",
    ]
    assert params["issuer"] == "sandbox-shop@telcell.test"
    assert (params["currency"], params["price"], params["valid_days"]) == ("֏", "5000", "1")
    assert base64.b64decode(params["product"]).decode() == "Սուրճ"
    assert params["issuer_id"] == ISSUER_ID
    assert params["lang"] == "en"
    # Base64 fields are hashed as sent, not decoded.
    assert params["security_code"] == md5(
        CREDENTIALS.shop_key + params["issuer"] + "֏" + "5000" + params["product"] + ISSUER_ID + "1"
    )


def test_the_link_escapes_every_value(adapter: TelcellAdapter) -> None:
    credentials = TelcellCredentials.from_stored({**STORED, "shop_id": "a+b@shop.am"})
    started = adapter.start_hosted(credentials, payment(description="?&=+/ #"))

    assert started.next_action is not None
    url = started.next_action.url
    assert url is not None
    query = urlsplit(url).query
    assert "%D6%8F" in query  # the dram sign, UTF-8
    assert "issuer=a%2Bb%40shop.am" in query
    assert " " not in url
    params = link_params(url)
    assert base64.b64decode(params["product"]).decode() == "?&=+/ #"
    assert params["issuer"] == "a+b@shop.am"


def test_the_product_falls_back_to_the_reference(adapter: TelcellAdapter) -> None:
    started = adapter.start_hosted(CREDENTIALS, payment(description=None))

    assert started.next_action is not None
    assert started.next_action.url is not None
    product = link_params(started.next_action.url)["product"]
    assert base64.b64decode(product).decode() == "ORDER-42"


@given(
    drams=st.integers(min_value=1, max_value=10**9),
    description=TEXT,
    shop_key=TEXT,
    changed=st.sampled_from(["issuer", "price", "product", "issuer_id", "valid_days"]),
    replacement=TEXT,
)
def test_a_link_verifies_with_its_key_and_any_changed_field_does_not(
    drams: int, description: str, shop_key: str, changed: str, replacement: str
) -> None:
    adapter = TelcellAdapter(GatewaySettings("https://telcell.invalid", 1, 1))
    credentials = TelcellCredentials("shop@x.am", shop_key)
    started = adapter.start_hosted(
        credentials, payment(amount=Money(drams * 100, "AMD"), description=description)
    )
    assert started.next_action is not None
    assert started.next_action.url is not None
    params = link_params(started.next_action.url)

    assert params["price"] == str(drams)
    assert security_code(shop_key, params) == params["security_code"]
    if replacement != params[changed]:
        assert security_code(shop_key, {**params, changed: replacement}) != params["security_code"]


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        (Money(500050, "AMD"), "invalid_amount"),
        (Money(0, "AMD"), "invalid_amount"),
        (Money(500000, "KES"), "invalid_currency"),
    ],
)
def test_amounts_telcell_cannot_take_are_refused(
    adapter: TelcellAdapter, amount: Money, code: str
) -> None:
    with pytest.raises(MalipoError) as refused:
        adapter.check_amount(amount)
    assert refused.value.code == code

    started = adapter.start_hosted(CREDENTIALS, payment(amount=amount))

    assert (started.accepted, started.failure_code) == (False, code)


# -- the result's checksum ---------------------------------------------------------------------


@pytest.mark.parametrize("case", [str.lower, str.upper])
def test_a_right_checksum_verifies_in_either_case(adapter: TelcellAdapter, case: Any) -> None:
    fields = result()
    fields["checksum"] = case(fields["checksum"])

    assert adapter.verify_callback(CREDENTIALS, posted(fields)) is None


@given(
    values=st.fixed_dictionaries({name: TEXT for name in RESULT_CHECKSUM_FIELDS}),
    shop_key=TEXT,
    changed=st.sampled_from(RESULT_CHECKSUM_FIELDS),
    replacement=TEXT,
)
def test_a_checksum_verifies_and_any_changed_field_does_not(
    values: dict[str, str], shop_key: str, changed: str, replacement: str
) -> None:
    adapter = TelcellAdapter(GatewaySettings("https://telcell.invalid", 1, 1))
    credentials = TelcellCredentials("shop@x.am", shop_key)
    signed = {**values, "checksum": result_checksum(shop_key, values)}

    assert adapter.verify_callback(credentials, posted(signed)) is None
    if replacement != signed[changed]:
        tampered = {**signed, changed: replacement}
        assert adapter.verify_callback(credentials, posted(tampered)) == "checksum_mismatch"


def test_another_shop_key_does_not_verify(adapter: TelcellAdapter) -> None:
    other = TelcellCredentials(CREDENTIALS.shop_id, "another-key")

    assert adapter.verify_callback(other, posted(result())) == "checksum_mismatch"
    assert adapter.verify_callback(CREDENTIALS, posted(result(shop_key="x"))) == (
        "checksum_mismatch"
    )


def test_a_result_without_a_checksum_is_refused(adapter: TelcellAdapter) -> None:
    fields = {k: v for k, v in result().items() if k != "checksum"}

    assert adapter.verify_callback(CREDENTIALS, posted(fields)) == "checksum_missing"


def test_a_rejection_without_a_payment_id_is_hashed_with_an_empty_one(
    adapter: TelcellAdapter,
) -> None:
    fields = result(status="REJECTED", payment_id="")
    del fields["payment_id"]

    assert adapter.verify_callback(CREDENTIALS, posted(fields)) is None
    event = adapter.parse_callback(posted(fields))
    assert event.event_key == "telcell:4000000123:REJECTED"


# -- the result --------------------------------------------------------------------------------


def test_a_paid_result_is_a_success_for_our_reference(adapter: TelcellAdapter) -> None:
    event = adapter.parse_callback(posted(result()))

    assert event.event_key == "telcell:100000000777"
    assert (event.gateway_ref, event.secondary_ref) == (REFERENCE, "4000000123")
    assert event.verdict.outcome is Outcome.SUCCEEDED
    assert (event.verdict.result_code, event.verdict.failure_code) == ("PAID", None)
    assert event.verdict.amount == Money(500000, "AMD")
    assert event.verdict.receipt == "100000000777"


@pytest.mark.parametrize(
    ("status", "failure_code"),
    [
        ("REJECTED", "cancelled_by_user"),
        ("rejected", "cancelled_by_user"),
        ("EXPIRED", "transaction_expired"),
        ("SOMETHING_ELSE", "gateway_rejected"),
    ],
)
def test_every_other_status_is_a_failure(
    adapter: TelcellAdapter, status: str, failure_code: str
) -> None:
    event = adapter.parse_callback(posted(result(status=status)))

    assert event.verdict.outcome is Outcome.FAILED
    assert event.verdict.failure_code == failure_code
    assert event.verdict.result_code == status.upper()


@pytest.mark.parametrize("sum_", ["5000", "5000.00", "5000.0"])
def test_the_sum_is_read_in_drams(adapter: TelcellAdapter, sum_: str) -> None:
    assert adapter.parse_callback(posted(result(sum=sum_))).verdict.amount == Money(500000, "AMD")


@pytest.mark.parametrize("currency", ["֏", "AMD", "051"])
def test_the_dram_may_be_named_three_ways(adapter: TelcellAdapter, currency: str) -> None:
    assert adapter.parse_callback(posted(result(currency=currency))).gateway_ref == REFERENCE


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"issuer_id": ""}, "issuer_id"),
        ({"issuer_id": "not base64!"}, "issuer_id"),
        ({"issuer_id": base64.b64encode(b"\xff\xfe").decode()}, "issuer_id"),
        ({"status": ""}, "status"),
        ({"invoice": ""}, "invoice"),
        ({"sum": ""}, "sum"),
        ({"sum": "-5"}, "sum"),
        ({"sum": "1e3"}, "sum"),
        ({"sum": "0"}, "sum"),
        ({"currency": "USD"}, "currency"),
    ],
)
def test_a_malformed_result_is_refused(
    adapter: TelcellAdapter, changes: dict[str, str], reason: str
) -> None:
    with pytest.raises(CallbackMalformed, match=reason):
        adapter.parse_callback(posted(result(**changes)))


def test_the_kept_body_has_no_checksum_and_masks_phones(adapter: TelcellAdapter) -> None:
    fields = {**result(), "buyer": "37491123456", "note": "call 091 123456"}

    kept = json.loads(adapter.parse_callback(posted(fields)).masked_body)

    assert "checksum" not in kept
    assert kept["buyer"] == "*******3456"
    assert "091 123456" not in kept["note"]
    assert kept["issuer_id"] == ISSUER_ID
    assert CREDENTIALS.shop_key not in json.dumps(kept)


def test_the_same_result_twice_is_the_same_event(adapter: TelcellAdapter) -> None:
    assert adapter.parse_callback(posted(result())) == adapter.parse_callback(posted(result()))


def test_telcell_is_answered_plain_ok(adapter: TelcellAdapter) -> None:
    reply = adapter.acknowledgement(posted(result()))

    assert (reply.status, reply.body) == (200, b"OK")
