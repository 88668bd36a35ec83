"""The IntaSend adapter over real HTTP against the sandbox's IntaSend simulator."""

from __future__ import annotations

import json
import socketserver
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import requests

from sandbox.app import create_sandbox
from sandbox.config import SimulatorConfig
from shared.domain.money import Money
from shared.gateways.base import (
    GatewayOutcomeUnknown,
    GatewayUnavailable,
    InboundCallback,
    Outcome,
    PaymentRequest,
)
from shared.gateways.description import GatewaySettings
from shared.gateways.intasend import DESCRIPTION
from shared.gateways.intasend.client import IntaSendAdapter
from shared.gateways.intasend.transformers import IntaSendCredentials

DELAY_S = 0.3
WAIT_S = 5.0


class _ThreadingWsgiServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a slow answer (the read-timeout test)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    sandbox = create_sandbox(SimulatorConfig(callback_delay_s=DELAY_S))
    server = make_server(
        "127.0.0.1", 0, sandbox, server_class=_ThreadingWsgiServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/intasend"
    server.shutdown()
    server.server_close()
    sandbox.close()
    thread.join(WAIT_S)


class Control:
    def __init__(self, root: str) -> None:
        self.root = root

    def __call__(self, method: str, path: str, body: Any = None) -> Any:
        reply = requests.request(method, f"{self.root}/_sim{path}", json=body, timeout=5)
        assert reply.status_code < 300, reply.text
        return reply.json()


@pytest.fixture
def sim(sandbox_url: str) -> Control:
    control = Control(sandbox_url)
    control("POST", "/reset")
    return control


@pytest.fixture
def adapter(sandbox_url: str) -> IntaSendAdapter:
    return IntaSendAdapter(GatewaySettings(f"{sandbox_url}/api/v1", 2, 2))


@pytest.fixture
def credentials() -> IntaSendCredentials:
    return IntaSendCredentials.from_stored(
        {**DESCRIPTION.simulator_credentials, "callback_secret": "s" * 43}
    )


def request(phone: str = "254712345678", amount_minor: int = 10_000) -> PaymentRequest:
    return PaymentRequest(
        payment_id=str(uuid.uuid4()),
        attempt_ref=str(uuid.uuid4()),
        amount=Money(amount_minor, "KES"),
        phone=phone,
        reference="ORDER-2026-000123",
        description=None,
        callback_url="http://127.0.0.1:9/callbacks/intasend/secret",
    )


def settled(adapter: IntaSendAdapter, credentials: IntaSendCredentials, ref: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while True:
        verdict = adapter.query_status(credentials, ref).verdict
        if verdict.outcome != Outcome.PENDING or time.monotonic() > deadline:
            return verdict
        time.sleep(0.05)


def test_the_simulator_knows_the_description_s_credentials(sim: Control) -> None:
    [account] = sim("GET", "/accounts")
    for name in ("publishable_key", "secret_key"):
        assert account[name] == DESCRIPTION.simulator_credentials[name]
    assert DESCRIPTION.simulator_path == "/intasend/api/v1"


def test_a_push_is_accepted_with_the_invoice_id(
    adapter: IntaSendAdapter, credentials: IntaSendCredentials, sim: Control
) -> None:
    payment = request()

    result = adapter.push(credentials, payment)

    assert result.accepted
    assert (result.gateway_ref, result.secondary_ref) == (
        result.raw["invoice"]["invoice_id"],
        payment.attempt_ref,
    )
    [push] = sim("GET", "/requests?kind=stk_push")
    assert push["body"] == {
        "currency": "KES",
        "method": "M-PESA",
        "amount": "100.00",
        "phone_number": "254712345678",
        "api_ref": payment.attempt_ref,
        "narrative": "ORDER-2026-000123",
    }
    assert push["headers"]["intasend-public-api-key"] == credentials.publishable_key
    assert push["headers"]["authorization"] == "Bearer <redacted>"


def test_a_completed_invoice_succeeds_with_amount_fee_and_receipt(
    adapter: IntaSendAdapter, credentials: IntaSendCredentials, sim: Control
) -> None:
    ref = adapter.push(credentials, request()).gateway_ref
    assert ref is not None

    assert adapter.query_status(credentials, ref).verdict.outcome == Outcome.PENDING
    verdict = settled(adapter, credentials, ref)

    assert (verdict.outcome, verdict.amount, verdict.fee) == (
        Outcome.SUCCEEDED,
        Money(10_000, "KES"),
        Money(350, "KES"),
    )
    assert verdict.receipt == sim("GET", f"/invoices/{ref}")["invoice"]["mpesa_reference"]


@pytest.mark.parametrize(
    ("phone", "outcome", "failure"),
    [
        ("254700001032", Outcome.CANCELLED, "cancelled_by_user"),
        ("254700000001", Outcome.FAILED, "insufficient_funds"),
        ("254700002001", Outcome.FAILED, "wrong_pin"),
        ("254700001037", Outcome.EXPIRED, "customer_unreachable"),
        ("254700001019", Outcome.EXPIRED, "transaction_expired"),
        ("254700009995", Outcome.SUCCEEDED, None),  # amounts as JSON numbers
    ],
)
def test_each_outcome_reads_from_the_status_query(
    adapter: IntaSendAdapter,
    credentials: IntaSendCredentials,
    sim: Control,
    phone: str,
    outcome: Outcome,
    failure: str | None,
) -> None:
    ref = adapter.push(credentials, request(phone=phone)).gateway_ref
    assert ref is not None

    verdict = settled(adapter, credentials, ref)

    assert (verdict.outcome, verdict.failure_code) == (outcome, failure)
    assert verdict.amount == Money(10_000, "KES")


def test_a_scenario_s_unknown_code_is_a_gateway_error(
    adapter: IntaSendAdapter, credentials: IntaSendCredentials, sim: Control
) -> None:
    sim("POST", "/scenarios", {"match": {"amount": 42}, "outcome": "fail", "failed_code": "X9"})
    ref = adapter.push(credentials, request(amount_minor=4_200)).gateway_ref
    assert ref is not None

    verdict = settled(adapter, credentials, ref)

    assert (verdict.outcome, verdict.failure_code, verdict.result_code) == (
        Outcome.FAILED,
        "gateway_error",
        "FAILED:X9",
    )


def test_wrong_keys_refuse_the_push_as_configuration(adapter: IntaSendAdapter) -> None:
    wrong = IntaSendCredentials.from_stored(
        {**DESCRIPTION.simulator_credentials, "secret_key": "ISSecretKey_test_wrong"}
    )

    result = adapter.push(wrong, request())

    assert (result.accepted, result.failure_code) == (False, "gateway_configuration")
    assert "Invalid authentication credentials" in result.message


def test_a_validation_error_is_a_rejection_with_its_words(
    adapter: IntaSendAdapter, credentials: IntaSendCredentials, sim: Control
) -> None:
    result = adapter.push(credentials, request(phone="0712345678"))

    assert (result.accepted, result.failure_code) == (False, "gateway_rejected")
    assert "phone_number" in result.message


def test_busy_is_unavailable_and_a_bare_500_is_unknown(
    adapter: IntaSendAdapter, credentials: IntaSendCredentials, sim: Control
) -> None:
    sim("POST", "/scenarios", {"match": {"phone": "254711222333"}, "push_error": {"status": 503}})
    sim("POST", "/scenarios", {"match": {"phone": "254711222444"}, "push_error": {"status": 500}})

    with pytest.raises(GatewayUnavailable):
        adapter.push(credentials, request(phone="254711222333"))
    with pytest.raises(GatewayOutcomeUnknown):
        adapter.push(credentials, request(phone="254711222444"))


def test_a_slow_answer_after_sending_is_unknown(
    adapter: IntaSendAdapter, credentials: IntaSendCredentials, sim: Control
) -> None:
    sim("POST", "/scenarios", {"match": {"phone": "254711222555"}, "push_delay_s": 3})

    with pytest.raises(GatewayOutcomeUnknown):
        adapter.push(credentials, request(phone="254711222555"))

    # The prompt went out all the same: that is why it must never be re-sent.
    assert len(sim("GET", "/invoices")) == 1


def test_nothing_listening_is_unavailable(credentials: IntaSendCredentials) -> None:
    closed = IntaSendAdapter(GatewaySettings("http://127.0.0.1:1/api/v1", 1, 1))

    with pytest.raises(GatewayUnavailable):
        closed.push(credentials, request())
    with pytest.raises(GatewayUnavailable):
        closed.query_status(credentials, "XMSLWOS")


def test_an_unknown_invoice_is_unavailable_not_a_verdict(
    adapter: IntaSendAdapter, credentials: IntaSendCredentials, sim: Control
) -> None:
    with pytest.raises(GatewayUnavailable, match="404"):
        adapter.query_status(credentials, "NOSUCH")


# -- webhooks to a local receiver ------------------------------------------------------------


class _Receiver(ThreadingHTTPServer):
    bodies: list[bytes]
    arrived: threading.Condition


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.arrived:
            self.server.bodies.append(body)
            self.server.arrived.notify_all()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver(("127.0.0.1", 0), _Handler)
    server.bodies, server.arrived = [], threading.Condition()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(WAIT_S)


def test_webhooks_carry_the_challenge_the_adapter_checks(
    adapter: IntaSendAdapter, credentials: IntaSendCredentials, sim: Control, receiver: _Receiver
) -> None:
    url = f"http://127.0.0.1:{receiver.server_port}/callbacks/intasend/secret"
    body = {
        "public_key": credentials.publishable_key,
        "url": url,
        "challenge": credentials.challenge,
    }
    sim("POST", "/webhooks", body)
    ref = adapter.push(credentials, request(phone="254700009998")).gateway_ref  # COMPLETE twice

    with receiver.arrived:
        assert receiver.arrived.wait_for(lambda: len(receiver.bodies) >= 3, WAIT_S)
    events = []
    verifiers = DESCRIPTION.callback_verifiers(DESCRIPTION.simulator_credentials)
    for raw in receiver.bodies:
        inbound = InboundCallback("POST", "", raw, {}, "127.0.0.1", "secret")
        assert adapter.authenticate_callback(verifiers, inbound) is None
        events.append(adapter.parse_callback(inbound))

    assert [e.event_key for e in events] == [
        f"invoice:{ref}:PROCESSING",
        f"invoice:{ref}:COMPLETE",
        f"invoice:{ref}:COMPLETE",
    ]
    assert events[1].verdict.outcome == Outcome.SUCCEEDED
    assert credentials.challenge not in events[1].masked_body
    assert json.loads(receiver.bodies[1])["challenge"] == credentials.challenge
