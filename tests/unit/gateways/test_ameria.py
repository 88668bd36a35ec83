"""Ameriabank vPOS 3.1: OrderID derivation, request bodies, answers' meanings (no network)."""

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
from shared.gateways.ameria import DESCRIPTION, codes, wire
from shared.gateways.ameria.client import AmeriaAdapter
from shared.gateways.ameria.credentials import AmeriaCredentials
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
CREDENTIALS = AmeriaCredentials.from_stored(STORED)
ATTEMPT = "0b7f3c9e-6a52-4d2e-9a8f-6a1c2b3d4e5f"
BASE = "https://vpos.invalid/VPOS"
PAYMENT_ID = "15C8E0DE-F082-4785-883E-A5FADB093BE2"


def payment(**changes: Any) -> PaymentRequest:
    fields: dict[str, Any] = {
        "payment_id": str(uuid.uuid4()),
        "attempt_ref": ATTEMPT,
        "amount": Money(500000, "AMD"),
        "phone": "37477123456",
        "reference": "ORDER-42",
        "description": "Two tickets",
        "callback_url": "https://malipo.example/callbacks/ameria/s3cret/attempt",
        "return_urls": ReturnUrls("https://malipo.example/pay/p/back", "https://malipo.example/f"),
    }
    return PaymentRequest(**{**fields, **changes})


Call = dict[str, Any]


@pytest.fixture
def calls() -> list[Call]:
    return []


@pytest.fixture
def answer_with(
    calls: list[Call],
) -> Callable[..., AmeriaAdapter]:
    """An adapter whose transport answers ``Answer(status, body)`` and records the call."""

    def make(status: int = 200, body: Any = None) -> AmeriaAdapter:
        adapter = AmeriaAdapter(GatewaySettings(BASE, 1, 1))

        def call(method: str, path: str, **kwargs: Any) -> Answer:
            calls.append({"method": method, "path": path, **kwargs})
            return Answer(status, body, {}, "" if body is None else str(body))

        adapter.http.call = call  # type: ignore[method-assign]
        return adapter

    return make


# -- the description --------------------------------------------------------------------------


def test_the_description_is_a_hosted_gateway_with_status_and_refunds() -> None:
    assert catalogue.describe("ameria") is DESCRIPTION
    assert DESCRIPTION.title == "Ameriabank vPOS"
    assert DESCRIPTION.capabilities == {Capability.HOSTED, Capability.STATUS, Capability.REFUND}
    assert DESCRIPTION.default_flow is Capability.HOSTED
    assert DESCRIPTION.pay_page
    assert not DESCRIPTION.result_url_in_cabinet
    assert (DESCRIPTION.currencies, DESCRIPTION.phone_regions) == (("AMD",), ("AM",))
    assert DESCRIPTION.base_urls == {
        "sandbox": "https://servicestest.ameriabank.am/VPOS",
        "production": "https://services.ameriabank.am/VPOS",
    }
    assert DESCRIPTION.simulator_path == "/ameria/VPOS"
    assert DESCRIPTION.source_of_truth
    assert DESCRIPTION.callback_authentication
    names = [c.name for c in DESCRIPTION.credentials]
    assert names == ["client_id", "username", "password", "two_step", "order_id_range"]
    assert [c.name for c in DESCRIPTION.credentials if c.secret] == ["password"]


def test_production_refuses_the_simulator_and_the_public_test_logins() -> None:
    for value in (*STORED.values(), "3d19541048", "lazY2k"):
        if value != "no":
            assert value in DESCRIPTION.sandbox_values


# -- OrderID --------------------------------------------------------------------------------


def test_the_order_id_of_an_attempt_is_stable() -> None:
    assert wire.order_id_of(ATTEMPT) == wire.order_id_of(ATTEMPT)
    assert wire.order_id_of(ATTEMPT) == uuid.UUID(ATTEMPT).int % 2_000_000_000 + 1


