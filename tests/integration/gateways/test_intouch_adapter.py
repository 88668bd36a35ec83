"""The InTouch adapter over real HTTP against the sandbox's InTouch simulator.

Self-contained: the whole sandbox is served by a threaded wsgiref server on a
free port, and a tiny local receiver stands in for malipo's callback endpoint.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
import requests

from sandbox.app import Sandbox, create_sandbox
from sandbox.config import SimulatorConfig
from shared.domain.money import Money
from shared.gateways.base import (
    CustomerDetails,
    GatewayOutcomeUnknown,
    GatewayUnavailable,
    InboundCallback,
    Outcome,
    PaymentRequest,
    ReturnUrls,
    StatusResult,
)
from shared.gateways.description import GatewaySettings
from shared.gateways.intouch import DESCRIPTION
from shared.gateways.intouch.client import InTouchAdapter
from shared.gateways.intouch.credentials import InTouchCredentials
from tests.support.receiver import Received, Receiver, receiving
from tests.support.serving import serving_wsgi
from tests.support.waiting import wait_until

DELAY_S = 0.3
CALLBACK_USER, CALLBACK_PASSWORD = "sandbox-touchpay", "sandbox-touchpay-password"


# -- the sandbox and a callback receiver ------------------------------------------------------


@dataclass
class Served:
    sandbox: Sandbox
    root: str  # http://127.0.0.1:<port>

    @property
    def base_url(self) -> str:
        return f"{self.root}/intouch/apidist/sec"

    def control(self, method: str, path: str, **kw: Any) -> requests.Response:
        return requests.request(method, f"{self.root}/intouch/_sim{path}", timeout=5, **kw)


@pytest.fixture
def served() -> Iterator[Served]:
    sandbox = create_sandbox(SimulatorConfig(callback_delay_s=DELAY_S))
    with serving_wsgi(sandbox) as root:
        yield Served(sandbox, root)
    sandbox.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving(b"OK", "text/plain", ("GET", "POST")) as endpoint:
        yield endpoint


# -- the adapter ------------------------------------------------------------------------------


@pytest.fixture
def adapter(served: Served) -> InTouchAdapter:
    return InTouchAdapter(GatewaySettings(served.base_url, 2, 2))


@pytest.fixture
def credentials() -> InTouchCredentials:
    return InTouchCredentials.from_stored(DESCRIPTION.simulator_credentials)


def request(
    phone: str = "221771234567", amount: int = 1500, callback_url: str = "http://127.0.0.1:9/cb"
) -> PaymentRequest:
    return PaymentRequest(
        payment_id=str(uuid.uuid4()),
        attempt_ref=str(uuid.uuid4()),
        amount=Money(amount, "XOF"),
        phone=phone,
        reference="ORDER-42",
        description=None,
        callback_url=callback_url,
        customer=CustomerDetails("Awa", "Diop", "awa@example.com", "Dakar"),
        return_urls=ReturnUrls("https://shop.example/ok", "https://shop.example/ko"),
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


def verifiers() -> dict[str, str]:
    return DESCRIPTION.callback_verifiers(DESCRIPTION.simulator_credentials)


# -- GU push ----------------------------------------------------------------------------------


def test_a_push_is_accepted_over_digest_auth_and_its_callback_reads_back(
    adapter: InTouchAdapter, credentials: InTouchCredentials, served: Served, receiver: Receiver
) -> None:
    payment = request(callback_url=f"{receiver.url}/callbacks/intouch/secret/attempt")

    result = adapter.push(credentials, payment)

    assert result.accepted, result.message
    assert result.gateway_ref == payment.attempt_ref
    assert result.secondary_ref
    assert result.secondary_ref.startswith("GU")
    pushes = served.control("GET", "/requests", params={"kind": "push"}).json()["requests"]
    assert [p["status"] for p in pushes] == [401, 200]  # the challenge, then the answer
    assert pushes[1]["headers"]["authorization"] == "Digest <redacted>"
    assert pushes[1]["query"] == {"loginAgent": "sandbox-agent", "passwordAgent": "<redacted>"}
    body = pushes[1]["body"]
    assert (body["recipientNumber"], body["amount"]) == ("771234567", 1500)
    assert body["additionnalInfos"]["recipientFirstName"] == "Awa"

    [callback] = wait_until(receiver.all, timeout_s=5, what="the GU callback")
    assert callback.method == "POST"
    event = adapter.parse_callback(inbound(callback))
    assert adapter.authenticate_callback(verifiers(), inbound(callback)) is None
    assert event.event_key == f"gu:{payment.attempt_ref}:SUCCESSFUL"
    assert (event.gateway_ref, event.secondary_ref) == (payment.attempt_ref, result.secondary_ref)
    assert event.verdict.outcome is Outcome.SUCCEEDED


def test_wrong_digest_credentials_are_a_configuration_refusal(
    adapter: InTouchAdapter, credentials: InTouchCredentials, served: Served
) -> None:
    wrong = replace(credentials, password_api="not-the-password")

    result = adapter.push(wrong, request())

    assert not result.accepted
    assert result.failure_code == "gateway_configuration"
    assert served.control("GET", "/transactions").json()["transactions"] == []


def test_a_wrong_agent_login_is_a_configuration_refusal(
    adapter: InTouchAdapter, credentials: InTouchCredentials
) -> None:
    result = adapter.push(replace(credentials, password_agent="nope"), request())

    assert (result.accepted, result.failure_code) == (False, "gateway_configuration")


def test_an_unknown_service_code_is_a_rejection(
    adapter: InTouchAdapter, credentials: InTouchCredentials
) -> None:
    result = adapter.push(replace(credentials, service_code="XX_NOPE"), request())

    assert (result.accepted, result.failure_code) == (False, "gateway_rejected")


# -- check_status -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "outcome", "failure_code"),
    [
        ("221771234567", Outcome.SUCCEEDED, None),
        ("221770000001", Outcome.FAILED, "gateway_rejected"),
        ("221770000004", Outcome.PENDING, None),
        ("221770000002", Outcome.SUCCEEDED, None),  # no callback: only the status API tells
    ],
)
def test_check_status_reports_each_outcome_once_it_is_due(
    adapter: InTouchAdapter,
    credentials: InTouchCredentials,
    phone: str,
    outcome: Outcome,
    failure_code: str | None,
) -> None:
    payment = request(phone=phone, amount=22200)
    assert adapter.push(credentials, payment).accepted

    early = adapter.query_status(credentials, payment.attempt_ref)
    assert (early.verdict.outcome, early.verdict.result_code) == (Outcome.PENDING, "201")

    final = _status_after_the_delay(adapter, credentials, payment.attempt_ref)
    assert final.gateway_ref == payment.attempt_ref
    assert final.verdict.outcome is outcome
    assert final.verdict.failure_code == failure_code
    if outcome is Outcome.SUCCEEDED:
        assert final.verdict.amount == Money(22200, "XOF")
        assert final.verdict.receipt
        assert final.verdict.receipt.startswith("GU")


def _status_after_the_delay(
    adapter: InTouchAdapter, credentials: InTouchCredentials, order_number: str
) -> StatusResult:
    """check_status until it is final, or as it stands well after the outcome was due."""
    give_up_at = time.monotonic() + DELAY_S * 3
    while True:
        status = adapter.query_status(credentials, order_number)
        if status.verdict.outcome is not Outcome.PENDING or time.monotonic() > give_up_at:
            return status
        time.sleep(0.05)


def test_an_order_intouch_never_saw_is_still_pending(
    adapter: InTouchAdapter, credentials: InTouchCredentials
) -> None:
    status = adapter.query_status(credentials, str(uuid.uuid4()))

    assert (status.verdict.outcome, status.verdict.result_code) == (Outcome.PENDING, "not_found")


def test_a_wrong_api_login_on_check_status_is_unavailable_not_a_verdict(
    adapter: InTouchAdapter, credentials: InTouchCredentials
) -> None:
    with pytest.raises(GatewayUnavailable):
        adapter.query_status(replace(credentials, password_api="nope"), str(uuid.uuid4()))


def test_an_injected_busy_answer_is_unavailable_and_a_500_is_unknown(
    adapter: InTouchAdapter, credentials: InTouchCredentials, served: Served
) -> None:
    for phone, status in (("221779000503", 503), ("221779000500", 500)):
        served.control(
            "POST",
            "/scenarios",
            json={"match": {"phone": phone}, "push_error": {"status": status, "times": 1}},
        ).raise_for_status()
    with pytest.raises(GatewayUnavailable):
        adapter.push(credentials, request(phone="221779000503"))
    with pytest.raises(GatewayOutcomeUnknown):
        adapter.push(credentials, request(phone="221779000500"))
    assert adapter.push(credentials, request(phone="221779000500")).accepted  # times: 1


# -- TouchPay hosted flow ---------------------------------------------------------------------


def test_the_hosted_flow_ends_in_a_basic_authenticated_callback_the_adapter_reads(
    adapter: InTouchAdapter, credentials: InTouchCredentials, served: Served, receiver: Receiver
) -> None:
    served.control(
        "POST",
        "/agencies",
        json={
            "agency_code": credentials.agency_code,
            "callback_url": f"{receiver.url}/callbacks/intouch/secret",
        },
    ).raise_for_status()
    payment = request(amount=5000)

    started = adapter.start_hosted(credentials, payment)
    assert started.accepted
    assert started.next_action is not None
    # What the browser's SDK sends once the customer submits TouchPay's page.
    checkout = served.control(
        "POST", "/touchpay/checkout", json=dict(started.next_action.parameters)
    )
    assert checkout.status_code == 200, checkout.text
    assert checkout.json()["redirect_url"] == "https://shop.example/ok"

    [callback] = wait_until(receiver.all, timeout_s=5, what="the TouchPay callback")
    assert callback.method == "GET"
    assert callback.headers["authorization"].startswith("Basic ")
    assert adapter.authenticate_callback(verifiers(), inbound(callback)) is None
    event = adapter.parse_callback(inbound(callback))
    assert event.event_key == f"touchpay:{payment.attempt_ref}:200"
    assert event.gateway_ref == payment.attempt_ref
    assert event.verdict.outcome is Outcome.SUCCEEDED
    assert event.secondary_ref == checkout.json()["payment_token"]
    assert adapter.acknowledgement(inbound(callback)).status == 200

    confirmed = adapter.query_status(credentials, payment.attempt_ref)
    assert confirmed.verdict.outcome is Outcome.SUCCEEDED
    assert confirmed.verdict.amount == Money(5000, "XOF")


def test_a_callback_with_other_basic_credentials_is_refused(
    adapter: InTouchAdapter, credentials: InTouchCredentials, served: Served, receiver: Receiver
) -> None:
    served.control(
        "POST",
        "/agencies",
        json={
            "agency_code": credentials.agency_code,
            "callback_url": receiver.url,
            "callback_password": "someone-else",
        },
    ).raise_for_status()
    started = adapter.start_hosted(credentials, request())
    assert started.next_action is not None
    served.control(
        "POST", "/touchpay/checkout", json=dict(started.next_action.parameters)
    ).raise_for_status()

    [callback] = wait_until(receiver.all, timeout_s=5, what="the TouchPay callback")

    assert adapter.authenticate_callback(verifiers(), inbound(callback)) == "basic_auth_invalid"


# -- no gateway -------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_closed_port_is_unavailable(credentials: InTouchCredentials) -> None:
    adapter = InTouchAdapter(
        GatewaySettings(f"http://127.0.0.1:{_closed_port()}/apidist/sec", 2, 2)
    )

    with pytest.raises(GatewayUnavailable):
        adapter.push(credentials, request())
    with pytest.raises(GatewayUnavailable):
        adapter.query_status(credentials, str(uuid.uuid4()))
