"""FastShift: the description, amounts, the register request, answers, status and webhooks."""

from __future__ import annotations

import json
import uuid
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
    GatewayOutcomeUnknown,
    GatewayUnavailable,
    InboundCallback,
    Outcome,
    PaymentRequest,
    ReturnUrls,
)
from shared.gateways.description import GatewaySettings
from shared.gateways.fastshift import DESCRIPTION, SIMULATOR_API_TOKEN
from shared.gateways.fastshift.client import FastShiftAdapter
from shared.gateways.fastshift.credentials import FastShiftCredentials
from shared.gateways.fastshift.wire import MAX_DRAMS, whole_drams
from shared.gateways.transport import Answer

CREDENTIALS = FastShiftCredentials.from_stored(DESCRIPTION.simulator_credentials)
ORDER = "0b7f3c9e-6a52-4d2e-9a8f-6a1c2b3d4e5f"
GUID = "7d3e2c1b-0a9f-4e8d-b7c6-5a4b3c2d1e0f"
RETURN = "https://malipo.example/pay/p1/return?t=tok"
CALLBACK = "https://malipo.example/callbacks/fastshift/s3cret/attempt-1"


@pytest.fixture
def adapter() -> FastShiftAdapter:
    return FastShiftAdapter(GatewaySettings("http://fastshift.invalid/api/en/vpos", 1, 1))


def payment(**changes: Any) -> PaymentRequest:
    fields: dict[str, Any] = {
        "payment_id": str(uuid.uuid4()),
        "attempt_ref": ORDER,
        "amount": Money(500000, "AMD"),
        "phone": "37477123456",
        "reference": "ORDER-42",
        "description": "Two books",
        "callback_url": CALLBACK,
        "return_urls": ReturnUrls(RETURN, RETURN),
    }
    return PaymentRequest(**{**fields, **changes})


def webhook(
    body: bytes = b"",
    *,
    query: dict[str, str] | None = None,
    content_type: str = "application/json",
    method: str = "POST",
) -> InboundCallback:
    return InboundCallback(
        method=method,
        query_string=urlencode(query or {}),
        body=body,
        headers={"content-type": content_type},
        remote_addr="203.0.113.7",
        path_secret="s3cret",
    )


def json_webhook(status: str = "completed", order_number: str = ORDER, **extra: Any) -> bytes:
    return json.dumps({"status": status, "order_number": order_number, **extra}).encode()


def order_document(status: str = "pending", **changes: Any) -> dict[str, Any]:
    return {
        "order_number": ORDER,
        "order_guid": GUID,
        "amount": 5000,
        "description": "Two books",
        "status": status,
        "created_at": "2026-01-02 03:04:05",
        "completed_at": None if status == "pending" else "2026-01-02 03:05:00",
        "expires_at": "2026-01-02 03:34:05",
        "account_guid": None,
        **changes,
    }


Calls = list[dict[str, Any]]


def answering(adapter: FastShiftAdapter, answer: Answer | Exception) -> Calls:
    """Replace the transport's call: record each call, answer ``answer`` (or raise it)."""
    calls: Calls = []

    def call(method: str, path: str, **kw: Any) -> Answer:
        calls.append({"method": method, "path": path, **kw})
        if isinstance(answer, Exception):
            raise answer
        return answer

    adapter.http.call = call  # type: ignore[method-assign]
    return calls


def registered(redirect_url: str = "https://pay.fastshift.am/o/7d3e") -> Answer:
    return Answer(
        200, {"status": "OK", "data": {"order": order_document(), "redirect_url": redirect_url}}
    )


# -- the description --------------------------------------------------------------------------