@given(st.uuids())
def test_every_attempts_order_id_is_a_positive_32_bit_integer(attempt: uuid.UUID) -> None:
    order_id = wire.order_id_of(str(attempt))

    assert isinstance(order_id, int)
    assert 1 <= order_id <= 2_000_000_000 < 2**31


@given(
    st.uuids() | st.text(min_size=1, max_size=80),
    st.integers(min_value=1, max_value=1_000_000),
    st.integers(min_value=0, max_value=10_000),
)
def test_a_narrowed_range_is_respected(attempt: uuid.UUID | str, low: int, width: int) -> None:
    order_id = wire.order_id_of(str(attempt), low, low + width)

    assert low <= order_id <= low + width
    assert order_id == wire.order_id_of(str(attempt), low, low + width)


def test_different_attempts_get_different_order_ids() -> None:
    ids = {wire.order_id_of(str(uuid.uuid4())) for _ in range(1000)}

    assert len(ids) == 1000  # a collision here would be a 1-in-4,000 event


# -- credentials and amounts ----------------------------------------------------------------


def test_credentials_validate_and_never_show_the_password() -> None:
    assert CREDENTIALS.two_step is False
    assert "sndBx4q" not in repr(CREDENTIALS)
    with pytest.raises(ValueError, match="password"):
        AmeriaCredentials.from_stored({**STORED, "password": ""})
    assert AmeriaCredentials.from_stored({**STORED, "two_step": "yes"}).two_step is True


def test_an_order_id_range_narrows_the_order_ids() -> None:
    narrow = AmeriaCredentials.from_stored({**STORED, "order_id_range": "30164001-30165000"})

    assert (narrow.order_id_low, narrow.order_id_high) == (30164001, 30165000)
    assert 30164001 <= wire.init_body(narrow, payment(), "https://b")["OrderID"] <= 30165000
    for bad in ("30165000", "2-1", "a-b", "0-10", "1-3000000000"):
        with pytest.raises(ValueError, match="order_id_range"):
            AmeriaCredentials.from_stored({**STORED, "order_id_range": bad})


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        (Money(500050, "AMD"), "invalid_amount"),
        (Money(0, "AMD"), "invalid_amount"),
        (Money(500000, "KES"), "invalid_currency"),
    ],
)
def test_amounts_ameria_would_refuse(amount: Money, code: str) -> None:
    adapter = AmeriaAdapter(GatewaySettings(BASE, 1, 1))

    with pytest.raises(MalipoError) as refused:
        adapter.check_amount(amount)
    assert refused.value.code == code
    adapter.check_amount(Money(100, "AMD"))  # one dram is fine


def test_the_init_body() -> None:
    body = wire.init_body(CREDENTIALS, payment(), "https://malipo.example/pay/p/back")

    assert body == {
        "ClientID": "sandbox-ameria-client",
        "Username": "7e20a51c93",
        "Password": "sndBx4q",
        "OrderID": wire.order_id_of(ATTEMPT),
        "Amount": 5000,
        "Currency": "051",
        "Description": "Two tickets",
        "BackURL": "https://malipo.example/pay/p/back",
        "Opaque": ATTEMPT,
    }
    assert wire.init_body(CREDENTIALS, payment(description=None), "b")["Description"] == (
        "Payment ORDER-42"
    )


def test_the_pay_page_url() -> None:
    assert wire.pay_page_url(BASE + "/", PAYMENT_ID) == (
        f"{BASE}/Payments/Pay?id={PAYMENT_ID}&lang=en"
    )


# -- InitPayment ------------------------------------------------------------------------------


def test_an_accepted_init_redirects_to_the_page(
    answer_with: Callable[..., AmeriaAdapter], calls: list[Call]
) -> None:
    adapter = answer_with(
        200, {"PaymentID": PAYMENT_ID, "ResponseCode": 1, "ResponseMessage": "OK"}
    )

    result = adapter.start_hosted(CREDENTIALS, payment())

    assert result.accepted
    assert result.gateway_ref == PAYMENT_ID
    assert result.secondary_ref == str(wire.order_id_of(ATTEMPT))
    assert result.next_action is not None
    assert result.next_action.to_json() == {
        "type": "redirect",
        "url": f"{BASE}/Payments/Pay?id={PAYMENT_ID}&lang=en",
    }
    [call] = calls
    assert (call["method"], call["path"], call["idempotent"]) == ("POST", wire.INIT_PATH, False)
    assert call["json"]["BackURL"] == "https://malipo.example/pay/p/back"


