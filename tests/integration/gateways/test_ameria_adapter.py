"""The Ameria adapter over real HTTP against the sandbox's Ameria vPOS simulator.

Self-contained: the simulator is served as the sandbox mounts it (``/ameria``)
by a threaded wsgiref server on a free port. The customer's part is played with
plain HTTP: open the page the redirect names, press Pay or Decline on it.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from urllib.parse import parse_qs, urlsplit

import pytest

from sandbox.config import SimulatorConfig
from shared.domain.money import Money
from shared.gateways.ameria import DESCRIPTION
from shared.gateways.ameria.client import AmeriaAdapter
from shared.gateways.ameria.credentials import AmeriaCredentials
from shared.gateways.ameria.wire import order_id_of
from shared.gateways.base import (
    GatewayOutcomeUnknown,
    GatewayUnavailable,
    InitiateResult,
    Outcome,
    PaymentRequest,
    ReturnUrls,
)
from shared.gateways.description import GatewaySettings
from tests.support.ameria_sim import AmeriaSimulator, serving
from tests.support.hosted_adapter import hosted_request, settled, started
from tests.support.hosted_adapter import press as press_on_page

BACK = "https://malipo.example/pay/0b7f3c9e/back"


@dataclass
class Served:
    root: str
    sim: AmeriaSimulator

    @property
    def base_url(self) -> str:
        return f"{self.root}/ameria/VPOS"


@pytest.fixture
def served() -> Iterator[Served]:
    with serving(SimulatorConfig()) as (_, root):
        sim = AmeriaSimulator(f"{root}/ameria")
        yield Served(root, sim)
        sim.close()


@pytest.fixture
def adapter(served: Served) -> AmeriaAdapter:
    return AmeriaAdapter(GatewaySettings(served.base_url, 2, 2))


@pytest.fixture
def credentials() -> AmeriaCredentials:
    return AmeriaCredentials.from_stored(DESCRIPTION.simulator_credentials)


def request(amount_drams: int = 5000, attempt_ref: str | None = None) -> PaymentRequest:
    return hosted_request("ameria", ReturnUrls(BACK, BACK), amount_drams, attempt_ref)


def press(served: Served, result: InitiateResult, choice: str) -> str:
    return press_on_page(f"{served.root}/ameria", result, choice)


# -- the hosted flow --------------------------------------------------------------------------


def test_a_payment_on_ameria_s_page_succeeds_by_the_status_api(
    adapter: AmeriaAdapter, credentials: AmeriaCredentials, served: Served
) -> None:
    payment = request()

    result = adapter.start_hosted(credentials, payment)

    assert result.accepted
    assert result.next_action is not None
    assert result.next_action.url == (
        f"{served.base_url}/Payments/Pay?id={result.gateway_ref}&lang=en"
    )
    [init] = served.sim.requests("init")
    assert init["body"] == {
        "ClientID": "sandbox-ameria-client",
        "Username": "7e20a51c93",
        "Password": "<redacted>",
        "OrderID": order_id_of(payment.attempt_ref),
        "Amount": 5000,
        "Currency": "051",
        "Description": "Two tickets",
        "BackURL": BACK,
        "Opaque": payment.attempt_ref,
    }
    assert adapter.query_status(credentials, str(result.gateway_ref)).verdict.outcome is (
        Outcome.PENDING
    )

    landed = press(served, result, "pay")

    query = parse_qs(urlsplit(landed).query)
    assert landed.startswith(BACK + "?")
    assert query["resposneCode"] == ["00"]
    assert query["paymentID"] == [result.gateway_ref]
    assert query["opaque"] == [payment.attempt_ref]
    status = adapter.query_status(credentials, str(result.gateway_ref))
    assert status.gateway_ref == result.gateway_ref
    assert (status.verdict.outcome, status.verdict.result_code) == (Outcome.SUCCEEDED, "deposited")
    assert status.verdict.amount == Money(500000, "AMD")
    assert status.verdict.receipt


def test_a_declined_card_fails(
    adapter: AmeriaAdapter, credentials: AmeriaCredentials, served: Served
) -> None:
    result = adapter.start_hosted(credentials, request())

    landed = press(served, result, "decline")

    assert parse_qs(urlsplit(landed).query)["resposneCode"] == ["0100"]
    verdict = adapter.query_status(credentials, str(result.gateway_ref)).verdict
    assert (verdict.outcome, verdict.failure_code) == (Outcome.FAILED, "gateway_rejected")


def test_a_decline_for_lack_of_money_says_so(
    adapter: AmeriaAdapter, credentials: AmeriaCredentials, served: Served
) -> None:
    served.sim.scenario(match={"amount": 8100}, decline_code="0116")
    ref = started(adapter, credentials, request(8100))

    served.sim.decide(ref, "decline")

    verdict = adapter.query_status(credentials, ref).verdict
    assert (verdict.outcome, verdict.failure_code) == (Outcome.FAILED, "insufficient_funds")
    assert verdict.result_code == "declined:116"


def test_a_forged_return_does_not_make_a_decline_a_payment(
    adapter: AmeriaAdapter, credentials: AmeriaCredentials, served: Served
) -> None:
    served.sim.scenario(match={"amount": 8200}, forged_return=True)
    result = adapter.start_hosted(credentials, request(8200))

    landed = press(served, result, "decline")

    assert parse_qs(urlsplit(landed).query)["resposneCode"] == ["00"]  # the URL lies
    verdict = adapter.query_status(credentials, str(result.gateway_ref)).verdict
    assert verdict.outcome is Outcome.FAILED  # the status API decides


def test_a_lagging_status_is_pending_then_succeeded(
    adapter: AmeriaAdapter, credentials: AmeriaCredentials, served: Served
) -> None:
    served.sim.scenario(match={"amount": 8300}, status_lag_s=0.5)
    ref = started(adapter, credentials, request(8300))

    served.sim.decide(ref, "pay")

    early = adapter.query_status(credentials, ref).verdict
    assert (early.outcome, early.result_code) == (Outcome.PENDING, "started")
    assert settled(adapter, credentials, ref).verdict.outcome is Outcome.SUCCEEDED


def test_a_two_stage_vpos_s_approval_is_a_payment_only_when_the_merchant_is_single_stage(
    adapter: AmeriaAdapter, credentials: AmeriaCredentials, served: Served
) -> None:
    served.sim.scenario(match={"amount": 8400}, two_step=True)
    ref = started(adapter, credentials, request(8400))
    served.sim.decide(ref, "pay")

    held = adapter.query_status(replace(credentials, two_step=True), ref).verdict
    single = adapter.query_status(credentials, ref).verdict

    assert (held.outcome, held.result_code) == (Outcome.PENDING, "approved")
    assert "not implemented" in held.message
    assert single.outcome is Outcome.SUCCEEDED


def test_a_void_at_the_bank_is_cancelled_and_a_refund_stays_a_payment(
    adapter: AmeriaAdapter, credentials: AmeriaCredentials, served: Served
) -> None:
    voided, refunded = (started(adapter, credentials, request()) for _ in range(2))
    for ref in (voided, refunded):
        served.sim.decide(ref, "pay")

    served.sim.set_status(voided, 3)
    served.sim.set_status(refunded, 4)

    assert adapter.query_status(credentials, voided).verdict.outcome is Outcome.CANCELLED
    assert adapter.query_status(credentials, refunded).verdict.outcome is Outcome.SUCCEEDED


# -- failures ---------------------------------------------------------------------------------


def test_an_init_500_is_unavailable_and_the_retry_goes_through(
    adapter: AmeriaAdapter, credentials: AmeriaCredentials, served: Served
) -> None:
    served.sim.scenario(match={"amount": 8500}, init_error={"status": 500, "times": 1})

    with pytest.raises(GatewayUnavailable):
        adapter.start_hosted(credentials, request(8500))
    assert served.sim.orders() == []
    assert adapter.start_hosted(credentials, request(8500)).accepted


def test_bad_credentials_are_a_configuration_refusal(
    adapter: AmeriaAdapter, credentials: AmeriaCredentials, served: Served
) -> None:
    result = adapter.start_hosted(replace(credentials, password="wrong"), request())

    assert (result.accepted, result.failure_code) == (False, "gateway_configuration")
    assert "20" in result.message
    assert served.sim.orders() == []
    ref = started(adapter, credentials, request())
    with pytest.raises(GatewayUnavailable):
        adapter.query_status(replace(credentials, password="wrong"), ref)


def test_the_same_order_id_twice_is_refused_not_charged_twice(
    adapter: AmeriaAdapter, credentials: AmeriaCredentials
) -> None:
    attempt = str(uuid.uuid4())
    assert adapter.start_hosted(credentials, request(attempt_ref=attempt)).accepted

    again = adapter.start_hosted(credentials, request(attempt_ref=attempt))

    assert (again.accepted, again.failure_code) == (False, "gateway_rejected")


def test_an_unknown_payment_id_is_pending(
    adapter: AmeriaAdapter, credentials: AmeriaCredentials
) -> None:
    verdict = adapter.query_status(credentials, str(uuid.uuid4()).upper()).verdict

    assert (verdict.outcome, verdict.result_code) == (Outcome.PENDING, "not_found")


def test_an_init_answer_lost_after_sending_is_unknown_and_a_lost_status_is_unavailable(
    credentials: AmeriaCredentials,
) -> None:
    with serving(SimulatorConfig(latency_s=1.0)) as (_, root):
        slow = AmeriaAdapter(GatewaySettings(f"{root}/ameria/VPOS", 2, 0.2))
        with pytest.raises(GatewayOutcomeUnknown):
            slow.start_hosted(credentials, request())
        with pytest.raises(GatewayUnavailable):
            slow.query_status(credentials, str(uuid.uuid4()))


def test_no_vpos_listening_is_unavailable(credentials: AmeriaCredentials) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    adapter = AmeriaAdapter(GatewaySettings(f"http://127.0.0.1:{port}/VPOS", 1, 1))

    with pytest.raises(GatewayUnavailable):
        adapter.start_hosted(credentials, request())
