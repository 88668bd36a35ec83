"""IntaSend's money out over real HTTP: the adapter's chargebacks and send-money against the
sandbox's IntaSend simulator, whose witness (``/_sim/transfers``) counts the money moved."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.app import create_sandbox
from sandbox.config import SimulatorConfig
from shared.domain.money import Money
from shared.gateways.base import GatewayOutcomeUnknown, InboundCallback, Outcome, PaymentRequest
from shared.gateways.description import GatewaySettings
from shared.gateways.intasend import DESCRIPTION
from shared.gateways.intasend.client import IntaSendAdapter
from shared.gateways.intasend.transformers import IntaSendCredentials
from shared.gateways.transfers import (
    RESULT_TAIL,
    TIMEOUT_TAIL,
    TransferKind,
    TransferRequest,
    TransferState,
    TransferVerdict,
)
from tests.support.intasend_sim import IntaSendSimulator
from tests.support.receiver import Receiver, receiving
from tests.support.serving import serving_wsgi
from tests.support.waiting import wait_until

DELAY_S = 0.3
WAIT_S = 5.0


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    sandbox = create_sandbox(SimulatorConfig(callback_delay_s=DELAY_S))
    try:
        with serving_wsgi(sandbox) as root:
            yield f"{root}/intasend"
    finally:
        sandbox.close()


@pytest.fixture
def sim(sandbox_url: str) -> Iterator[IntaSendSimulator]:
    control = IntaSendSimulator(sandbox_url)
    control.reset()
    yield control
    control.http.close()


@pytest.fixture
def adapter(sandbox_url: str) -> IntaSendAdapter:
    return IntaSendAdapter(GatewaySettings(f"{sandbox_url}/api/v1", 2, 2))


def credentials(**changes: str) -> IntaSendCredentials:
    return IntaSendCredentials.from_stored({**DESCRIPTION.simulator_credentials, **changes})


def transfer(
    kind: TransferKind,
    amount_minor: int = 5_000,
    *,
    invoice: str | None = None,
    phone: str = "254712345678",
    result_url: str = "http://127.0.0.1:9/callbacks/intasend/s3cret",
) -> TransferRequest:
    ref = uuid.uuid4().hex
    return TransferRequest(
        kind=kind,
        transfer_id=str(uuid.uuid4()),
        request_ref=ref,
        amount=Money(amount_minor, "KES"),
        phone=phone,
        reason="Returned goods",
        result_url=f"{result_url}/{RESULT_TAIL}{ref}",
        timeout_url=f"{result_url}/{TIMEOUT_TAIL}{ref}",
        payment_gateway_ref=invoice,
        payment_amount=Money(10_000, "KES") if invoice else None,
    )


def paid_invoice(adapter: IntaSendAdapter) -> str:
    """A COMPLETE invoice of KES 100, paid through the simulator's STK push."""
    payment = PaymentRequest(
        payment_id=str(uuid.uuid4()),
        attempt_ref=str(uuid.uuid4()),
        amount=Money(10_000, "KES"),
        phone="254712345678",
        reference="ORDER-1",
        description=None,
        callback_url="http://127.0.0.1:9/unused",
    )
    ref = adapter.push(credentials(), payment).gateway_ref
    assert ref is not None
    deadline = time.monotonic() + WAIT_S
    while adapter.query_status(credentials(), ref).verdict.outcome is not Outcome.SUCCEEDED:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return ref


def times_moved(sim: IntaSendSimulator, request_ref: str) -> int:
    """How often the simulator moved money for ``request_ref`` (its witness)."""
    witness = sim.transfer(request_ref)
    assert witness is not None, f"nothing was made for {request_ref}"
    moved: int = witness["times_moved"]
    return moved


def settled(ask: Any, *args: Any) -> TransferVerdict:
    deadline = time.monotonic() + WAIT_S
    while True:
        verdict: TransferVerdict = ask(*args)
        if verdict.state is not TransferState.PENDING or time.monotonic() > deadline:
            return verdict
        time.sleep(0.05)


# -- refunds (chargebacks) ---------------------------------------------------------------------


def test_a_refund_is_a_chargeback_that_completes_and_moves_money_once(
    adapter: IntaSendAdapter, sim: IntaSendSimulator
) -> None:
    request = transfer(TransferKind.REFUND, invoice=paid_invoice(adapter))

    submission = adapter.refund(credentials(), request)

    assert submission.accepted
    assert submission.gateway_ref
    [sent] = sim.requests(kind="chargeback")
    assert sent["body"]["reason_details"] == request.request_ref
    assert sent["body"]["amount"] == "50.00"
    pending = adapter.refund_status(credentials(), request, submission.gateway_ref)
    assert pending.state is TransferState.PENDING
    verdict = settled(adapter.refund_status, credentials(), request, submission.gateway_ref)
    assert (verdict.state, verdict.amount) == (TransferState.SUCCEEDED, Money(5_000, "KES"))
    witness = sim.transfer(request.request_ref)
    assert witness is not None
    assert (witness["kind"], witness["times_moved"]) == ("refund", 1)