@pytest.mark.parametrize(
    ("code", "failure_code"),
    [
        (20, "gateway_configuration"),
        (3, "invalid_currency"),
        (50, "amount_out_of_range"),
        (8204, "gateway_rejected"),
        ("08204", "gateway_rejected"),
        (510, "gateway_rejected"),
        (550, "gateway_error"),
        (0, "gateway_rejected"),
        (None, "gateway_rejected"),
    ],
)
def test_init_refusals(
    answer_with: Callable[..., AmeriaAdapter], code: object, failure_code: str
) -> None:
    adapter = answer_with(200, {"PaymentID": None, "ResponseCode": code, "ResponseMessage": "no"})

    result = adapter.start_hosted(CREDENTIALS, payment())

    assert (result.accepted, result.failure_code) == (False, failure_code)
    assert "no" in result.message


def test_an_init_without_a_payment_id_is_refused(
    answer_with: Callable[..., AmeriaAdapter],
) -> None:
    for payment_id in (None, "", "has spaces", "x" * 80):
        adapter = answer_with(200, {"PaymentID": payment_id, "ResponseCode": 1})
        result = adapter.start_hosted(CREDENTIALS, payment())
        assert (result.accepted, result.failure_code) == (False, "gateway_error")


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_a_failing_bank_is_unavailable(
    answer_with: Callable[..., AmeriaAdapter], status: int
) -> None:
    with pytest.raises(GatewayUnavailable):
        answer_with(status, {"Message": "An error has occurred."}).start_hosted(
            CREDENTIALS, payment()
        )


def test_http_refusals(answer_with: Callable[..., AmeriaAdapter]) -> None:
    assert answer_with(401).start_hosted(CREDENTIALS, payment()).failure_code == (
        "gateway_configuration"
    )
    assert answer_with(400, {"Message": "bad"}).start_hosted(
        CREDENTIALS, payment()
    ).failure_code == ("gateway_rejected")
    with pytest.raises(GatewayUnavailable):
        answer_with(200, None).start_hosted(CREDENTIALS, payment())


def test_nothing_is_sent_for_a_payment_ameria_cannot_take(
    answer_with: Callable[..., AmeriaAdapter], calls: list[Call]
) -> None:
    adapter = answer_with(200, {})

    assert adapter.start_hosted(CREDENTIALS, payment(return_urls=None)).failure_code == (
        "invalid_request"
    )
    assert adapter.start_hosted(CREDENTIALS, payment(amount=Money(5, "AMD"))).failure_code == (
        "invalid_amount"
    )
    assert calls == []


# -- GetPaymentDetails ------------------------------------------------------------------------


def details(order_status: object, response_code: object = "00", **more: Any) -> dict[str, Any]:
    return {
        "OrderStatus": order_status,
        "ResponseCode": response_code,
        "Amount": 5000.0,
        "ApprovedAmount": 5000.0,
        "DepositedAmount": 5000.0 if order_status == 2 else 0.0,
        "Currency": "051",
        "rrn": "123456789012",
        "ApprovalCode": "654321",
        **more,
    }