def test_the_catalogue_finds_fastshift_as_a_hosted_pay_page_gateway() -> None:
    description = catalogue.describe("fastshift")

    assert description is DESCRIPTION
    assert description.flows == (Capability.HOSTED,)
    assert description.default_flow is Capability.HOSTED
    assert description.capabilities == {
        Capability.HOSTED,
        Capability.STATUS,
        Capability.CALLBACKS,
    }
    assert (description.currencies, description.phone_regions) == (("AMD",), ("AM",))
    assert description.pay_page
    assert not description.result_url_in_cabinet
    assert description.confirm_before_credit
    assert [(f.name, f.secret, f.required) for f in description.credentials] == [
        ("api_token", True, True)
    ]
    assert description.simulator_path == "/fastshift/api/en/vpos"
    assert description.simulator_credentials == {"api_token": "sandbox-fastshift-token"}
    assert description.base_urls["production"] == "https://merchants.fastshift.am/api/en/vpos"
    assert SIMULATOR_API_TOKEN in description.sandbox_values
    assert description.callback_authentication
    assert description.source_of_truth == "order/status"


def test_there_is_nothing_to_derive_for_the_ingress_to_check() -> None:
    assert DESCRIPTION.callback_verifiers(DESCRIPTION.simulator_credentials) == {}


def test_credentials_need_a_clean_token_and_never_print_it() -> None:
    with pytest.raises(ValueError, match="api_token"):
        FastShiftCredentials.from_stored({})
    for bad in ("two words", "tab\there", "x" * 2001):
        with pytest.raises(ValueError, match="api_token"):
            FastShiftCredentials.from_stored({"api_token": bad})
    credentials = FastShiftCredentials.from_stored({"api_token": "  tok-123  "})

    assert credentials.api_token == "tok-123"
    assert "tok-123" not in repr(credentials)
    assert credentials.bearer()["Authorization"] == "Bearer tok-123"


# -- amounts ----------------------------------------------------------------------------------


@given(st.integers(min_value=1, max_value=MAX_DRAMS))
def test_any_whole_dram_amount_goes_as_whole_drams(drams: int) -> None:
    assert whole_drams(Money(drams * 100, "AMD")) == drams


@given(st.integers(min_value=1, max_value=10**9).filter(lambda n: n % 100 != 0))
def test_luma_are_refused(minor: int) -> None:
    with pytest.raises(MalipoError) as refused:
        whole_drams(Money(minor, "AMD"))

    assert refused.value.code == "invalid_amount"
    assert "whole drams" in refused.value.detail


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        (Money(500000, "KES"), "invalid_currency"),
        (Money(0, "AMD"), "invalid_amount"),
        (Money(-100, "AMD"), "invalid_amount"),
        (Money((MAX_DRAMS + 1) * 100, "AMD"), "amount_out_of_range"),
    ],
)
def test_other_amounts_are_refused(adapter: FastShiftAdapter, amount: Money, code: str) -> None:
    with pytest.raises(MalipoError) as refused:
        adapter.check_amount(amount)

    assert refused.value.code == code


# -- register ---------------------------------------------------------------------------------


def test_register_sends_our_order_number_whole_drams_and_both_urls(
    adapter: FastShiftAdapter,
) -> None:
    calls = answering(adapter, registered())

    result = adapter.start_hosted(CREDENTIALS, payment())

    [call] = calls
    assert (call["method"], call["path"], call["idempotent"]) == ("POST", "order/register", False)
    assert call["headers"]["Authorization"] == "Bearer sandbox-fastshift-token"
    assert call["json"] == {
        "order_number": ORDER,
        "amount": 5000,
        "description": "Two books",
        "callback_url": RETURN,  # the browser's way back: malipo's return page
        "webhook_url": CALLBACK,  # the server-to-server webhook: malipo's callback URL
        "external_order_id": "ORDER-42",
    }
    assert result.accepted
    assert (result.gateway_ref, result.secondary_ref) == (ORDER, GUID)
    assert result.next_action is not None
    assert result.next_action.to_json() == {
        "type": "redirect",
        "url": "https://pay.fastshift.am/o/7d3e",
    }


def test_the_browser_return_is_the_success_url(adapter: FastShiftAdapter) -> None:
    calls = answering(adapter, registered())

    adapter.start_hosted(
        CREDENTIALS, payment(return_urls=ReturnUrls("https://a.example/ok", "https://a.example/ko"))
    )

    assert calls[0]["json"]["callback_url"] == "https://a.example/ok"