def test_a_lost_chargeback_answer_is_unknown_and_found_again_by_our_ref(
    adapter: IntaSendAdapter, sim: IntaSendSimulator
) -> None:
    invoice = paid_invoice(adapter)
    sim.transfer_scenario(match={"invoice": invoice}, answer_delay_s=3)
    request = transfer(TransferKind.REFUND, invoice=invoice)

    with pytest.raises(GatewayOutcomeUnknown):
        adapter.refund(credentials(), request)

    verdict = settled(adapter.refund_status, credentials(), request, None)
    assert verdict.state is TransferState.SUCCEEDED
    assert times_moved(sim, request.request_ref) == 1


def test_a_refund_never_made_is_not_found(adapter: IntaSendAdapter, sim: IntaSendSimulator) -> None:
    request = transfer(TransferKind.REFUND, invoice=paid_invoice(adapter))

    assert adapter.refund_status(credentials(), request, None).state is TransferState.NOT_FOUND
    assert sim.transfer(request.request_ref) is None


def test_a_refund_above_what_is_left_is_refused_and_a_cancelled_one_fails(
    adapter: IntaSendAdapter, sim: IntaSendSimulator
) -> None:
    invoice = paid_invoice(adapter)
    first = adapter.refund(credentials(), transfer(TransferKind.REFUND, 8_000, invoice=invoice))
    assert first.accepted

    refused = adapter.refund(credentials(), transfer(TransferKind.REFUND, 3_000, invoice=invoice))

    assert (refused.accepted, refused.failure_code) == (False, "transfer_refused")
    assert "refundable balance" in refused.message
    sim.transfer_scenario(match={"invoice": invoice}, outcome="cancel")
    cancelled = transfer(TransferKind.REFUND, 2_000, invoice=invoice)
    submission = adapter.refund(credentials(), cancelled)
    verdict = settled(adapter.refund_status, credentials(), cancelled, submission.gateway_ref)
    assert (verdict.state, verdict.failure_code) == (TransferState.FAILED, "transfer_refused")
    assert times_moved(sim, cancelled.request_ref) == 0


# -- payouts (send-money) ----------------------------------------------------------------------


def test_a_payout_is_sent_and_succeeds_with_the_m_pesa_receipt(
    adapter: IntaSendAdapter, sim: IntaSendSimulator
) -> None:
    request = transfer(TransferKind.PAYOUT)

    submission = adapter.payout(credentials(), request)

    assert submission.accepted
    assert submission.gateway_ref
    [initiate] = sim.requests(kind="send_money")
    assert initiate["body"]["transactions"][0]["idempotency_key"] == request.request_ref
    assert initiate["body"]["callback_url"] == request.result_url
    assert initiate["body"]["requires_approval"] == "NO"
    verdict = settled(adapter.payout_status, credentials(), request, submission.gateway_ref)
    assert verdict.state is TransferState.SUCCEEDED
    assert verdict.receipt
    assert verdict.amount == Money(5_000, "KES")
    assert times_moved(sim, request.request_ref) == 1


def test_an_account_that_requires_approval_gets_each_payout_approved_at_once(
    adapter: IntaSendAdapter, sim: IntaSendSimulator
) -> None:
    request = transfer(TransferKind.PAYOUT)
    approving = credentials(payout_approval="yes")

    submission = adapter.payout(approving, request)

    paths = [r["path"] for r in sim.requests(kind="send_money")]
    assert paths == ["/api/v1/send-money/initiate/", "/api/v1/send-money/approve/"]
    verdict = settled(adapter.payout_status, approving, request, submission.gateway_ref)
    assert verdict.state is TransferState.SUCCEEDED
    assert times_moved(sim, request.request_ref) == 1


def test_a_re_sent_payout_is_refused_as_a_duplicate(
    adapter: IntaSendAdapter, sim: IntaSendSimulator
) -> None:
    request = transfer(TransferKind.PAYOUT)
    assert adapter.payout(credentials(), request).accepted

    again = adapter.payout(credentials(), request)

    assert (again.accepted, again.failure_code) == (False, "duplicate_transfer")
    settled(adapter.payout_status, credentials(), request, None)
    witness = sim.transfer(request.request_ref)
    assert witness is not None
    assert witness["times_moved"] == 1
    assert len(witness["gateway_refs"]) == 1


