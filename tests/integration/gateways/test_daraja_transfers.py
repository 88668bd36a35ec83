"""Daraja money out over real HTTP: the adapter against the simulator, results at a receiver.

The simulator runs in this process (its own server), writes its certificate where
``SANDBOX_DARAJA_CERTIFICATE_OUT`` says, and the adapter reads it from there, as
``MALIPO_DARAJA_CERTIFICATE`` tells it in a deployment.
"""

from __future__ import annotations

import socketserver
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from sandbox.config import SimulatorConfig
from sandbox.daraja import create_simulator
from sandbox.daraja.initiator import BUILTIN_INITIATORS
from shared.domain.money import Money
from shared.gateways.base import (
    GatewayOutcomeUnknown,
    GatewayUnavailable,
    InboundCallback,
    PaymentRequest,
)
from shared.gateways.daraja.client import DarajaAdapter
from shared.gateways.daraja.stk import DarajaCredentials
from shared.gateways.description import GatewaySettings
from shared.gateways.transfers import (
    TransferEvent,
    TransferKind,
    TransferRequest,
    TransferState,
)
from tests.support.daraja_sim import DarajaSim
from tests.support.receiver import Receiver, receiving
from tests.support.waiting import wait_until

DELAY_S = 0.3
RECIPIENT = "254712000333"
INITIATOR, PASSWORD = next(iter(BUILTIN_INITIATORS.items()))
STORED = {
    "consumer_key": "malipo-sandbox-key",
    "consumer_secret": "malipo-sandbox-secret",
    "shortcode": "174379",
    "passkey": "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919",
    "initiator_name": INITIATOR,
    "initiator_password": PASSWORD,
}
ACK = b'{"ResultCode": 0, "ResultDesc": "Accepted"}'


class _ThreadingWsgiServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a slow answer


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def certificate_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("daraja") / "certs" / "daraja.pem"