def test_without_a_description_the_page_shows_the_reference(adapter: FastShiftAdapter) -> None:
    calls = answering(adapter, registered())

    adapter.start_hosted(CREDENTIALS, payment(description=None))
    adapter.start_hosted(CREDENTIALS, payment(description="x" * 400))

    assert calls[0]["json"]["description"] == "Payment ORDER-42"
    assert len(calls[1]["json"]["description"]) == 255


def test_a_top_level_redirect_url_is_read_too(adapter: FastShiftAdapter) -> None:
    answering(adapter, Answer(200, {"redirect_url": "https://pay.fastshift.am/x"}))

    result = adapter.start_hosted(CREDENTIALS, payment())

    assert result.accepted
    assert result.next_action is not None
    assert result.next_action.url == "https://pay.fastshift.am/x"


def test_without_return_urls_or_with_luma_nobody_is_called(adapter: FastShiftAdapter) -> None:
    calls = answering(adapter, registered())

    no_return = adapter.start_hosted(CREDENTIALS, payment(return_urls=None))
    luma = adapter.start_hosted(CREDENTIALS, payment(amount=Money(500050, "AMD")))

    assert (no_return.accepted, no_return.failure_code) == (False, "invalid_request")
    assert (luma.accepted, luma.failure_code) == (False, "invalid_amount")
    assert calls == []


@pytest.mark.parametrize(
    ("answer", "failure_code"),
    [
        (
            Answer(401, {"status": "UNAUTHORIZED", "message": "Unauthenticated."}),
            "gateway_configuration",
        ),
        (Answer(403, {"status": "FORBIDDEN", "message": "denied"}), "gateway_configuration"),
        (
            Answer(422, {"status": "INVALID_DATA", "errors": {"amount": "too large"}}),
            "amount_out_of_range",
        ),
        (
            Answer(422, {"status": "INVALID_DATA", "errors": {"callback_url": "bad url"}}),
            "gateway_rejected",
        ),
        (Answer(400, {"status": "ERROR", "message": "order exists"}), "gateway_rejected"),
        (Answer(404, None, text="Not Found"), "gateway_rejected"),
        (Answer(200, {"status": "OK", "data": {"order": order_document()}}), "gateway_error"),
        (Answer(200, {"status": "OK", "data": {"redirect_url": "javascript:x"}}), "gateway_error"),
        (Answer(200, None, text="<html>"), "gateway_error"),
    ],
)
def test_register_refusals(adapter: FastShiftAdapter, answer: Answer, failure_code: str) -> None:
    answering(adapter, answer)

    result = adapter.start_hosted(CREDENTIALS, payment())

    assert (result.accepted, result.failure_code) == (False, failure_code)
    assert result.next_action is None


def test_a_refusal_says_what_fastshift_said(adapter: FastShiftAdapter) -> None:
    answering(
        adapter,
        Answer(422, {"status": "INVALID_DATA", "errors": {"description": "is required"}}),
    )

    result = adapter.start_hosted(CREDENTIALS, payment())

    assert "INVALID_DATA" in result.message
    assert "description: is required" in result.message


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_an_explicit_5xx_or_busy_answer_is_unavailable(
    adapter: FastShiftAdapter, status: int
) -> None:
    answering(adapter, Answer(status, {"status": "APP_ERROR"}, {"Retry-After": "3"}))

    with pytest.raises(GatewayUnavailable) as raised:
        adapter.start_hosted(CREDENTIALS, payment())

    assert raised.value.retry_after_s == 3.0


@pytest.mark.parametrize(
    "raised", [GatewayUnavailable("no connection"), GatewayOutcomeUnknown("read timeout")]
)
def test_transport_failures_come_out_as_the_transport_says(
    adapter: FastShiftAdapter, raised: Exception
) -> None:
    answering(adapter, raised)

    with pytest.raises(type(raised)):
        adapter.start_hosted(CREDENTIALS, payment())


