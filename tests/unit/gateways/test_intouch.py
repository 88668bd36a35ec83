"""InTouch (TouchPay / GU): SDK parameters, callbacks, Basic proof, status and push mapping."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.errors import MalipoError
from shared.domain.money import Money
from shared.gateways import catalogue
from shared.gateways.base import (
    CallbackMalformed,
    Capability,
    CustomerDetails,
    GatewayOutcomeUnknown,
    GatewayUnavailable,
    InboundCallback,
    Outcome,
    PaymentRequest,
    ReturnUrls,
)
from shared.gateways.description import GatewaySettings
from shared.gateways.intouch import DESCRIPTION, codes
from shared.gateways.intouch.callbacks import mask_text
from shared.gateways.intouch.client import InTouchAdapter
from shared.gateways.intouch.credentials import InTouchCredentials
from shared.gateways.intouch.touchpay import SDK_PARAMETERS
from shared.gateways.intouch.wire import MAX_FRANCS
from shared.gateways.transport import Answer

STORED = dict(DESCRIPTION.simulator_credentials)
CREDENTIALS = InTouchCredentials.from_stored(STORED)
VERIFIERS = DESCRIPTION.callback_verifiers(STORED)
ORDER = "0b7f3c9e-6a52-4d2e-9a8f-6a1c2b3d4e5f"


@pytest.fixture
def adapter() -> InTouchAdapter:
    return InTouchAdapter(GatewaySettings("http://intouch.invalid/apidist/sec", 1, 1))


def payment(**changes: Any) -> PaymentRequest:
    fields: dict[str, Any] = {
        "payment_id": str(uuid.uuid4()),
        "attempt_ref": ORDER,
        "amount": Money(1500, "XOF"),
        "phone": "221771234567",
        "reference": "ORDER-42",
        "description": None,
        "callback_url": "https://malipo.example/callbacks/intouch/s3cret/attempt",
        "customer": CustomerDetails("Awa", "Diop", "awa@example.com", "Dakar"),
        "return_urls": ReturnUrls("https://shop.example/ok", "https://shop.example/ko"),
    }
    return PaymentRequest(**{**fields, **changes})


def callback(
    query: dict[str, str] | None = None,
    body: bytes = b"",
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> InboundCallback:
    return InboundCallback(
        method=method,
        query_string=urlencode(query or {}),
        body=body,
        headers=headers or {},
        remote_addr="203.0.113.7",
        path_secret="s3cret",
    )


def touchpay_fields(status: str = "200", **changes: str) -> dict[str, str]:
    return {
        "payment_mode": "ORANGE_MONEY_SN",
        "paid_sum": "22200.0",
        "paid_amount": "22200.0",
        "payment_token": "1565789012345",
        "payment_status": status,
        "command_number": ORDER,
        "payment_validation_date": "1717171717171",
        **changes,
    }


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- the description --------------------------------------------------------------------------


def test_the_catalogue_finds_intouch_with_hosted_as_its_default_flow() -> None:
    description = catalogue.describe("intouch")

    assert description is DESCRIPTION
    assert description.default_flow is Capability.HOSTED
    assert description.flows == (Capability.PUSH, Capability.HOSTED)
    assert description.phone_regions[0] == "SN"
    assert set(description.currencies) == {"XOF", "XAF"}
    assert description.confirm_before_credit
    secrets = {f.name for f in description.credentials if f.secret}
    assert secrets == {"secure_code", "password_agent", "password_api", "callback_password"}


def test_the_verifier_is_the_sha256_of_the_basic_credentials() -> None:
    import hashlib

    expected = hashlib.sha256(b"sandbox-touchpay:sandbox-touchpay-password").hexdigest()
    assert {"basic_sha256": expected} == VERIFIERS


# -- credentials and amounts ------------------------------------------------------------------


def test_credentials_need_every_required_value_and_hide_their_secrets() -> None:
    with pytest.raises(ValueError, match="secure_code"):
        InTouchCredentials.from_stored({**STORED, "secure_code": ""})
    with pytest.raises(ValueError, match="':'"):
        InTouchCredentials.from_stored({**STORED, "callback_username": "a:b"})
    with pytest.raises(ValueError, match="currency"):
        InTouchCredentials.from_stored({**STORED, "currency": "EUR"})
    assert "password" not in repr(CREDENTIALS)
    assert STORED["secure_code"] not in repr(CREDENTIALS)


def test_push_only_values_are_optional() -> None:
    hosted_only = {
        k: v
        for k, v in STORED.items()
        if k not in ("login_agent", "password_agent", "service_code")
    }

    credentials = InTouchCredentials.from_stored(hosted_only)

    assert not credentials.can_push
    assert CREDENTIALS.can_push


@given(
    francs=st.integers(min_value=1, max_value=MAX_FRANCS), currency=st.sampled_from(["XOF", "XAF"])
)
def test_any_cfa_amount_in_range_is_whole_francs(francs: int, currency: str) -> None:
    adapter = InTouchAdapter(GatewaySettings("http://intouch.invalid", 1, 1))
    adapter.check_amount(Money(francs, currency))

    started = adapter.start_hosted(CREDENTIALS, payment(amount=Money(francs, currency)))

    assert started.next_action is not None
    assert started.next_action.parameters["amount"] == francs


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        (Money(1500, "KES"), "invalid_currency"),
        (Money(0, "XOF"), "invalid_amount"),
        (Money(-5, "XAF"), "invalid_amount"),
        (Money(MAX_FRANCS + 1, "XOF"), "amount_out_of_range"),
    ],
)
def test_other_amounts_are_refused(adapter: InTouchAdapter, amount: Money, code: str) -> None:
    with pytest.raises(MalipoError) as refused:
        adapter.check_amount(amount)

    assert refused.value.code == code


# -- TouchPay's SDK parameters ----------------------------------------------------------------


def test_the_sdk_gets_exactly_its_twelve_parameters_from_the_request(
    adapter: InTouchAdapter,
) -> None:
    started = adapter.start_hosted(CREDENTIALS, payment())

    assert started.accepted
    assert started.gateway_ref == ORDER
    action = started.next_action
    assert action is not None
    assert action.type == "sdk"
    assert action.url == adapter.sdk_url
    assert tuple(action.parameters) == SDK_PARAMETERS
    assert len(action.parameters) == 12
    assert dict(action.parameters) == {
        "order_number": ORDER,
        "agency_code": "SNSANDBOX01",
        "secure_code": "sandbox-secure-code-7f3a9c2e",
        "domain_name": "localhost",
        "url_redirection_success": "https://shop.example/ok",
        "url_redirection_failed": "https://shop.example/ko",
        "amount": 1500,
        "city": "Dakar",
        "email": "awa@example.com",
        "clientFirstName": "Awa",
        "clientLastName": "Diop",
        "clientPhone": "771234567",  # national: TouchPay's page is the agency's country's
    }
    assert action.to_json()["parameters"]["amount"] == 1500


def test_unknown_customer_details_are_empty_strings(adapter: InTouchAdapter) -> None:
    started = adapter.start_hosted(CREDENTIALS, payment(customer=CustomerDetails()))

    assert started.next_action is not None
    parameters = started.next_action.parameters
    assert [parameters[n] for n in ("city", "email", "clientFirstName", "clientLastName")] == [
        "",
        "",
        "",
        "",
    ]


@pytest.mark.parametrize(
    ("phone", "national"),
    [("2250701234567", "0701234567"), ("237671234567", "671234567"), ("22670123456", "70123456")],
)
def test_phones_go_to_the_sdk_in_national_form(
    adapter: InTouchAdapter, phone: str, national: str
) -> None:
    started = adapter.start_hosted(CREDENTIALS, payment(phone=phone))

    assert started.next_action is not None
    assert started.next_action.parameters["clientPhone"] == national


def test_without_return_urls_the_hosted_start_is_refused(adapter: InTouchAdapter) -> None:
    started = adapter.start_hosted(CREDENTIALS, payment(return_urls=None))

    assert (started.accepted, started.failure_code) == (False, "invalid_request")
    assert started.next_action is None


def test_a_non_cfa_amount_is_refused_at_the_hosted_start(adapter: InTouchAdapter) -> None:
    started = adapter.start_hosted(CREDENTIALS, payment(amount=Money(1500, "KES")))

    assert (started.accepted, started.failure_code) == (False, "invalid_currency")


# -- callbacks: TouchPay ----------------------------------------------------------------------


def test_a_touchpay_get_callback_is_read_from_its_query_string(adapter: InTouchAdapter) -> None:
    event = adapter.parse_callback(callback(touchpay_fields()))

    assert event.event_key == f"touchpay:{ORDER}:200"
    assert (event.gateway_ref, event.secondary_ref) == (ORDER, "1565789012345")
    assert event.verdict.outcome is Outcome.SUCCEEDED
    assert event.verdict.receipt == "1565789012345"
    assert event.verdict.amount is None  # no currency in the callback: check_status decides


def test_a_touchpay_callback_as_json_reads_the_same(adapter: InTouchAdapter) -> None:
    body = json.dumps(touchpay_fields()).encode()

    event = adapter.parse_callback(
        callback(body=body, method="POST", headers={"content-type": "application/json"})
    )

    assert event.event_key == f"touchpay:{ORDER}:200"


def test_a_touchpay_callback_as_a_form_reads_the_same(adapter: InTouchAdapter) -> None:
    body = urlencode(touchpay_fields("420")).encode()
    headers = {"content-type": "application/x-www-form-urlencoded"}

    event = adapter.parse_callback(callback(body=body, method="POST", headers=headers))

    assert event.event_key == f"touchpay:{ORDER}:420"
    assert event.verdict.outcome is Outcome.FAILED
    assert event.verdict.failure_code == "gateway_rejected"


def test_query_and_json_body_together_must_agree(adapter: InTouchAdapter) -> None:
    agreeing = json.dumps(touchpay_fields()).encode()
    assert adapter.parse_callback(callback(touchpay_fields(), agreeing)).gateway_ref == ORDER

    disagreeing = json.dumps(touchpay_fields("420")).encode()
    with pytest.raises(CallbackMalformed, match="payment_status"):
        adapter.parse_callback(callback(touchpay_fields(), disagreeing))


@pytest.mark.parametrize("status", ["420", "300", "", "FAILED"])
def test_any_touchpay_status_but_200_is_a_failure(adapter: InTouchAdapter, status: str) -> None:
    if not status:
        with pytest.raises(CallbackMalformed):
            adapter.parse_callback(callback(touchpay_fields(status)))
        return
    event = adapter.parse_callback(callback(touchpay_fields(status)))

    assert event.verdict.outcome is Outcome.FAILED
    assert event.event_key == f"touchpay:{ORDER}:{status}"


@given(
    order=st.text(alphabet="0123456789abcdef-", min_size=1, max_size=60),
    status=st.sampled_from(["200", "420", "300"]),
)
def test_event_keys_are_the_order_and_status(order: str, status: str) -> None:
    adapter = InTouchAdapter(GatewaySettings("http://intouch.invalid", 1, 1))

    event = adapter.parse_callback(callback(touchpay_fields(status, command_number=order)))

    assert event.event_key == f"touchpay:{order}:{status}"
    assert event.gateway_ref == order


# -- callbacks: GU ----------------------------------------------------------------------------


def gu_body(status: str | None = "SUCCESSFUL", **changes: object) -> bytes:
    document = {
        "service_id": "SN_PAIEMENTMARCHAND_OM_TP",
        "gu_transaction_id": "GU000000012345",
        "status": status,
        "partner_transaction_id": ORDER,
        "call_back_url": "https://malipo.example/callbacks/intouch/s3cret/attempt",
        "commission": "0",
        "message": "Transaction réussie",
        **changes,
    }
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("SUCCESSFUL", Outcome.SUCCEEDED),
        ("FAILED", Outcome.FAILED),
        ("PENDING", Outcome.PENDING),
        ("SOMETHING_NEW", Outcome.PENDING),  # unknown: the status API decides
    ],
)
def test_a_gu_callback_is_read_from_its_json(
    adapter: InTouchAdapter, status: str, outcome: Outcome
) -> None:
    event = adapter.parse_callback(callback(body=gu_body(status), method="POST"))

    assert event.event_key == f"gu:{ORDER}:{status}"
    assert (event.gateway_ref, event.secondary_ref) == (ORDER, "GU000000012345")
    assert event.verdict.outcome is outcome
    assert event.verdict.message == "Transaction réussie"


@pytest.mark.parametrize(
    "inbound",
    [
        callback(),
        callback(body=b"[1, 2]", method="POST"),
        callback(body=b"\xff\xfe not text", method="POST"),
        callback(body=b'{"hello": "world"}', method="POST"),
        callback(body=gu_body(status=None), method="POST"),
        callback(body=gu_body(partner_transaction_id="x" * 101), method="POST"),
        callback(touchpay_fields(paid_amount="lots")),
        callback({"command_number": ORDER}),
    ],
)
def test_unreadable_callbacks_are_malformed(
    adapter: InTouchAdapter, inbound: InboundCallback
) -> None:
    with pytest.raises(CallbackMalformed):
        adapter.parse_callback(inbound)


def test_stored_bodies_mask_phone_numbers(adapter: InTouchAdapter) -> None:
    body = gu_body(recipientNumber="771234567", message="payé par +221 77 123 45 67")

    event = adapter.parse_callback(callback({"clientPhone": "2250701234567"}, body, method="POST"))

    stored = json.loads(event.masked_body)
    assert "771234567" not in event.masked_body
    assert "0701234567" not in event.masked_body
    assert "77 123 45 67" not in event.masked_body
    assert stored["body"]["partner_transaction_id"] == ORDER  # ids stay whole
    assert stored["query"]["clientPhone"].endswith("67")


def test_the_shared_masker_still_masks_kenyan_numbers() -> None:
    assert "0712345678" not in mask_text("from 0712345678")


# -- callbacks: HTTP Basic --------------------------------------------------------------------


def with_authorization(value: str | None) -> InboundCallback:
    headers = {} if value is None else {"authorization": value}
    return callback(touchpay_fields(), headers=headers)


def test_the_merchants_basic_credentials_are_accepted(adapter: InTouchAdapter) -> None:
    inbound = with_authorization(basic("sandbox-touchpay", "sandbox-touchpay-password"))

    assert adapter.authenticate_callback(VERIFIERS, inbound) is None


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "basic_auth_missing"),
        ("", "basic_auth_missing"),
        ("Bearer abc", "basic_auth_missing"),
        ("Basic", "basic_auth_missing"),
        (basic("sandbox-touchpay", "wrong"), "basic_auth_invalid"),
        (basic("someone", "sandbox-touchpay-password"), "basic_auth_invalid"),
        ("Basic !!!not-base64!!!", "basic_auth_invalid"),
        ("Basic " + base64.b64encode(b"no-colon").decode(), "basic_auth_invalid"),
        ("Basic " + base64.b64encode(b"\xff\xfe:x").decode(), "basic_auth_invalid"),
    ],
)
def test_other_authorization_headers_are_refused(
    adapter: InTouchAdapter, header: str | None, reason: str
) -> None:
    assert adapter.authenticate_callback(VERIFIERS, with_authorization(header)) == reason


def test_a_merchant_without_a_verifier_is_refused(adapter: InTouchAdapter) -> None:
    inbound = with_authorization(basic("sandbox-touchpay", "sandbox-touchpay-password"))

    assert adapter.authenticate_callback({}, inbound) == "basic_auth_invalid"


@given(
    user=st.text(min_size=1, max_size=30).filter(lambda u: ":" not in u),
    password=st.text(min_size=1, max_size=30),
)
def test_basic_credentials_round_trip(user: str, password: str) -> None:
    adapter = InTouchAdapter(GatewaySettings("http://intouch.invalid", 1, 1))
    verifiers = DESCRIPTION.callback_verifiers(
        {"callback_username": user, "callback_password": password}
    )

    assert (
        adapter.authenticate_callback(verifiers, with_authorization(basic(user, password))) is None
    )
    wrong = with_authorization(basic(user, password + "x"))
    assert adapter.authenticate_callback(verifiers, wrong) == "basic_auth_invalid"


def test_the_acknowledgement_is_a_plain_ok(adapter: InTouchAdapter) -> None:
    reply = adapter.acknowledgement(callback(touchpay_fields()))

    assert (reply.status, reply.body) == (200, b"OK")
    assert reply.content_type.startswith("text/plain")


# -- check_status and push, on a stub transport -----------------------------------------------


Calls = list[dict[str, Any]]


def answering(adapter: InTouchAdapter, answer: Answer | Exception) -> Calls:
    calls: Calls = []

    def call(method: str, path: str, **kw: Any) -> Answer:
        calls.append({"method": method, "path": path, **kw})
        if isinstance(answer, Exception):
            raise answer
        return answer

    adapter.http.call = call  # type: ignore[method-assign]
    return calls


@pytest.mark.parametrize(
    ("document", "outcome", "failure_code", "result_code"),
    [
        ({"code": 200, "status": "SUCCESSFUL"}, Outcome.SUCCEEDED, None, "200"),
        ({"code": "201", "status": "PENDING"}, Outcome.PENDING, None, "201"),
        ({"code": 203, "message": "duplicate"}, Outcome.PENDING, None, "203"),
        ({"code": 300, "status": "FAILED"}, Outcome.FAILED, "gateway_rejected", "300"),
        ({"status": "SUCCESSFUL"}, Outcome.SUCCEEDED, None, "SUCCESSFUL"),
    ],
)
def test_check_status_codes_map_to_outcomes(
    adapter: InTouchAdapter,
    document: dict[str, Any],
    outcome: Outcome,
    failure_code: str | None,
    result_code: str,
) -> None:
    calls = answering(adapter, Answer(200, {**document, "amount": "22200.0"}))

    status = adapter.query_status(CREDENTIALS, ORDER)

    assert status.gateway_ref == ORDER
    assert status.verdict.outcome is outcome
    assert status.verdict.failure_code == failure_code
    assert status.verdict.result_code == result_code
    [call] = calls
    assert (call["method"], call["path"], call["idempotent"]) == (
        "POST",
        "/v1/SNSANDBOX01/check_status",
        True,
    )
    assert call["json"] == {
        "partner_id": "SANDBOX-PARTNER-01",
        "partner_transaction_id": ORDER,
        "login_api": "sandbox-api",
        "password_api": "sandbox-api-password",
    }


def test_the_status_amount_needs_the_agencys_currency(adapter: InTouchAdapter) -> None:
    answering(adapter, Answer(200, {"code": 200, "amount": "22200.0"}))
    assert adapter.query_status(CREDENTIALS, ORDER).verdict.amount == Money(22200, "XOF")

    unknown_currency = InTouchCredentials.from_stored({**STORED, "currency": ""})
    assert adapter.query_status(unknown_currency, ORDER).verdict.amount is None


@pytest.mark.parametrize(
    "answer",
    [Answer(401, {"message": "no"}), Answer(500, None, text="oops"), GatewayUnavailable("down")],
)
def test_a_status_without_a_readable_answer_is_unavailable(
    adapter: InTouchAdapter, answer: Answer | Exception
) -> None:
    answering(adapter, answer)

    with pytest.raises(GatewayUnavailable):
        adapter.query_status(CREDENTIALS, ORDER)


@pytest.mark.parametrize(
    "answer",
    [
        Answer(404, {"code": 404, "status": "NOT_FOUND"}),
        Answer(404, None),
        Answer(200, {"code": 404}),
        Answer(200, {"status": "not_found"}),
    ],
)
def test_a_status_for_an_order_intouch_does_not_know_is_pending(
    adapter: InTouchAdapter, answer: Answer
) -> None:
    answering(adapter, answer)

    verdict = adapter.query_status(CREDENTIALS, ORDER).verdict

    assert (verdict.outcome, verdict.result_code) == (Outcome.PENDING, "not_found")


def test_an_initiated_push_is_accepted_with_both_ids(adapter: InTouchAdapter) -> None:
    calls = answering(
        adapter, Answer(200, {"idFromClient": ORDER, "idFromGU": "GU123", "status": "INITIATED"})
    )

    result = adapter.push(CREDENTIALS, payment())

    assert (result.accepted, result.gateway_ref, result.secondary_ref) == (True, ORDER, "GU123")
    [call] = calls
    assert (call["method"], call["path"], call["idempotent"]) == (
        "PUT",
        "/touchpayapi/SNSANDBOX01/transaction",
        False,
    )
    assert call["params"] == {
        "loginAgent": "sandbox-agent",
        "passwordAgent": "sandbox-agent-password",
    }
    assert (call["auth"].username, call["auth"].password) == ("sandbox-api", "sandbox-api-password")
    assert call["json"] == {
        "idFromClient": ORDER,
        "amount": 1500,
        "callback": "https://malipo.example/callbacks/intouch/s3cret/attempt",
        "recipientNumber": "771234567",
        "serviceCode": "SN_PAIEMENTMARCHAND_OM_TP",
        "additionnalInfos": {
            "recipientEmail": "awa@example.com",
            "recipientFirstName": "Awa",
            "recipientLastName": "Diop",
            "destinataire": "771234567",
        },
    }


@pytest.mark.parametrize(
    ("answer", "failure_code"),
    [
        (Answer(401, None), "gateway_configuration"),
        (Answer(403, {"message": "forbidden"}), "gateway_configuration"),
        (Answer(400, {"status": "FAILED", "message": "bad serviceCode"}), "gateway_rejected"),
        (Answer(409, {"status": "FAILED"}), "gateway_rejected"),
        (Answer(200, {"status": "FAILED", "message": "refused"}), "gateway_rejected"),
    ],
)
def test_push_refusals(adapter: InTouchAdapter, answer: Answer, failure_code: str) -> None:
    answering(adapter, answer)

    result = adapter.push(CREDENTIALS, payment())

    assert (result.accepted, result.failure_code) == (False, failure_code)


@pytest.mark.parametrize(
    ("answer", "raised"),
    [
        (Answer(503, None), GatewayUnavailable),
        (Answer(429, None), GatewayUnavailable),
        (Answer(500, None), GatewayOutcomeUnknown),
        (Answer(504, None), GatewayOutcomeUnknown),
        (Answer(200, None, text="<html>"), GatewayOutcomeUnknown),
        (Answer(200, {"status": "WHO_KNOWS"}), GatewayOutcomeUnknown),
    ],
)
def test_push_answers_that_may_have_been_acted_on_are_not_refusals(
    adapter: InTouchAdapter, answer: Answer, raised: type[Exception]
) -> None:
    answering(adapter, answer)

    with pytest.raises(raised):
        adapter.push(CREDENTIALS, payment())


def test_a_push_without_agent_credentials_calls_nobody(adapter: InTouchAdapter) -> None:
    calls = answering(adapter, Answer(200, {"status": "INITIATED"}))
    hosted_only = InTouchCredentials.from_stored({**STORED, "service_code": ""})

    result = adapter.push(hosted_only, payment())

    assert (result.accepted, result.failure_code, calls) == (False, "gateway_configuration", [])


def test_status_tables_are_total_for_the_documented_words() -> None:
    meaning: Callable[[str], codes.StatusMeaning] = codes.gu_callback_meaning
    assert [meaning(s).outcome for s in ("SUCCESSFUL", "FAILED", "PENDING")] == [
        Outcome.SUCCEEDED,
        Outcome.FAILED,
        Outcome.PENDING,
    ]
    assert codes.check_status_meaning(None, None) is None