@pytest.fixture(scope="module")
def base_url(certificate_path: Path) -> Iterator[str]:
    simulator = create_simulator(
        SimulatorConfig(callback_delay_s=DELAY_S),
        environ={"SANDBOX_DARAJA_CERTIFICATE_OUT": str(certificate_path)},
    )
    server = make_server(
        "127.0.0.1",
        0,
        simulator.app,
        server_class=_ThreadingWsgiServer,
        handler_class=_QuietHandler,
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    simulator.close()
    thread.join(5)


@pytest.fixture
def sim(base_url: str) -> Iterator[DarajaSim]:
    control = DarajaSim(base_url)
    control.reset()
    yield control
    control.http.close()


@pytest.fixture
def adapter(base_url: str, certificate_path: Path) -> DarajaAdapter:
    settings = GatewaySettings(base_url, 2, 2, {"certificate": str(certificate_path)})
    return DarajaAdapter(settings)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving(ACK, "application/json") as running:
        yield running


@pytest.fixture
def credentials() -> DarajaCredentials:
    return DarajaCredentials.from_stored(STORED)


def transfer(
    receiver: Receiver, kind: TransferKind = TransferKind.PAYOUT, **kw: Any
) -> TransferRequest:
    ref = uuid.uuid4().hex
    base = f"{receiver.url}/callbacks/daraja/s3cret"
    values: dict[str, Any] = {
        "kind": kind,
        "transfer_id": str(uuid.uuid4()),
        "request_ref": ref,
        "amount": Money(10_000, "KES"),
        "phone": RECIPIENT,
        "reason": "Payout for March",
        "result_url": f"{base}/xr-{ref}",
        "timeout_url": f"{base}/xt-{ref}",
        **kw,
    }
    return TransferRequest(**values)


def results(adapter: DarajaAdapter, receiver: Receiver, count: int) -> list[TransferEvent]:
    """The first ``count`` transfer results the receiver got, read by the adapter."""
    wait_until(
        lambda: len([r for r in receiver.all() if "/x" in r.path]) >= count,
        timeout_s=10,
        what=f"{count} transfer results",
    )
    events = []
    for received in [r for r in receiver.all() if "/x" in r.path][:count]:
        inbound = InboundCallback(
            "POST", received.query, received.body, received.headers, "127.0.0.1", "s3cret"
        )
        event = adapter.transfer_result(inbound, received.path.rsplit("/", 1)[-1])
        assert event is not None
        events.append(event)
    return events


def test_a_payout_is_paid_once_and_its_result_read(
    adapter: DarajaAdapter, credentials: DarajaCredentials, receiver: Receiver, sim: DarajaSim
) -> None:
    request = transfer(receiver)

    submission = adapter.payout(credentials, request)

    assert submission.accepted
    assert submission.gateway_ref is not None
    assert submission.gateway_ref.startswith("AG_")
    [event] = results(adapter, receiver, 1)
    witness = sim.transfer(request.request_ref)
    assert (witness["kind"], witness["amount"], witness["party"], witness["made"]) == (
        "b2c",
        100,
        RECIPIENT,
        1,
    )
    assert event.verdict.state == TransferState.SUCCEEDED
    assert event.verdict.receipt == witness["receipt"]
    assert event.verdict.amount == Money(10_000, "KES")
    assert (event.request_ref, event.gateway_ref) == (request.request_ref, submission.gateway_ref)
    assert RECIPIENT not in event.masked_body
    [sent] = sim.requests(kind="b2c")
    assert sent["body"]["PartyA"] == "174379"
    assert sent["body"]["Amount"] == 100


def test_a_payout_sent_again_is_refused_as_a_duplicate_and_paid_once(
    adapter: DarajaAdapter, credentials: DarajaCredentials, receiver: Receiver, sim: DarajaSim
) -> None:
    request = transfer(receiver)
    assert adapter.payout(credentials, request).accepted

    again = adapter.payout(credentials, request)

    assert (again.accepted, again.failure_code) == (False, "duplicate_transfer")
    assert [t["made"] for t in sim.transfers()] == [1]


def test_a_payout_without_initiator_credentials_is_refused_unsent(
    adapter: DarajaAdapter, receiver: Receiver, sim: DarajaSim
) -> None:
    bare = DarajaCredentials.from_stored(
        {k: v for k, v in STORED.items() if not k.startswith("initiator")}
    )

    submission = adapter.payout(bare, transfer(receiver))

    assert (submission.accepted, submission.failure_code) == (False, "gateway_configuration")
    assert sim.requests(kind="b2c") == []


def test_a_wrong_initiator_password_fails_the_payout_as_configuration(
    adapter: DarajaAdapter, receiver: Receiver, sim: DarajaSim
) -> None:
    wrong = DarajaCredentials.from_stored({**STORED, "initiator_password": "not-it"})

    assert adapter.payout(wrong, transfer(receiver)).accepted

    [event] = results(adapter, receiver, 1)
    assert (event.verdict.state, event.verdict.failure_code) == (
        TransferState.FAILED,
        "gateway_configuration",
    )
    assert sim.transfers()[0]["made"] == 0


def test_a_recipient_the_gateway_refuses_fails_the_payout(
    adapter: DarajaAdapter, credentials: DarajaCredentials, receiver: Receiver, sim: DarajaSim
) -> None:
    sim.transfer_scenario(match={"party": RECIPIENT}, result_code=2040)

    assert adapter.payout(credentials, transfer(receiver)).accepted

    [event] = results(adapter, receiver, 1)
    assert (event.verdict.state, event.verdict.failure_code) == (
        TransferState.FAILED,
        "recipient_invalid",
    )


def test_a_result_sent_twice_reads_as_one_event(
    adapter: DarajaAdapter, credentials: DarajaCredentials, receiver: Receiver, sim: DarajaSim
) -> None:
    sim.transfer_scenario(match={"party": RECIPIENT}, result="twice")

    adapter.payout(credentials, transfer(receiver))

    first, second = results(adapter, receiver, 2)
    assert first.event_key == second.event_key
    assert sim.transfers()[0]["made"] == 1


def test_a_queue_timeout_leaves_the_payout_pending(
    adapter: DarajaAdapter, credentials: DarajaCredentials, receiver: Receiver, sim: DarajaSim
) -> None:
    sim.transfer_scenario(match={"party": RECIPIENT}, result="timeout")
    request = transfer(receiver)

    adapter.payout(credentials, request)

    [event] = results(adapter, receiver, 1)
    assert (event.verdict.state, event.verdict.result_code) == (
        TransferState.PENDING,
        "queue_timeout",
    )
    assert event.request_ref == request.request_ref


def test_the_status_query_answers_at_the_result_url(
    adapter: DarajaAdapter, credentials: DarajaCredentials, receiver: Receiver, sim: DarajaSim
) -> None:
    sim.transfer_scenario(match={"party": RECIPIENT}, result="none")
    request = transfer(receiver)
    submission = adapter.payout(credentials, request)
    time.sleep(DELAY_S)  # the payout completes (its result is never sent)

    verdict = adapter.payout_status(credentials, request, submission.gateway_ref)

    assert (verdict.state, verdict.result_code) == (TransferState.PENDING, "query_sent")
    [event] = results(adapter, receiver, 1)
    assert event.verdict.state == TransferState.SUCCEEDED
    assert event.verdict.receipt == sim.transfer(request.request_ref)["receipt"]
    assert (event.request_ref, event.gateway_ref) == (request.request_ref, submission.gateway_ref)
    [query] = sim.requests(kind="transactionstatus")
    assert query["body"]["OriginalConversationID"] == request.request_ref


def test_the_status_query_of_a_transfer_never_made_is_not_found(
    adapter: DarajaAdapter, credentials: DarajaCredentials, receiver: Receiver, sim: DarajaSim
) -> None:
    adapter.payout_status(credentials, transfer(receiver), None)

    [event] = results(adapter, receiver, 1)
    assert event.verdict.state == TransferState.NOT_FOUND


def test_a_slow_answer_is_unknown_and_the_status_query_finds_the_payout(
    adapter: DarajaAdapter, credentials: DarajaCredentials, receiver: Receiver, sim: DarajaSim
) -> None:
    sim.transfer_scenario(match={"party": RECIPIENT}, ack_delay_s=3, result="none")
    request = transfer(receiver)

    with pytest.raises(GatewayOutcomeUnknown):
        adapter.payout(credentials, request)
    adapter.payout_status(credentials, request, None)

    [event] = results(adapter, receiver, 1)
    assert event.verdict.state == TransferState.SUCCEEDED
    assert sim.transfer(request.request_ref)["made"] == 1


def test_a_busy_gateway_is_unavailable_and_makes_nothing(
    adapter: DarajaAdapter, credentials: DarajaCredentials, receiver: Receiver, sim: DarajaSim
) -> None:
    busy = {"status": 500, "errorCode": "500.003.02", "errorMessage": "Spike Arrest", "times": 1}
    sim.transfer_scenario(match={"party": RECIPIENT}, ack_error=busy)

    with pytest.raises(GatewayUnavailable):
        adapter.payout(credentials, transfer(receiver))

    assert sim.transfers() == []


def test_no_certificate_is_unavailable_and_sends_nothing(
    base_url: str, credentials: DarajaCredentials, receiver: Receiver, sim: DarajaSim
) -> None:
    uncertified = DarajaAdapter(GatewaySettings(base_url, 2, 2))

    with pytest.raises(GatewayUnavailable, match="MALIPO_DARAJA_CERTIFICATE"):
        uncertified.payout(credentials, transfer(receiver))

    assert sim.requests(kind="b2c") == []


def test_a_refund_reverses_the_collection(
    adapter: DarajaAdapter, credentials: DarajaCredentials, receiver: Receiver, sim: DarajaSim
) -> None:
    push = adapter.push(
        credentials,
        PaymentRequest(
            payment_id=str(uuid.uuid4()),
            attempt_ref=uuid.uuid4().hex,
            amount=Money(5_000, "KES"),
            phone="254712000444",
            reference="ORDER-1",
            description=None,
            callback_url=f"{receiver.url}/callbacks/daraja/s3cret/attempt",
        ),
    )
    [payment] = [t for t in sim.transactions() if t["CheckoutRequestID"] == push.gateway_ref]
    time.sleep(DELAY_S)  # the collection completes
    request = transfer(
        receiver,
        TransferKind.REFUND,
        amount=Money(5_000, "KES"),
        phone="254712000444",
        payment_gateway_ref=push.gateway_ref,
        payment_receipt=payment["MpesaReceiptNumber"],
        payment_amount=Money(5_000, "KES"),
    )

    submission = adapter.refund(credentials, request)

    assert submission.accepted
    [event] = results(adapter, receiver, 1)
    witness = sim.transfer(request.request_ref)
    assert (witness["kind"], witness["party"], witness["made"]) == ("reversal", "254712000444", 1)
    assert witness["original_transaction_id"] == payment["MpesaReceiptNumber"]
    assert event.verdict.state == TransferState.SUCCEEDED
    assert event.verdict.receipt == witness["receipt"]
    assert event.verdict.amount == Money(5_000, "KES")
    # The collection's own callback reached the same receiver and is no transfer result.
    [stk] = [r for r in receiver.all() if r.path.endswith("/attempt")]
    inbound = InboundCallback("POST", "", stk.body, stk.headers, None, "s3cret")
    assert adapter.transfer_result(inbound, "attempt") is None


def test_a_refund_without_a_receipt_is_refused_unsent(
    adapter: DarajaAdapter, credentials: DarajaCredentials, receiver: Receiver, sim: DarajaSim
) -> None:
    submission = adapter.refund(credentials, transfer(receiver, TransferKind.REFUND))

    assert (submission.accepted, submission.failure_code) == (False, "gateway_rejected")
    assert sim.requests(kind="reversal") == []
