"""The FastShift adapter over real HTTP against the sandbox's FastShift simulator.

Self-contained: the whole sandbox is served by a threaded wsgiref server on a
free port, and a tiny local receiver stands in for malipo's callback endpoint.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from sandbox.app import Sandbox, create_sandbox
from sandbox.config import SimulatorConfig
from shared.domain.money import Money
from shared.gateways.base import (
    GatewayOutcomeUnknown,
    GatewayUnavailable,
    InboundCallback,
    InitiateResult,
    Outcome,
    PaymentRequest,
    ReturnUrls,
    StatusResult,
)
from shared.gateways.description import GatewaySettings
from shared.gateways.fastshift import DESCRIPTION
from shared.gateways.fastshift.client import FastShiftAdapter
from shared.gateways.fastshift.credentials import FastShiftCredentials
from tests.support.fastshift_sim import FastShiftSimulator
from tests.support.receiver import Received, Receiver, receiving
from tests.support.serving import serving_wsgi
from tests.support.waiting import wait_until

DELAY_S = 0.1
RETURN_URL = "https://malipo.example/pay/p-1/return?t=tok"


# -- the sandbox and a callback receiver ------------------------------------------------------


@dataclass
class Served:
    sandbox: Sandbox
    root: str  # http://127.0.0.1:<port>
    sim: FastShiftSimulator

    @property
    def base_url(self) -> str:
        return f"{self.root}{DESCRIPTION.simulator_path}"


@pytest.fixture
def served() -> Iterator[Served]:
    sandbox = create_sandbox(SimulatorConfig(callback_delay_s=DELAY_S))
    with serving_wsgi(sandbox) as root:
        sim = FastShiftSimulator(f"{root}/fastshift")
        yield Served(sandbox, root, sim)
        sim.close()
    sandbox.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving(b'{"status": "OK"}', "application/json") as endpoint:
        yield endpoint


# -- the adapter ------------------------------------------------------------------------------


@pytest.fixture
def adapter(served: Served) -> FastShiftAdapter:
    return FastShiftAdapter(GatewaySettings(served.base_url, 2, 2))


@pytest.fixture
def credentials() -> FastShiftCredentials:
    return FastShiftCredentials.from_stored(DESCRIPTION.simulator_credentials)


def request(drams: int = 5000, callback_url: str = "http://127.0.0.1:9/cb") -> PaymentRequest:
    return PaymentRequest(
        payment_id=str(uuid.uuid4()),
        attempt_ref=str(uuid.uuid4()),
        amount=Money(drams * 100, "AMD"),
        phone="37477123456",
        reference="ORDER-42",
        description="Two books",
        callback_url=callback_url,
        return_urls=ReturnUrls(RETURN_URL, RETURN_URL),
    )


def inbound(received: Received) -> InboundCallback:
    return InboundCallback(
        method=received.method,
        query_string=received.query,
        body=received.body,
        headers=received.headers,
        remote_addr="127.0.0.1",
        path_secret="secret",
    )


def redirect_url(result: InitiateResult) -> str:
    assert result.accepted, result.message
    assert result.next_action is not None
    assert result.next_action.type == "redirect"
    assert result.next_action.url is not None
    return result.next_action.url


def final_status(
    adapter: FastShiftAdapter, credentials: FastShiftCredentials, order_number: str
) -> StatusResult:
    """order/status until it is final, or as it stands after a few seconds."""
    give_up_at = time.monotonic() + 5
    while True:
        status = adapter.query_status(credentials, order_number)
        if status.verdict.outcome is not Outcome.PENDING or time.monotonic() > give_up_at:
            return status
        time.sleep(0.05)


# -- the hosted flow ----------------------------------------------------------------------------


def test_register_redirect_pay_and_the_status_says_completed(
    adapter: FastShiftAdapter, credentials: FastShiftCredentials, served: Served
) -> None:
    payment = request()

    started = adapter.start_hosted(credentials, payment)

    url = redirect_url(started)
    assert started.gateway_ref == payment.attempt_ref
    order = served.sim.order(payment.attempt_ref)
    assert started.secondary_ref == order["order_guid"]
    assert url == f"{served.root}/fastshift/pay/{order['order_guid']}"
    [register] = served.sim.requests("register")
    assert register["headers"]["authorization"] == "Bearer <redacted>"
    assert register["body"] == {
        "order_number": payment.attempt_ref,
        "amount": 5000,
        "description": "Two books",
        "callback_url": RETURN_URL,
        "webhook_url": payment.callback_url,
        "external_order_id": "ORDER-42",
    }
    pending = adapter.query_status(credentials, payment.attempt_ref)
    assert (pending.verdict.outcome, pending.verdict.result_code) == (Outcome.PENDING, "pending")

    # The customer opens FastShift's page and pays.
    page = requests.get(url, timeout=5)
    assert page.status_code == 200
    assert "5000 AMD" in page.text
    decided = served.sim.decide(payment.attempt_ref, "pay")
    back = urlsplit(decided["return_url"])
    assert back.netloc == "malipo.example"
    assert parse_qs(back.query)["status"] == ["completed"]

    status = adapter.query_status(credentials, payment.attempt_ref)
    assert status.gateway_ref == payment.attempt_ref
    assert status.verdict.outcome is Outcome.SUCCEEDED
    assert status.verdict.amount == Money(500000, "AMD")
    assert status.verdict.receipt == order["order_guid"]


def test_the_webhook_reaches_the_receiver_and_reads_back(
    adapter: FastShiftAdapter,
    credentials: FastShiftCredentials,
    served: Served,
    receiver: Receiver,
) -> None:
    payment = request(callback_url=f"{receiver.url}/callbacks/fastshift/secret/attempt")
    started = adapter.start_hosted(credentials, payment)
    redirect_url(started)

    served.sim.decide(payment.attempt_ref, "pay")
    [webhook] = wait_until(receiver.all, timeout_s=5, what="the webhook")

    assert (webhook.method, webhook.path) == ("POST", "/callbacks/fastshift/secret/attempt")
    assert adapter.authenticate_callback({}, inbound(webhook)) is None
    event = adapter.parse_callback(inbound(webhook))
    assert event.event_key == f"fastshift:{payment.attempt_ref}:completed"
    assert event.gateway_ref == started.gateway_ref
    assert event.verdict.outcome is Outcome.SUCCEEDED
    assert adapter.acknowledgement(inbound(webhook)).status == 200
    # Unsigned: the status API decides before credit.
    assert DESCRIPTION.confirm_before_credit
    confirmed = adapter.query_status(credentials, event.gateway_ref)
    assert confirmed.verdict.outcome is Outcome.SUCCEEDED


def test_a_form_webhook_reads_back_the_same(
    adapter: FastShiftAdapter,
    credentials: FastShiftCredentials,
    served: Served,
    receiver: Receiver,
) -> None:
    served.sim.scenario(match={"amount": 1400}, webhook_format="form")
    payment = request(1400, callback_url=f"{receiver.url}/cb")
    redirect_url(adapter.start_hosted(credentials, payment))

    served.sim.decide(payment.attempt_ref, "decline")
    [webhook] = wait_until(receiver.all, timeout_s=5, what="the webhook")

    assert webhook.headers["content-type"] == "application/x-www-form-urlencoded"
    event = adapter.parse_callback(inbound(webhook))
    assert event.event_key == f"fastshift:{payment.attempt_ref}:rejected"
    assert (event.verdict.outcome, event.verdict.failure_code) == (
        Outcome.FAILED,
        "cancelled_by_user",
    )


def test_a_lost_webhook_leaves_the_status_saying_completed(
    adapter: FastShiftAdapter,
    credentials: FastShiftCredentials,
    served: Served,
    receiver: Receiver,
) -> None:
    served.sim.scenario(match={"amount": 1300}, result="none")
    payment = request(1300, callback_url=f"{receiver.url}/cb")
    redirect_url(adapter.start_hosted(credentials, payment))

    served.sim.decide(payment.attempt_ref, "pay")
    time.sleep(DELAY_S * 3)

    assert receiver.all() == []
    assert final_status(adapter, credentials, payment.attempt_ref).verdict.outcome is (
        Outcome.SUCCEEDED
    )


def test_a_lagging_status_is_pending_then_completed(
    adapter: FastShiftAdapter, credentials: FastShiftCredentials, served: Served
) -> None:
    served.sim.scenario(match={"amount": 1500}, status_lag_s=0.5)
    payment = request(1500)
    redirect_url(adapter.start_hosted(credentials, payment))

    served.sim.decide(payment.attempt_ref, "pay")

    assert adapter.query_status(credentials, payment.attempt_ref).verdict.outcome is (
        Outcome.PENDING
    )
    assert final_status(adapter, credentials, payment.attempt_ref).verdict.outcome is (
        Outcome.SUCCEEDED
    )


@pytest.mark.parametrize(
    ("choice", "outcome", "failure_code"),
    [
        ("decline", Outcome.FAILED, "cancelled_by_user"),
        ("expire", Outcome.EXPIRED, "transaction_expired"),
    ],
)
def test_declined_and_expired_orders(
    adapter: FastShiftAdapter,
    credentials: FastShiftCredentials,
    served: Served,
    choice: str,
    outcome: Outcome,
    failure_code: str,
) -> None:
    payment = request()
    redirect_url(adapter.start_hosted(credentials, payment))

    if choice == "expire":
        served.sim.expire(payment.attempt_ref)
    else:
        served.sim.decide(payment.attempt_ref, choice)

    verdict = adapter.query_status(credentials, payment.attempt_ref).verdict
    assert (verdict.outcome, verdict.failure_code) == (outcome, failure_code)


def test_an_order_fastshift_never_registered_is_pending(
    adapter: FastShiftAdapter, credentials: FastShiftCredentials
) -> None:
    status = adapter.query_status(credentials, str(uuid.uuid4()))

    assert (status.verdict.outcome, status.verdict.result_code) == (Outcome.PENDING, "not_found")


def test_a_merchant_account_of_its_own_works_with_its_token(
    adapter: FastShiftAdapter, served: Served
) -> None:
    own = FastShiftCredentials.from_stored(served.sim.new_account("shop"))
    payment = request()

    redirect_url(adapter.start_hosted(own, payment))

    assert served.sim.order(payment.attempt_ref)["account_id"] != "acc_sandbox"
    assert adapter.query_status(own, payment.attempt_ref).verdict.outcome is Outcome.PENDING


# -- failures -----------------------------------------------------------------------------------


def test_a_wrong_bearer_token_is_a_configuration_refusal(
    adapter: FastShiftAdapter, served: Served
) -> None:
    wrong = FastShiftCredentials(api_token="not-the-token")

    result = adapter.start_hosted(wrong, request())

    assert (result.accepted, result.failure_code) == (False, "gateway_configuration")
    assert "UNAUTHORIZED" in result.message
    assert served.sim.orders() == []
    with pytest.raises(GatewayUnavailable):
        adapter.query_status(wrong, str(uuid.uuid4()))


def test_a_register_500_is_unavailable_and_the_retry_goes_through(
    adapter: FastShiftAdapter, credentials: FastShiftCredentials, served: Served
) -> None:
    served.sim.scenario(match={"amount": 1700}, register_error={"status": 500, "times": 1})

    with pytest.raises(GatewayUnavailable):
        adapter.start_hosted(credentials, request(1700))
    assert served.sim.orders() == []

    redirect_url(adapter.start_hosted(credentials, request(1700)))  # a new attempt


def test_a_register_answer_lost_to_a_timeout_is_outcome_unknown(
    served: Served, credentials: FastShiftCredentials
) -> None:
    impatient = FastShiftAdapter(GatewaySettings(served.base_url, 2, 0.3))
    served.sim.scenario(match={"amount": 1800}, register_delay_s=1.0)
    payment = request(1800)

    with pytest.raises(GatewayOutcomeUnknown):
        impatient.start_hosted(credentials, payment)

    # FastShift did register it: never re-send, ask the status API instead.
    assert served.sim.order(payment.attempt_ref)["api_status"] == "pending"
    assert impatient.query_status(credentials, payment.attempt_ref).verdict.outcome is (
        Outcome.PENDING
    )


def test_the_amount_fastshift_refuses_is_amount_out_of_range(
    adapter: FastShiftAdapter, credentials: FastShiftCredentials
) -> None:
    # More than an unsigned int of drams: check_amount refuses it first, so the body is
    # changed on its way out, to see how FastShift's INVALID_DATA answer reads back.
    original = adapter.http.call

    def oversized(method: str, path: str, **kw: Any) -> Any:
        kw["json"] = {**kw["json"], "amount": 2**32}
        return original(method, path, **kw)

    adapter.http.call = oversized  # type: ignore[method-assign]

    result = adapter.start_hosted(credentials, request())

    assert (result.accepted, result.failure_code) == (False, "amount_out_of_range")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_closed_port_is_unavailable(credentials: FastShiftCredentials) -> None:
    adapter = FastShiftAdapter(
        GatewaySettings(f"http://127.0.0.1:{_closed_port()}/fastshift/api/en/vpos", 2, 2)
    )

    with pytest.raises(GatewayUnavailable):
        adapter.start_hosted(credentials, request())
    with pytest.raises(GatewayUnavailable):
        adapter.query_status(credentials, str(uuid.uuid4()))
