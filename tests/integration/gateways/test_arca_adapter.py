"""The ArCa adapter over real HTTP against the sandbox's ArCa iPay simulator.

Self-contained: the simulator is served as the sandbox mounts it (``/arca``) by a
threaded wsgiref server on a free port. The customer's part is played with
plain HTTP: open the form URL the redirect names, press Pay or Decline on it.
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
from shared.gateways.arca import DESCRIPTION
from shared.gateways.arca.client import ArcaAdapter
from shared.gateways.arca.credentials import ArcaCredentials
from shared.gateways.base import (
    GatewayOutcomeUnknown,
    GatewayUnavailable,
    InitiateResult,
    Outcome,
    PaymentRequest,
    ReturnUrls,
)
from shared.gateways.description import GatewaySettings
from tests.support.arca_sim import ArcaSimulator, serving
from tests.support.hosted_adapter import hosted_request, settled, started
from tests.support.hosted_adapter import press as press_on_page

OK = "https://malipo.example/pay/0b7f3c9e/back"
KO = "https://malipo.example/pay/0b7f3c9e/back?failed=1"


@dataclass
class Served:
    root: str
    sim: ArcaSimulator

    @property
    def base_url(self) -> str:
        return f"{self.root}/arca/payment/rest"


@pytest.fixture
def served() -> Iterator[Served]:
    with serving(SimulatorConfig()) as (_, root):
        sim = ArcaSimulator(f"{root}/arca")
        yield Served(root, sim)
        sim.close()


@pytest.fixture
def adapter(served: Served) -> ArcaAdapter:
    return ArcaAdapter(GatewaySettings(served.base_url, 2, 2))


@pytest.fixture
def credentials() -> ArcaCredentials:
    return ArcaCredentials.from_stored(DESCRIPTION.simulator_credentials)


def request(amount_drams: int = 5000, attempt_ref: str | None = None) -> PaymentRequest:
    return hosted_request("arca", ReturnUrls(OK, KO), amount_drams, attempt_ref)


def press(served: Served, result: InitiateResult, choice: str) -> str:
    return press_on_page(f"{served.root}/arca", result, choice)


# -- the hosted flow --------------------------------------------------------------------------


def test_a_payment_on_arca_s_page_succeeds_by_the_status_api(
    adapter: ArcaAdapter, credentials: ArcaCredentials, served: Served
) -> None:
    payment = request()

    result = adapter.start_hosted(credentials, payment)

    assert result.accepted
    assert result.secondary_ref == payment.attempt_ref.replace("-", "")
    assert result.next_action is not None
    assert result.next_action.url == (
        f"{served.root}/arca/payment/merchants/ipay/payment.html?mdOrder={result.gateway_ref}"
    )
    [register] = served.sim.requests("register")
    assert register["body"] == {
        "userName": "sandbox_ipay_api",
        "password": "<redacted>",
        "orderNumber": payment.attempt_ref.replace("-", ""),
        "amount": "500000",
        "currency": "051",
        "returnUrl": OK,
        "failUrl": KO,
        "description": "Two tickets",
    }
    assert adapter.query_status(credentials, str(result.gateway_ref)).verdict.outcome is (
        Outcome.PENDING
    )

    landed = press(served, result, "pay")

    assert landed == f"{OK}?orderId={result.gateway_ref}"
    status = adapter.query_status(credentials, str(result.gateway_ref))
    assert status.gateway_ref == result.gateway_ref
    assert (status.verdict.outcome, status.verdict.result_code) == (Outcome.SUCCEEDED, "deposited")
    assert status.verdict.amount == Money(500000, "AMD")
    assert status.verdict.receipt


def test_a_declined_card_fails_and_lands_on_the_fail_url(
    adapter: ArcaAdapter, credentials: ArcaCredentials, served: Served
) -> None:
    result = adapter.start_hosted(credentials, request())

    landed = press(served, result, "decline")

    assert parse_qs(urlsplit(landed).query) == {"failed": ["1"], "orderId": [result.gateway_ref]}
    verdict = adapter.query_status(credentials, str(result.gateway_ref)).verdict
    assert (verdict.outcome, verdict.failure_code) == (Outcome.FAILED, "gateway_rejected")
    assert verdict.result_code == "declined:100"


def test_a_decline_for_lack_of_money_says_so(
    adapter: ArcaAdapter, credentials: ArcaCredentials, served: Served
) -> None:
    served.sim.scenario(match={"amount": 810000}, decline_code=116)
    ref = started(adapter, credentials, request(8100))

    served.sim.decide(ref, "decline")

    verdict = adapter.query_status(credentials, ref).verdict
    assert (verdict.outcome, verdict.failure_code) == (Outcome.FAILED, "insufficient_funds")


def test_a_forged_return_does_not_make_a_decline_a_payment(
    adapter: ArcaAdapter, credentials: ArcaCredentials, served: Served
) -> None:
    served.sim.scenario(match={"amount": 820000}, forged_return=True)
    result = adapter.start_hosted(credentials, request(8200))

    landed = press(served, result, "decline")

    assert landed == f"{OK}?orderId={result.gateway_ref}"  # the success URL: it lies
    verdict = adapter.query_status(credentials, str(result.gateway_ref)).verdict
    assert verdict.outcome is Outcome.FAILED  # the status API decides


def test_a_lagging_status_is_pending_then_succeeded(
    adapter: ArcaAdapter, credentials: ArcaCredentials, served: Served
) -> None:
    served.sim.scenario(match={"amount": 830000}, status_lag_s=0.5)
    ref = started(adapter, credentials, request(8300))

    served.sim.decide(ref, "pay")

    early = adapter.query_status(credentials, ref).verdict
    assert (early.outcome, early.result_code) == (Outcome.PENDING, "started")
    assert settled(adapter, credentials, ref).verdict.outcome is Outcome.SUCCEEDED


def test_a_two_stage_approval_is_a_payment_only_when_the_merchant_is_single_stage(
    adapter: ArcaAdapter, credentials: ArcaCredentials, served: Served
) -> None:
    served.sim.scenario(match={"amount": 840000}, two_step=True)
    ref = started(adapter, credentials, request(8400))
    served.sim.decide(ref, "pay")

    held = adapter.query_status(replace(credentials, two_step=True), ref).verdict
    single = adapter.query_status(credentials, ref).verdict

    assert (held.outcome, held.result_code) == (Outcome.PENDING, "approved")
    assert "not implemented" in held.message
    assert single.outcome is Outcome.SUCCEEDED


def test_a_reversal_at_the_bank_is_cancelled(
    adapter: ArcaAdapter, credentials: ArcaCredentials, served: Served
) -> None:
    ref = started(adapter, credentials, request())
    served.sim.decide(ref, "pay")

    served.sim.set_status(ref, 3)

    assert adapter.query_status(credentials, ref).verdict.outcome is Outcome.CANCELLED


# -- failures ---------------------------------------------------------------------------------


def test_a_register_500_is_unavailable_and_the_retry_goes_through(
    adapter: ArcaAdapter, credentials: ArcaCredentials, served: Served
) -> None:
    served.sim.scenario(match={"amount": 850000}, init_error={"status": 500, "times": 1})

    with pytest.raises(GatewayUnavailable):
        adapter.start_hosted(credentials, request(8500))
    assert served.sim.orders() == []
    assert adapter.start_hosted(credentials, request(8500)).accepted


def test_bad_credentials_are_a_configuration_refusal(
    adapter: ArcaAdapter, credentials: ArcaCredentials, served: Served
) -> None:
    result = adapter.start_hosted(replace(credentials, password="wrong"), request())

    assert (result.accepted, result.failure_code) == (False, "gateway_configuration")
    assert "Access denied" in result.message
    assert served.sim.orders() == []
    ref = started(adapter, credentials, request())
    with pytest.raises(GatewayUnavailable):
        adapter.query_status(replace(credentials, password="wrong"), ref)


def test_the_same_order_number_twice_is_refused_not_charged_twice(
    adapter: ArcaAdapter, credentials: ArcaCredentials
) -> None:
    attempt = str(uuid.uuid4())
    assert adapter.start_hosted(credentials, request(attempt_ref=attempt)).accepted

    again = adapter.start_hosted(credentials, request(attempt_ref=attempt))

    assert (again.accepted, again.failure_code) == (False, "gateway_rejected")


def test_an_unknown_order_id_is_pending(adapter: ArcaAdapter, credentials: ArcaCredentials) -> None:
    verdict = adapter.query_status(credentials, str(uuid.uuid4())).verdict

    assert (verdict.outcome, verdict.result_code) == (Outcome.PENDING, "not_found")


def test_a_register_answer_lost_after_sending_is_unknown_and_a_lost_status_is_unavailable(
    credentials: ArcaCredentials,
) -> None:
    with serving(SimulatorConfig(latency_s=1.0)) as (_, root):
        slow = ArcaAdapter(GatewaySettings(f"{root}/arca/payment/rest", 2, 0.2))
        with pytest.raises(GatewayOutcomeUnknown):
            slow.start_hosted(credentials, request())
        with pytest.raises(GatewayUnavailable):
            slow.query_status(credentials, str(uuid.uuid4()))


def test_no_engine_listening_is_unavailable(credentials: ArcaCredentials) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    adapter = ArcaAdapter(GatewaySettings(f"http://127.0.0.1:{port}/payment/rest", 1, 1))

    with pytest.raises(GatewayUnavailable):
        adapter.start_hosted(credentials, request())
