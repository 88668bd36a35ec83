"""ArCa iPay: orderNumber, register.do's form, the answers' meanings (no network)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.errors import MalipoError
from shared.domain.money import Money
from shared.gateways import bpc, catalogue
from shared.gateways.arca import DESCRIPTION, codes, wire
from shared.gateways.arca.client import ArcaAdapter
from shared.gateways.arca.credentials import ArcaCredentials
from shared.gateways.base import (
    Capability,
    GatewayUnavailable,
    Outcome,
    PaymentRequest,
    ReturnUrls,
)
from shared.gateways.description import GatewaySettings
from shared.gateways.transport import Answer

STORED = dict(DESCRIPTION.simulator_credentials)
CREDENTIALS = ArcaCredentials.from_stored(STORED)
ATTEMPT = "0b7f3c9e-6a52-4d2e-9a8f-6a1c2b3d4e5f"
BASE = "https://ipay.invalid/payment/rest"
ORDER_ID = "70906e55-7114-41d6-8332-4609dc6590f4"
FORM_URL = f"https://ipay.invalid/payment/merchants/ipay/payment_en.html?mdOrder={ORDER_ID}"


def payment(**changes: Any) -> PaymentRequest:
    fields: dict[str, Any] = {
        "payment_id": str(uuid.uuid4()),
        "attempt_ref": ATTEMPT,
        "amount": Money(500000, "AMD"),
        "phone": "37477123456",
        "reference": "ORDER-42",
        "description": "Two tickets",
        "callback_url": "https://malipo.example/callbacks/arca/s3cret/attempt",
        "return_urls": ReturnUrls("https://malipo.example/ok", "https://malipo.example/ko"),
    }
    return PaymentRequest(**{**fields, **changes})


Call = dict[str, Any]


@pytest.fixture
def calls() -> list[Call]:
    return []


@pytest.fixture
def answer_with(calls: list[Call]) -> Callable[..., ArcaAdapter]:
    """An adapter whose transport answers ``Answer(status, body)`` and records the call."""

    def make(status: int = 200, body: Any = None) -> ArcaAdapter:
        adapter = ArcaAdapter(GatewaySettings(BASE, 1, 1))

        def call(method: str, path: str, **kwargs: Any) -> Answer:
            calls.append({"method": method, "path": path, **kwargs})
            return Answer(status, body, {}, "" if body is None else str(body))

        adapter.http.call = call  # type: ignore[method-assign]
        return adapter

    return make


# -- the description --------------------------------------------------------------------------


def test_the_description_is_a_hosted_gateway_with_status_and_refunds() -> None:
    assert catalogue.describe("arca") is DESCRIPTION
    assert DESCRIPTION.title == "ArCa iPay"
    assert DESCRIPTION.capabilities == {Capability.HOSTED, Capability.STATUS, Capability.REFUND}
    assert DESCRIPTION.default_flow is Capability.HOSTED
    assert DESCRIPTION.pay_page
    assert (DESCRIPTION.currencies, DESCRIPTION.phone_regions) == (("AMD",), ("AM",))
    assert DESCRIPTION.base_urls == {
        "sandbox": "https://ipaytest.arca.am:8445/payment/rest",
        "production": "https://ipay.arca.am/payment/rest",
    }
    assert DESCRIPTION.simulator_path == "/arca/payment/rest"
    assert DESCRIPTION.source_of_truth == "getOrderStatusExtended.do"
    assert [c.name for c in DESCRIPTION.credentials] == ["username", "password", "two_step"]
    assert {STORED["username"], STORED["password"]} <= DESCRIPTION.sandbox_values


# -- orderNumber, credentials, amounts ----------------------------------------------------------


@given(st.uuids())
def test_the_order_number_is_the_attempt_without_dashes(attempt: uuid.UUID) -> None:
    number = wire.order_number_of(str(attempt))

    assert number == str(attempt).replace("-", "")
    assert len(number) == 32


@given(st.text(min_size=1, max_size=100))
def test_any_reference_becomes_a_usable_order_number(reference: str) -> None:
    number = wire.order_number_of(reference)

    assert 0 < len(number) <= 32
    assert number.isascii()
    assert number.isalnum()
    assert number == wire.order_number_of(reference)


def test_credentials_validate_and_never_show_the_password() -> None:
    assert CREDENTIALS.two_step is False
    assert "ipaySandb0x" not in repr(CREDENTIALS)
    with pytest.raises(ValueError, match="username"):
        ArcaCredentials.from_stored({"password": "x"})
    with pytest.raises(ValueError, match="password"):
        ArcaCredentials.from_stored({"username": "u", "password": "p" * 31})
    assert ArcaCredentials.from_stored({**STORED, "two_step": "yes"}).two_step is True


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        (Money(500050, "AMD"), "invalid_amount"),
        (Money(0, "AMD"), "invalid_amount"),
        (Money(500000, "KES"), "invalid_currency"),
    ],
)
def test_amounts_arca_would_refuse(amount: Money, code: str) -> None:
    with pytest.raises(MalipoError) as refused:
        ArcaAdapter(GatewaySettings(BASE, 1, 1)).check_amount(amount)
    assert refused.value.code == code


def test_the_register_form_sends_minor_units() -> None:
    form = wire.register_body(CREDENTIALS, payment(), ReturnUrls("https://r/ok", "https://r/ko"))

    assert form == {
        "userName": "sandbox_ipay_api",
        "password": "ipaySandb0x",
        "orderNumber": ATTEMPT.replace("-", ""),
        "amount": "500000",
        "currency": "051",
        "returnUrl": "https://r/ok",
        "failUrl": "https://r/ko",
        "description": "Two tickets",
    }
    assert all(isinstance(v, str) for v in form.values())


# -- register.do ------------------------------------------------------------------------------


def test_a_registered_order_redirects_to_its_form_url(
    answer_with: Callable[..., ArcaAdapter], calls: list[Call]
) -> None:
    adapter = answer_with(200, {"orderId": ORDER_ID, "formUrl": FORM_URL})

    result = adapter.start_hosted(CREDENTIALS, payment())

    assert result.accepted
    assert (result.gateway_ref, result.secondary_ref) == (ORDER_ID, ATTEMPT.replace("-", ""))
    assert result.next_action is not None
    assert result.next_action.to_json() == {"type": "redirect", "url": FORM_URL}
    [call] = calls
    assert (call["path"], call["idempotent"]) == (wire.REGISTER_PATH, False)
    assert call["data"]["returnUrl"] == "https://malipo.example/ok"
    assert call["data"]["failUrl"] == "https://malipo.example/ko"


@pytest.mark.parametrize(
    ("error_code", "message", "failure_code"),
    [
        ("5", "Access denied", "gateway_configuration"),
        (5, "[amount] is invalid", "gateway_rejected"),
        ("1", "Order with this number was already processed", "gateway_rejected"),
        ("3", "Unknown currency", "invalid_currency"),
        ("4", "[returnUrl] is empty", "gateway_rejected"),
        ("7", "System error", "gateway_error"),
        ("99", "Something", "gateway_rejected"),
        ("x", "Unreadable", "gateway_error"),
    ],
)
def test_register_refusals(
    answer_with: Callable[..., ArcaAdapter], error_code: object, message: str, failure_code: str
) -> None:
    adapter = answer_with(200, {"errorCode": error_code, "errorMessage": message})

    result = adapter.start_hosted(CREDENTIALS, payment())

    assert (result.accepted, result.failure_code) == (False, failure_code)
    assert message in result.message


def test_an_answer_without_a_usable_page_is_refused(
    answer_with: Callable[..., ArcaAdapter],
) -> None:
    for body in (
        {"orderId": ORDER_ID},
        {"formUrl": FORM_URL},
        {"orderId": ORDER_ID, "formUrl": "javascript:alert(1)"},
        {"orderId": "x" * 65, "formUrl": FORM_URL},
        {"errorCode": "0", "orderId": ORDER_ID, "formUrl": "/relative"},
    ):
        result = answer_with(200, body).start_hosted(CREDENTIALS, payment())
        assert (result.accepted, result.failure_code) == (False, "gateway_error"), body
    accepted = answer_with(200, {"errorCode": "0", "orderId": ORDER_ID, "formUrl": FORM_URL})
    assert accepted.start_hosted(CREDENTIALS, payment()).accepted


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_failing_engine_is_unavailable(
    answer_with: Callable[..., ArcaAdapter], status: int
) -> None:
    with pytest.raises(GatewayUnavailable):
        answer_with(status, None).start_hosted(CREDENTIALS, payment())


def test_http_refusals_and_unreadable_answers(answer_with: Callable[..., ArcaAdapter]) -> None:
    assert answer_with(403).start_hosted(CREDENTIALS, payment()).failure_code == (
        "gateway_configuration"
    )
    assert answer_with(400).start_hosted(CREDENTIALS, payment()).failure_code == (
        "gateway_rejected"
    )
    with pytest.raises(GatewayUnavailable):
        answer_with(200, "<html>").start_hosted(CREDENTIALS, payment())


def test_nothing_is_sent_for_a_payment_arca_cannot_take(
    answer_with: Callable[..., ArcaAdapter], calls: list[Call]
) -> None:
    adapter = answer_with(200, {})

    assert adapter.start_hosted(CREDENTIALS, payment(return_urls=None)).failure_code == (
        "invalid_request"
    )
    assert adapter.start_hosted(CREDENTIALS, payment(amount=Money(1, "AMD"))).failure_code == (
        "invalid_amount"
    )
    assert calls == []


# -- getOrderStatusExtended.do ------------------------------------------------------------------


def order(order_status: object, action_code: object = 0, **more: Any) -> dict[str, Any]:
    return {
        "errorCode": "0",
        "errorMessage": "Success",
        "orderNumber": ATTEMPT.replace("-", ""),
        "orderStatus": order_status,
        "actionCode": action_code,
        "amount": 500000,
        "currency": "051",
        "authRefNum": "123456789012",
        "cardAuthInfo": {"approvalCode": "654321"},
        "paymentAmountInfo": {
            "approvedAmount": 500000,
            "depositedAmount": 500000 if order_status == 2 else 0,
        },
        **more,
    }


@pytest.mark.parametrize(
    ("document", "two_step", "outcome", "failure_code", "result_code"),
    [
        (order(0), False, Outcome.PENDING, None, "started"),
        (order(1), False, Outcome.SUCCEEDED, None, "approved"),
        (order(1), True, Outcome.PENDING, None, "approved"),
        (order(2), False, Outcome.SUCCEEDED, None, "deposited"),
        (order("2", "0"), False, Outcome.SUCCEEDED, None, "deposited"),
        (order(3), False, Outcome.CANCELLED, "gateway_rejected", "void"),
        (order(4), False, Outcome.SUCCEEDED, None, "refunded"),
        (order(5), False, Outcome.PENDING, None, "authenticating"),
        (order(6, 116), False, Outcome.FAILED, "insufficient_funds", "declined:116"),
        (order(6, "-2007"), False, Outcome.EXPIRED, "transaction_expired", "declined:-2007"),
        (order(6, 100), False, Outcome.FAILED, "gateway_rejected", "declined:100"),
        (order(6, None), False, Outcome.FAILED, "gateway_rejected", "declined"),
        (order(2, 116), False, Outcome.PENDING, None, "deposited:116"),
        (
            {"errorCode": "6", "errorMessage": "Order not found"},
            False,
            Outcome.PENDING,
            None,
            "not_found",
        ),
    ],
)
def test_order_status_meanings(
    answer_with: Callable[..., ArcaAdapter],
    calls: list[Call],
    document: dict[str, Any],
    two_step: bool,
    outcome: Outcome,
    failure_code: str | None,
    result_code: str,
) -> None:
    status = answer_with(200, document).query_status(
        replace(CREDENTIALS, two_step=two_step), ORDER_ID
    )

    verdict = status.verdict
    assert (verdict.outcome, verdict.failure_code, verdict.result_code) == (
        outcome,
        failure_code,
        result_code,
    )
    if outcome is Outcome.SUCCEEDED:
        assert verdict.amount == Money(500000, "AMD")
        assert verdict.receipt == "123456789012"
    else:
        assert verdict.amount is None
    [call] = calls
    assert call["idempotent"] is True
    assert call["data"] == {
        "userName": "sandbox_ipay_api",
        "password": "ipaySandb0x",
        "orderId": ORDER_ID,
    }


def test_the_deposited_amount_and_the_approval_code(
    answer_with: Callable[..., ArcaAdapter],
) -> None:
    partial = order(2, paymentAmountInfo={"depositedAmount": 400000}, authRefNum="")

    verdict = answer_with(200, partial).query_status(CREDENTIALS, ORDER_ID).verdict

    assert verdict.amount == Money(400000, "AMD")
    assert verdict.receipt == "654321"
    other = answer_with(200, order(2, currency="840")).query_status(CREDENTIALS, ORDER_ID)
    assert other.verdict.amount is None


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, {"errorCode": "5", "errorMessage": "Access denied"}),
        (200, {"errorCode": "7", "errorMessage": "System error"}),
        (200, {"errorCode": "0"}),
        (200, None),
        (502, None),
    ],
)
def test_no_readable_answer_is_unavailable_not_a_verdict(
    answer_with: Callable[..., ArcaAdapter], status: int, body: Any
) -> None:
    with pytest.raises(GatewayUnavailable):
        answer_with(status, body).query_status(CREDENTIALS, ORDER_ID)


@given(
    order_status=st.integers(min_value=0, max_value=99),
    action=st.sampled_from([0, 116, -2007, 100, 151017, None]),
    two_step=st.booleans(),
)
def test_every_order_status_reads_as_the_shared_table_says(
    order_status: int, action: int | None, two_step: bool
) -> None:
    adapter = ArcaAdapter(GatewaySettings(BASE, 1, 1))
    answer = Answer(200, order(order_status, action), {}, "")
    adapter.http.call = lambda *a, **k: answer  # type: ignore[method-assign]

    verdict = adapter.query_status(replace(CREDENTIALS, two_step=two_step), ORDER_ID).verdict

    expected = bpc.state_meaning(order_status, two_step=two_step, code=action)
    contradicted = expected.outcome is Outcome.SUCCEEDED and action not in (0, None)
    assert verdict.outcome is (Outcome.PENDING if contradicted else expected.outcome)
    assert verdict.failure_code == (None if contradicted else expected.failure_code)


def test_error_codes_are_read_as_integers() -> None:
    assert [codes.error_code(v) for v in (None, "", "0", 0, "6", 5, "x")] == [
        0,
        0,
        0,
        0,
        6,
        5,
        None,
    ]