# -- status -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome", "failure_code"),
    [
        ("pending", Outcome.PENDING, None),
        ("completed", Outcome.SUCCEEDED, None),
        ("COMPLETED", Outcome.SUCCEEDED, None),
        ("rejected", Outcome.FAILED, "cancelled_by_user"),
        ("expired", Outcome.EXPIRED, "transaction_expired"),
        ("something-new", Outcome.PENDING, None),
    ],
)
def test_status_words_map_to_outcomes(
    adapter: FastShiftAdapter, status: str, outcome: Outcome, failure_code: str | None
) -> None:
    document = {"status": "OK", "data": {"order": order_document(status), "fastshift_id": "1"}}
    calls = answering(adapter, Answer(200, document))

    result = adapter.query_status(CREDENTIALS, ORDER)

    [call] = calls
    assert (call["method"], call["path"], call["idempotent"]) == (
        "GET",
        f"order/status/{ORDER}",
        True,
    )
    assert call["headers"]["Authorization"] == "Bearer sandbox-fastshift-token"
    assert result.gateway_ref == ORDER
    assert result.verdict.outcome is outcome
    assert result.verdict.failure_code == failure_code
    assert result.verdict.result_code == status.lower()
    assert result.verdict.amount == Money(500000, "AMD")
    assert result.verdict.receipt == GUID


def test_the_order_number_is_escaped_in_the_path(adapter: FastShiftAdapter) -> None:
    calls = answering(adapter, Answer(404, {"status": "NOT_FOUND"}))

    adapter.query_status(CREDENTIALS, "../x?y")

    assert calls[0]["path"] == "order/status/..%2Fx%3Fy"


@pytest.mark.parametrize("amount", [None, "lots", -1, True, 2.5])
def test_an_unreadable_status_amount_is_no_amount(adapter: FastShiftAdapter, amount: Any) -> None:
    document = {"status": "OK", "data": {"order": order_document("completed", amount=amount)}}
    answering(adapter, Answer(200, document))

    assert adapter.query_status(CREDENTIALS, ORDER).verdict.amount is None


def test_an_order_fastshift_does_not_know_is_still_pending(adapter: FastShiftAdapter) -> None:
    answering(adapter, Answer(404, {"status": "NOT_FOUND", "message": "Order not found."}))

    verdict = adapter.query_status(CREDENTIALS, ORDER).verdict

    assert (verdict.outcome, verdict.result_code) == (Outcome.PENDING, "not_found")


@pytest.mark.parametrize(
    "answer",
    [
        Answer(401, {"status": "UNAUTHORIZED"}),
        Answer(403, {"status": "FORBIDDEN"}),
        Answer(500, {"status": "APP_ERROR"}),
        Answer(200, None, text="<html>"),
        Answer(200, {"status": "OK", "data": {"order": {"order_number": ORDER}}}),
        Answer(400, {"status": "ERROR", "message": "bad"}),
        GatewayUnavailable("down"),
    ],
)
def test_a_status_without_a_verdict_is_unavailable(
    adapter: FastShiftAdapter, answer: Answer | Exception
) -> None:
    answering(adapter, answer)

    with pytest.raises(GatewayUnavailable):
        adapter.query_status(CREDENTIALS, ORDER)


# -- webhooks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome", "failure_code"),
    [
        ("completed", Outcome.SUCCEEDED, None),
        ("rejected", Outcome.FAILED, "cancelled_by_user"),
        ("expired", Outcome.EXPIRED, "transaction_expired"),
        ("pending", Outcome.PENDING, None),
        ("who-knows", Outcome.PENDING, None),
    ],
)
def test_a_json_webhook_is_read(
    adapter: FastShiftAdapter, status: str, outcome: Outcome, failure_code: str | None
) -> None:
    event = adapter.parse_callback(webhook(json_webhook(status)))

    assert event.event_key == f"fastshift:{ORDER}:{status}"
    assert event.gateway_ref == ORDER
    assert event.secondary_ref is None
    assert event.verdict.outcome is outcome
    assert event.verdict.failure_code == failure_code
    assert event.verdict.amount is None  # the webhook carries none: the status API says


