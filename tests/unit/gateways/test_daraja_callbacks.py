"""Reading Daraja STK callbacks, checked against the reference's samples and ResultCode table."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain import errors
from shared.domain.money import Money
from shared.gateways.base import CallbackEvent, CallbackMalformed, Outcome
from shared.gateways.daraja.callbacks import parse_stk_callback
from shared.gateways.daraja.codes import meaning_of
from tests.unit.properties import PROPERTY

CHECKOUT_ID = "ws_CO_021020261805069181954437"
MERCHANT_REQUEST_ID = "29115-34620561-1"

# The reference's success sample, byte for byte in its number forms (1.00, bare integers).
SUCCESS_BODY = (
    b'{"Body":{"stkCallback":{"MerchantRequestID":"29115-34620561-1",'
    b'"CheckoutRequestID":"ws_CO_021020261805069181954437","ResultCode":0,'
    b'"ResultDesc":"The service request is processed successfully.",'
    b'"CallbackMetadata":{"Item":[{"Name":"Amount","Value":1.00},'
    b'{"Name":"MpesaReceiptNumber","Value":"NLJ7RT61SV"},{"Name":"Balance"},'
    b'{"Name":"TransactionDate","Value":20191219102115},'
    b'{"Name":"PhoneNumber","Value":254708374149}]}}}}'
)
SUCCESS_ITEMS: list[dict[str, Any]] = json.loads(SUCCESS_BODY)["Body"]["stkCallback"][
    "CallbackMetadata"
]["Item"]

# The reference's ResultCode table, written out here independently of the product's codes.py:
# code -> (outcome, failure code). The table's words map onto the error catalogue as:
# "limit" -> limit_exceeded, "configuration" -> gateway_configuration,
# "cancelled by user" -> cancelled_by_user, "transaction expired" -> transaction_expired.
REFERENCE_TABLE: dict[str, tuple[Outcome, str | None]] = {
    "0": (Outcome.SUCCEEDED, None),
    "1": (Outcome.FAILED, "insufficient_funds"),
    "2": (Outcome.FAILED, "limit_exceeded"),
    "3": (Outcome.FAILED, "limit_exceeded"),
    "4": (Outcome.FAILED, "limit_exceeded"),
    "8": (Outcome.FAILED, "limit_exceeded"),
    "17": (Outcome.FAILED, "rule_limited"),
    "1019": (Outcome.EXPIRED, "transaction_expired"),
    "1025": (Outcome.FAILED, "push_error"),
    "9999": (Outcome.FAILED, "push_error"),
    "1032": (Outcome.CANCELLED, "cancelled_by_user"),
    "1037": (Outcome.EXPIRED, "customer_unreachable"),
    "2001": (Outcome.FAILED, "wrong_pin"),
    "2028": (Outcome.FAILED, "gateway_configuration"),
    "8006": (Outcome.FAILED, "gateway_configuration"),
    "SFC_IC0003": (Outcome.FAILED, "gateway_configuration"),
    "4999": (Outcome.PENDING, None),
}
# "1001, 26, 1036 (unverified): subscriber locked / system busy / SMSC ACK timeout — failed,
# retryable": the reference names no code, only that the customer may try again later.
RETRYABLE_FAILURES = {"1001", "26", "1036"}
RETRYABLE_CODES = {"subscriber_busy", "push_error"}
KNOWN_CODES = set(REFERENCE_TABLE) | RETRYABLE_FAILURES


def callback(
    *, result_code: object = 0, items: list[dict[str, Any]] | None = None, **stk: Any
) -> bytes:
    document: dict[str, Any] = {
        "MerchantRequestID": MERCHANT_REQUEST_ID,
        "CheckoutRequestID": CHECKOUT_ID,
        "ResultCode": result_code,
        "ResultDesc": "whatever the channel says",
    }
    if items is not None:
        document["CallbackMetadata"] = {"Item": items}
    document.update(stk)
    return json.dumps({"Body": {"stkCallback": document}}).encode()


def success_items(**values: Any) -> list[dict[str, Any]]:
    items = [dict(item) for item in SUCCESS_ITEMS]
    for item in items:
        if item["Name"] in values:
            item["Value"] = values[item["Name"]]
    return items


def assert_valid_event(event: CallbackEvent) -> None:
    assert isinstance(event, CallbackEvent)
    assert event.gateway_ref
    assert event.event_key == f"stk:{event.gateway_ref}:{event.verdict.result_code}"
    assert event.verdict.outcome in set(Outcome)
    if event.verdict.outcome in (Outcome.SUCCEEDED, Outcome.PENDING):
        assert event.verdict.failure_code is None
    else:
        assert event.verdict.failure_code is not None
        errors.lookup(event.verdict.failure_code)  # a catalogue code
    assert event.verdict.amount is None or event.verdict.amount.currency == "KES"


# --- the success sample -------------------------------------------------------------------


def test_the_reference_success_sample_is_read() -> None:
    # Given the reference's success callback
    # When it is parsed
    event = parse_stk_callback(SUCCESS_BODY)
    # Then it is a success for the CheckoutRequestID, with the amount, receipt and phone
    assert event.gateway_ref == CHECKOUT_ID
    assert event.secondary_ref == MERCHANT_REQUEST_ID
    assert event.event_key == f"stk:{CHECKOUT_ID}:0"
    verdict = event.verdict
    assert verdict.outcome == Outcome.SUCCEEDED
    assert verdict.result_code == "0"
    assert verdict.failure_code is None
    assert verdict.amount == Money(100, "KES")
    assert verdict.receipt == "NLJ7RT61SV"
    assert verdict.phone == "254708374149"
    assert verdict.message == "The service request is processed successfully."


@settings(PROPERTY, max_examples=100)
@given(items=st.permutations(SUCCESS_ITEMS))
def test_item_order_does_not_matter(items: list[dict[str, Any]]) -> None:
    # Given the success sample with its metadata items in any order
    reference = parse_stk_callback(SUCCESS_BODY)
    # When it is parsed
    event = parse_stk_callback(callback(items=items, ResultDesc=reference.verdict.message))
    # Then the result is the same as for the reference order
    assert event.verdict == reference.verdict
    assert event.event_key == reference.event_key
    assert event.gateway_ref == reference.gateway_ref


def test_values_as_strings_read_the_same() -> None:
    # Given the success sample with every value sent as a string
    items = success_items(
        Amount="1.00", PhoneNumber="254708374149", TransactionDate="20191219102115"
    )
    # When it is parsed
    verdict = parse_stk_callback(callback(items=items)).verdict
    # Then amount, receipt and phone are as in the numeric sample
    assert verdict.amount == Money(100, "KES")
    assert verdict.receipt == "NLJ7RT61SV"
    assert verdict.phone == "254708374149"


@pytest.mark.parametrize("amount", [1, 1.0, "1", "1.00", " 1.00 ", "1.0"])
def test_amount_forms_are_read_exactly(amount: object) -> None:
    verdict = parse_stk_callback(callback(items=success_items(Amount=amount))).verdict
    assert verdict.amount == Money(100, "KES")


def test_balance_without_value_is_fine() -> None:
    # Given a sample whose only Balance item has no Value, and one with Value null
    for balance in ({"Name": "Balance"}, {"Name": "Balance", "Value": None}):
        items = [i for i in SUCCESS_ITEMS if i["Name"] != "Balance"] + [balance]
        # Then it parses, as a success with the amount
        verdict = parse_stk_callback(callback(items=items)).verdict
        assert verdict.outcome == Outcome.SUCCEEDED
        assert verdict.amount == Money(100, "KES")


def test_a_masked_phone_is_kept_as_sent() -> None:
    # Given a callback whose phone arrives masked by Safaricom
    verdict = parse_stk_callback(callback(items=success_items(PhoneNumber="254722000***"))).verdict
    # Then it is not refused, and the masked value is what is kept
    assert verdict.phone == "254722000***"


@pytest.mark.parametrize("result_code", [0, "0", " 0 "], ids=repr)
def test_result_code_as_int_or_string(result_code: object) -> None:
    event = parse_stk_callback(callback(result_code=result_code, items=success_items()))
    assert event.verdict.outcome == Outcome.SUCCEEDED
    assert event.verdict.result_code == "0"
    assert event.event_key == f"stk:{CHECKOUT_ID}:0"


def test_a_failure_has_no_metadata() -> None:
    # Given the failure envelope: same shape, no CallbackMetadata
    event = parse_stk_callback(callback(result_code=1032))
    # Then it is read as cancelled with nothing about amount, receipt or phone
    assert event.verdict.outcome == Outcome.CANCELLED
    assert (event.verdict.amount, event.verdict.receipt, event.verdict.phone) == (None, None, None)


# --- ResultCodes ----------------------------------------------------------------------------


def code_forms(code: str) -> list[object]:
    """A callback sends numbers, a query sends strings: both must mean the same."""
    return [code, int(code)] if code.isdigit() else [code]


@pytest.mark.parametrize("code", sorted(REFERENCE_TABLE))
def test_each_reference_result_code_means_what_the_table_says(code: str) -> None:
    outcome, failure = REFERENCE_TABLE[code]
    for sent in code_forms(code):
        # Given a callback with this ResultCode (as a number or a string)
        event = parse_stk_callback(callback(result_code=sent))
        # Then its outcome and failure code are the table's
        assert (event.verdict.outcome, event.verdict.failure_code) == (outcome, failure), sent
        # and a query's string code means the same
        meaning = meaning_of(str(sent))
        assert (meaning.outcome, meaning.failure_code) == (outcome, failure)
    assert failure is None or errors.lookup(failure)


@pytest.mark.parametrize("code", sorted(RETRYABLE_FAILURES))
def test_retryable_result_codes_are_retryable_failures(code: str) -> None:
    for sent in code_forms(code):
        verdict = parse_stk_callback(callback(result_code=sent)).verdict
        assert verdict.outcome == Outcome.FAILED
        assert verdict.failure_code in RETRYABLE_CODES


@settings(PROPERTY, max_examples=300)
@given(
    code=st.one_of(
        st.integers(-(10**12), 10**12).map(str),
        st.text(
            alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12
        ),
    ).filter(lambda code: code not in KNOWN_CODES)
)
def test_unknown_result_codes_are_gateway_errors(code: str) -> None:
    # Given a ResultCode the reference does not list
    event = parse_stk_callback(callback(result_code=code))
    # Then it is a failure with gateway_error (never a success or a silent pending)
    assert event.verdict.outcome == Outcome.FAILED
    assert event.verdict.failure_code == "gateway_error"
    assert event.event_key == f"stk:{CHECKOUT_ID}:{code}"


@settings(PROPERTY, max_examples=200)
@given(
    checkout_id=st.from_regex(r"ws_CO_[0-9]{10,30}", fullmatch=True),
    code=st.sampled_from(sorted(KNOWN_CODES)),
)
def test_event_key_names_checkout_request_and_result_code(checkout_id: str, code: str) -> None:
    event = parse_stk_callback(callback(result_code=code, CheckoutRequestID=checkout_id))
    assert event.event_key == f"stk:{checkout_id}:{code}"
    assert event.gateway_ref == checkout_id


# --- stored bodies are masked ------------------------------------------------------------------


def test_masked_body_hides_the_phone_but_keeps_ids() -> None:
    masked = parse_stk_callback(SUCCESS_BODY).masked_body
    assert "708374149" not in masked
    assert "2547****4149" in masked
    assert CHECKOUT_ID in masked
    assert "20191219102115" in masked
    assert "NLJ7RT61SV" in masked


@settings(PROPERTY, max_examples=200)
@given(
    lead=st.sampled_from("71"),
    rest=st.from_regex(r"[0-9]{8}", fullmatch=True),
    as_int=st.booleans(),
)
def test_masked_body_never_holds_a_full_msisdn(lead: str, rest: str, as_int: bool) -> None:
    # Given a success callback from any subscriber, the phone as a number or a string
    msisdn = "254" + lead + rest
    phone: object = int(msisdn) if as_int else msisdn
    event = parse_stk_callback(callback(items=success_items(PhoneNumber=phone)))
    # Then the stored body cannot reveal it
    assert lead + rest not in event.masked_body


# --- malformed bodies ---------------------------------------------------------------------------


def stk(**fields: Any) -> bytes:
    return json.dumps({"Body": {"stkCallback": fields}}).encode()


MALFORMED = {
    "not-json": b"not json",
    "empty": b"",
    "invalid-utf8": b"\xff\xfe\xfa",
    "truncated": SUCCESS_BODY[:-3],
    "json-array": b"[]",
    "json-array-of-callback": b"[" + SUCCESS_BODY + b"]",
    "json-string": b'"Body"',
    "json-null": b"null",
    "json-number": b"0",
    "empty-object": b"{}",
    "missing-body": json.dumps({"stkCallback": {"CheckoutRequestID": CHECKOUT_ID}}).encode(),
    "body-not-object": b'{"Body": "stkCallback"}',
    "missing-stkcallback": b'{"Body": {}}',
    "stkcallback-list": b'{"Body": {"stkCallback": []}}',
    "stkcallback-string": b'{"Body": {"stkCallback": "x"}}',
    "missing-checkout-id": stk(ResultCode=0),
    "checkout-id-null": stk(CheckoutRequestID=None, ResultCode=0),
    "checkout-id-empty": stk(CheckoutRequestID="", ResultCode=0),
    "checkout-id-blank": stk(CheckoutRequestID="   ", ResultCode=0),
    "checkout-id-bool": stk(CheckoutRequestID=True, ResultCode=0),
    "checkout-id-object": stk(CheckoutRequestID={"id": 1}, ResultCode=0),
    "checkout-id-too-long": stk(CheckoutRequestID="ws_CO_" + "9" * 200, ResultCode=0),
    "missing-result-code": stk(CheckoutRequestID=CHECKOUT_ID),
    "result-code-null": stk(CheckoutRequestID=CHECKOUT_ID, ResultCode=None),
    "result-code-bool": stk(CheckoutRequestID=CHECKOUT_ID, ResultCode=False),
    "result-code-float": stk(CheckoutRequestID=CHECKOUT_ID, ResultCode=0.5),
    "result-code-list": stk(CheckoutRequestID=CHECKOUT_ID, ResultCode=[0]),
    "item-not-list-object": callback(CallbackMetadata={"Item": {"Name": "Amount", "Value": 1}}),
    "item-not-list-string": callback(CallbackMetadata={"Item": "Amount=1"}),
    "amount-abc": callback(items=success_items(Amount="abc")),
    "amount-too-precise": callback(items=success_items(Amount="1.005")),
    "amount-nan": b'{"Body":{"stkCallback":{"CheckoutRequestID":"x","ResultCode":0,'
    b'"CallbackMetadata":{"Item":[{"Name":"Amount","Value":NaN}]}}}}',
    "amount-infinite": callback(items=success_items(Amount=1e400)),
    "amount-object": callback(items=success_items(Amount={"value": 1})),
    "amount-bool": callback(items=success_items(Amount=True)),
    "receipt-object": callback(items=success_items(MpesaReceiptNumber={"r": 1})),
    "receipt-empty": callback(items=success_items(MpesaReceiptNumber="")),
}


@pytest.mark.parametrize("body", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_bodies_raise_callback_malformed(body: bytes) -> None:
    # Given a body that is not a readable Daraja STK callback
    # When it is parsed
    # Then CallbackMalformed is raised (and nothing else)
    with pytest.raises(CallbackMalformed):
        parse_stk_callback(body)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 20_000,
        b'{"Body":' * 10_000,
        b'{"Body":{"stkCallback":{"CheckoutRequestID":"x","ResultCode":0,"ResultDesc":'
        + b"[" * 16_000,
    ],
    ids=["arrays", "objects", "inside-stkcallback"],
)
def test_deeply_nested_bodies_raise_callback_malformed(body: bytes) -> None:
    # Given a small body (≤ 16 KiB, the ingress limit) nested deeper than the JSON parser can go
    # When it is parsed
    # Then it is malformed like any other unreadable body
    with pytest.raises(CallbackMalformed):
        parse_stk_callback(body)


def parse_or_malformed(body: bytes) -> None:
    try:
        event = parse_stk_callback(body)
    except CallbackMalformed:
        return
    assert_valid_event(event)


@settings(PROPERTY, max_examples=300)
@given(body=st.binary(max_size=200))
def test_arbitrary_bytes_give_an_event_or_callback_malformed(body: bytes) -> None:
    parse_or_malformed(body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
stk_names = st.sampled_from(
    ["MerchantRequestID", "CheckoutRequestID", "ResultCode", "ResultDesc", "CallbackMetadata"]
)
item_names = st.sampled_from(
    ["Amount", "MpesaReceiptNumber", "Balance", "TransactionDate", "PhoneNumber", "Other"]
)
items_like = st.lists(
    st.one_of(
        st.fixed_dictionaries({"Name": item_names}, optional={"Value": json_values}),
        json_values,
    ),
    max_size=6,
)
stk_like = st.fixed_dictionaries(
    {
        "CheckoutRequestID": st.one_of(st.just(CHECKOUT_ID), json_values),
        "ResultCode": st.one_of(st.sampled_from(sorted(KNOWN_CODES)), st.integers(), json_values),
    },
    optional={
        "MerchantRequestID": json_values,
        "ResultDesc": json_values,
        "CallbackMetadata": st.one_of(
            st.fixed_dictionaries({"Item": st.one_of(items_like, json_values)}), json_values
        ),
        "Extra": json_values,
    },
)


@settings(PROPERTY, max_examples=400)
@given(
    document=st.one_of(
        json_values,
        st.dictionaries(st.sampled_from(["Body", "body"]), json_values, max_size=1),
        st.fixed_dictionaries({"Body": st.fixed_dictionaries({"stkCallback": json_values})}),
        st.fixed_dictionaries({"Body": st.fixed_dictionaries({"stkCallback": stk_like})}),
        st.dictionaries(stk_names, json_values).map(lambda s: {"Body": {"stkCallback": s}}),
    )
)
def test_arbitrary_json_gives_an_event_or_callback_malformed(document: Any) -> None:
    # Given any JSON document, from garbage to almost-right callbacks
    # When it is parsed
    # Then it is either a consistent event or CallbackMalformed — never another exception
    parse_or_malformed(json.dumps(document).encode())


def test_full_msisdn_never_reaches_the_masked_body_of_any_parsed_callback() -> None:
    body = callback(
        items=success_items(PhoneNumber="0708374149"), ResultDesc="sent to +254708374149"
    )
    masked = parse_stk_callback(body).masked_body
    assert not re.search(r"708374149", masked)