@pytest.mark.parametrize(
    ("scenario", "failure"),
    [({"outcome": "fail"}, "recipient_invalid"), ({"outcome": "float_low"}, "gateway_funds_low")],
)
def test_failed_payouts_fail_with_their_reason_and_move_nothing(
    adapter: IntaSendAdapter, sim: IntaSendSimulator, scenario: dict[str, str], failure: str
) -> None:
    sim.transfer_scenario(match={"phone": "254711000111"}, **scenario)
    request = transfer(TransferKind.PAYOUT, phone="254711000111")

    submission = adapter.payout(credentials(), request)
    verdict = settled(adapter.payout_status, credentials(), request, submission.gateway_ref)

    assert (verdict.state, verdict.failure_code) == (TransferState.FAILED, failure)
    assert times_moved(sim, request.request_ref) == 0


def test_a_lost_payout_answer_is_found_by_our_ref_and_a_busy_one_is_not_made(
    adapter: IntaSendAdapter, sim: IntaSendSimulator
) -> None:
    sim.transfer_scenario(match={"phone": "254711000222"}, answer_delay_s=3)
    lost = transfer(TransferKind.PAYOUT, phone="254711000222")
    with pytest.raises(GatewayOutcomeUnknown):
        adapter.payout(credentials(), lost)

    assert settled(adapter.payout_status, credentials(), lost, None).state is (
        TransferState.SUCCEEDED
    )
    sim.transfer_scenario(match={"phone": "254711000333"}, error={"status": 500})
    busy = transfer(TransferKind.PAYOUT, phone="254711000333")
    with pytest.raises(GatewayOutcomeUnknown):
        adapter.payout(credentials(), busy)
    assert adapter.payout_status(credentials(), busy, None).state is TransferState.NOT_FOUND
    assert times_moved(sim, lost.request_ref) == 1
    assert sim.transfer(busy.request_ref) is None


# -- webhooks to a local receiver --------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving(b"", "text/plain") as received:
        yield received


def _events(adapter: IntaSendAdapter, receiver: Receiver, count: int) -> list[tuple[str, Any]]:
    posts = wait_until(
        lambda: receiver.all() if len(receiver.all()) >= count else None,
        timeout_s=WAIT_S,
        interval_s=0.02,
        what=f"{count} webhooks",
    )
    verifiers = DESCRIPTION.callback_verifiers(DESCRIPTION.simulator_credentials)
    events = []
    for post in posts:
        inbound = InboundCallback("POST", "", post.body, {}, "127.0.0.1", "s3cret")
        assert adapter.authenticate_callback(verifiers, inbound) is None  # the challenge
        tail = post.path.rsplit("/", 1)[-1] if "/xr-" in post.path else None
        events.append((post.path, adapter.transfer_result(inbound, tail)))
    return events


def test_chargeback_webhooks_reach_the_dashboard_url_with_the_challenge_twice(
    adapter: IntaSendAdapter, sim: IntaSendSimulator, receiver: Receiver
) -> None:
    invoice = paid_invoice(adapter)
    url = f"{receiver.url}/callbacks/intasend/s3cret"
    sim.set_webhook(credentials().publishable_key, url, credentials().challenge)
    sim.transfer_scenario(match={"invoice": invoice}, webhook="twice")
    request = transfer(TransferKind.REFUND, invoice=invoice)

    submission = adapter.refund(credentials(), request)

    events = _events(adapter, receiver, 2)
    assert [path for path, _ in events] == ["/callbacks/intasend/s3cret"] * 2
    keys = {event.event_key for _, event in events}
    assert keys == {f"chargeback:{submission.gateway_ref}:COMPLETED"}
    assert all(event.request_ref == request.request_ref for _, event in events)


def test_send_money_results_reach_the_result_url_with_its_tail(
    adapter: IntaSendAdapter, sim: IntaSendSimulator, receiver: Receiver
) -> None:
    root = f"{receiver.url}/callbacks/intasend/s3cret"
    request = transfer(TransferKind.PAYOUT, result_url=root)

    submission = adapter.payout(credentials(), request)

    [(path, event)] = _events(adapter, receiver, 1)
    assert path == f"/callbacks/intasend/s3cret/xr-{request.request_ref}"
    assert event is not None
    assert (event.request_ref, event.gateway_ref) == (request.request_ref, submission.gateway_ref)
    assert event.verdict.state is TransferState.SUCCEEDED