def test_a_form_webhook_reads_the_same(adapter: FastShiftAdapter) -> None:
    form = urlencode({"status": "completed", "order_number": ORDER}).encode()

    as_form = adapter.parse_callback(
        webhook(form, content_type="application/x-www-form-urlencoded")
    )
    as_json = adapter.parse_callback(webhook(json_webhook()))

    assert (as_form.event_key, as_form.verdict) == (as_json.event_key, as_json.verdict)


def test_the_browsers_query_string_reads_the_same(adapter: FastShiftAdapter) -> None:
    event = adapter.parse_callback(
        webhook(method="GET", query={"status": "completed", "order_number": ORDER})
    )

    assert event.event_key == f"fastshift:{ORDER}:completed"


def test_a_body_shaped_like_a_status_answer_is_read_as_its_order(
    adapter: FastShiftAdapter,
) -> None:
    body = json.dumps({"status": "OK", "data": {"order": order_document("rejected")}}).encode()

    event = adapter.parse_callback(webhook(body))

    assert (event.gateway_ref, event.verdict.outcome) == (ORDER, Outcome.FAILED)


def test_the_status_word_is_normalised_in_the_event_key(adapter: FastShiftAdapter) -> None:
    event = adapter.parse_callback(webhook(json_webhook(" Completed ")))

    assert event.event_key == f"fastshift:{ORDER}:completed"
    assert event.verdict.outcome is Outcome.SUCCEEDED


@given(
    order=st.uuids().map(str),
    status=st.sampled_from(["pending", "completed", "rejected", "expired"]),
)
def test_event_keys_are_the_order_and_status(order: str, status: str) -> None:
    adapter = FastShiftAdapter(GatewaySettings("http://fastshift.invalid", 1, 1))

    event = adapter.parse_callback(webhook(json_webhook(status, order)))

    assert event.event_key == f"fastshift:{order}:{status}"
    assert event.gateway_ref == order


@pytest.mark.parametrize(
    "inbound",
    [
        webhook(b""),
        webhook(b"[1, 2]"),
        webhook(b"\xff\xfe not text"),
        webhook(json.dumps({"status": "completed"}).encode()),
        webhook(json.dumps({"order_number": ORDER}).encode()),
        webhook(json_webhook(order_number="")),
        webhook(json_webhook(order_number="x" * 101)),
        webhook(json.dumps({"status": True, "order_number": ORDER}).encode()),
        webhook(json.dumps({"status": "completed", "order_number": ["a"]}).encode()),
        webhook(json_webhook(order_number="a\nb")),
        webhook(json_webhook(), query={"status": "rejected"}),  # query and body disagree
    ],
)
def test_unreadable_webhooks_are_malformed(
    adapter: FastShiftAdapter, inbound: InboundCallback
) -> None:
    with pytest.raises(CallbackMalformed):
        adapter.parse_callback(inbound)


def test_stored_bodies_mask_anything_phone_like(adapter: FastShiftAdapter) -> None:
    body = json_webhook(
        username="+37477123456", note="payer +374 77 123456", fastshift_id="12345678"
    )

    event = adapter.parse_callback(webhook(body))

    stored = json.loads(event.masked_body)
    assert stored["method"] == "POST"
    assert stored["body"]["order_number"] == ORDER  # UUIDs are not phones
    assert stored["body"]["status"] == "completed"
    for text in ("77123456", "123456", "12345678"):
        assert text not in event.masked_body


def test_nothing_to_authenticate_and_a_json_ok(adapter: FastShiftAdapter) -> None:
    inbound = webhook(json_webhook())

    assert adapter.authenticate_callback({}, inbound) is None
    reply = adapter.acknowledgement(inbound)
    assert (reply.status, reply.content_type) == (200, "application/json")
    assert json.loads(reply.body) == {"status": "OK"}