@pytest.mark.parametrize(
    ("document", "two_step", "outcome", "failure_code", "result_code"),
    [
        (details(0, "0-100"), False, Outcome.PENDING, None, "started"),
        (details(1), False, Outcome.SUCCEEDED, None, "approved"),
        (details(1), True, Outcome.PENDING, None, "approved"),
        (details(2), False, Outcome.SUCCEEDED, None, "deposited"),
        (details("2"), False, Outcome.SUCCEEDED, None, "deposited"),
        (details(3), False, Outcome.CANCELLED, "gateway_rejected", "void"),
        (details(4), False, Outcome.SUCCEEDED, None, "refunded"),
        (details(5, "0-9000"), False, Outcome.PENDING, None, "authenticating"),
        (details(6, "0116"), False, Outcome.FAILED, "insufficient_funds", "declined:116"),
        (details(6, "0-2007"), False, Outcome.EXPIRED, "transaction_expired", "declined:-2007"),
        (details(6, "0100"), False, Outcome.FAILED, "gateway_rejected", "declined:100"),
        (details(6, "05"), False, Outcome.FAILED, "gateway_rejected", "declined"),
        # A paid state the ResponseCode contradicts is not credited.
        (details(2, "0116"), False, Outcome.PENDING, None, "deposited:0116"),
        (
            {"ResponseCode": "06", "ResponseMessage": "Unregistered"},
            False,
            Outcome.PENDING,
            None,
            "not_found",
        ),
    ],
)
def test_payment_details_meanings(
    answer_with: Callable[..., AmeriaAdapter],
    calls: list[Call],
    document: dict[str, Any],
    two_step: bool,
    outcome: Outcome,
    failure_code: str | None,
    result_code: str,
) -> None:
    adapter = answer_with(200, document)

    status = adapter.query_status(replace(CREDENTIALS, two_step=two_step), PAYMENT_ID)

    assert status.gateway_ref == PAYMENT_ID
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
    assert call["json"] == {
        "PaymentID": PAYMENT_ID,
        "Username": "7e20a51c93",
        "Password": "sndBx4q",
    }


def test_the_deposited_amount_is_the_one_reported(
    answer_with: Callable[..., AmeriaAdapter],
) -> None:
    document = details(2, DepositedAmount=4000.0, Amount=5000)

    verdict = answer_with(200, document).query_status(CREDENTIALS, PAYMENT_ID).verdict

    assert verdict.amount == Money(400000, "AMD")
    other = answer_with(200, details(2, Currency="840")).query_status(CREDENTIALS, PAYMENT_ID)
    assert other.verdict.amount is None


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, {"ResponseCode": "20", "ResponseMessage": "Incorrect Username and Password"}),
        (200, {"ResponseCode": "07"}),
        (200, {}),
        (200, None),
        (500, {"Message": "error"}),
        (404, None),
    ],
)
def test_no_readable_answer_is_unavailable_not_a_verdict(
    answer_with: Callable[..., AmeriaAdapter], status: int, body: Any
) -> None:
    with pytest.raises(GatewayUnavailable):
        answer_with(status, body).query_status(CREDENTIALS, PAYMENT_ID)


@given(
    order_status=st.integers(min_value=0, max_value=99),
    response_code=st.sampled_from(["00", "0116", "0-2007", "0-100", "05", "0100", ""]),
    two_step=st.booleans(),
)
def test_every_order_status_reads_as_the_shared_table_says(
    order_status: int, response_code: str, two_step: bool
) -> None:
    adapter = AmeriaAdapter(GatewaySettings(BASE, 1, 1))
    answer = Answer(200, details(order_status, response_code or None), {}, "")
    adapter.http.call = lambda *a, **k: answer  # type: ignore[method-assign]

    verdict = adapter.query_status(replace(CREDENTIALS, two_step=two_step), PAYMENT_ID).verdict

    expected = bpc.state_meaning(
        order_status, two_step=two_step, code=codes.decline_action_code(response_code or None)
    )
    contradicted = expected.outcome is Outcome.SUCCEEDED and response_code not in ("00", "")
    assert verdict.outcome is (Outcome.PENDING if contradicted else expected.outcome)
    assert verdict.failure_code == (None if contradicted else expected.failure_code)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("0116", 116),
        ("0-2007", -2007),
        ("0151017", 151017),
        ("00", None),
        ("06", None),
        (None, None),
    ],
)
def test_decline_codes_carry_the_engines_action_code(
    code: str | None, expected: int | None
) -> None:
    assert codes.decline_action_code(code) == expected
