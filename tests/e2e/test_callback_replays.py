"""The same callback delivered many times at once, through several ingress processes: one effect.
And confirm-before-credit: only what Daraja's status API confirms is credited."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from shared.db.models import GatewayEvent, PaymentIntent
from shared.db.session import Database
from shared.merchants import set_callback_policy
from shared.settings import Settings
from tests.conftest import ApiClient, MerchantAccount
from tests.support.env import free_port
from tests.support.processes import ManagedProcess, ingress_process
from tests.support.rabbit import Rabbit
from tests.support.seed import (
    SeededPayment,
    ledger_state,
    seed_submitted_payments,
    success_callback,
)
from tests.support.sim import Simulator
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker", "ingress_server")]


@pytest.fixture(scope="module")
def second_ingress(
    test_env: dict[str, str], log_dir: Path, ingress_server: ManagedProcess
) -> Iterator[str]:
    port = free_port()
    env = {**test_env, "MALIPO_INGRESS_PORT": str(port)}
    process = ingress_process(env, log_dir, name="ingress-2").start()
    base = f"http://127.0.0.1:{port}"
    process.wait_http(f"{base}/readyz")
    yield base
    process.stop()


def events(db: Database, payment_id: uuid.UUID) -> list[GatewayEvent]:
    with db.transaction() as session:
        return list(
            session.scalars(select(GatewayEvent).where(GatewayEvent.intent_id == payment_id))
        )


@pytest.mark.parametrize("copies", [2, 10])
def test_concurrent_copies_through_two_ingress_processes_have_one_effect(
    db: Database,
    merchant: MerchantAccount,
    test_env: dict[str, str],
    second_ingress: str,
    rabbit: Rabbit,
    copies: int,
) -> None:
    [payment] = seed_submitted_payments(db, merchant.id, 1, tag=f"dup{uuid.uuid4().hex[:8]}")
    body = success_callback(payment, receipt=f"RD{uuid.uuid4().hex[:8].upper()}")
    bases = [test_env["MALIPO_PUBLIC_BASE_URL"], second_ingress]
    start, statuses = threading.Barrier(copies), []

    def deliver(i: int) -> None:
        start.wait()
        url = f"{bases[i % 2]}/callbacks/mpesa/{merchant.callback_secret}"
        statuses.append(
            requests.post(
                url, data=body, headers={"Content-Type": "application/json"}, timeout=30
            ).status_code
        )

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Every copy was acknowledged (so enqueued), and every one has been processed
    assert statuses == [200] * copies
    rabbit.wait_settled("callbacks")
    assert ledger_state(db, merchant.id).entries == 1
    assert ledger_state(db, merchant.id).total_minor == payment.amount_minor
    assert [e.outcome for e in events(db, payment.id)] == ["applied"]


def start_payment(api: ApiClient, merchant: MerchantAccount, phone: str) -> str:
    body = {
        "amount": 2500,
        "currency": "KES",
        "phone": phone,
        "reference": f"C-{uuid.uuid4().hex[:8]}",
    }
    response = api.post("/v1/payments", json=body, headers=merchant.headers(str(uuid.uuid4())))
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def load(db: Database, payment_id: str) -> PaymentIntent | None:
    with db.transaction() as session:
        return session.get(PaymentIntent, uuid.UUID(payment_id))


def test_confirm_before_credit_credits_a_success_the_status_query_confirms(
    api: ApiClient, db: Database, merchant: MerchantAccount, sim: Simulator
) -> None:
    with db.transaction() as session:
        set_callback_policy(session, merchant.id, "daraja", confirm_before_credit=True)

    payment_id = start_payment(api, merchant, "254711300001")

    intent = wait_until(
        lambda: (i := load(db, payment_id)) and i.status == "succeeded" and i,
        timeout_s=30,
        what="success",
    )
    assert intent.receipt  # the callback's word was applied, once the query confirmed it
    assert ledger_state(db, merchant.id).entries == 1
    assert [
        r
        for r in sim.requests(kind="query")
        if r["body"]["CheckoutRequestID"] == intent.gateway_ref
    ]


def test_confirm_before_credit_refuses_a_success_callback_the_status_query_contradicts(
    api: ApiClient,
    db: Database,
    merchant: MerchantAccount,
    sim: Simulator,
    test_env: dict[str, str],
    settings: Settings,
) -> None:
    # Given a merchant in confirm-before-credit mode, and a payment the customer really cancels
    with db.transaction() as session:
        set_callback_policy(session, merchant.id, "daraja", confirm_before_credit=True)
    sim.scenario(
        match={"phone": "254711300002"}, result_code=1032, callback="none", callback_delay_s=0.2
    )
    payment_id = start_payment(api, merchant, "254711300002")
    intent = wait_until(
        lambda: (i := load(db, payment_id)) and i.gateway_ref and i, what="the push"
    )

    # When a forged success callback for it arrives (someone learned the callback secret)
    forged = SeededPayment(intent.id, str(intent.gateway_ref), intent.amount_minor, intent.phone)
    answer = requests.post(
        f"{test_env['MALIPO_PUBLIC_BASE_URL']}/callbacks/mpesa/{merchant.callback_secret}",
        data=success_callback(forged, receipt="RFORGED001"),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )

    # Then it is recorded as suspicious and not credited; the payment ends as Daraja says
    assert answer.status_code == 200
    suspicious = wait_until(
        lambda: [e for e in events(db, intent.id) if e.outcome == "suspicious"],
        timeout_s=30,
        what="suspicious",
    )
    assert suspicious[0].detail == "status query says 1032"
    final = wait_until(
        lambda: (i := load(db, payment_id)) and i.status != "submitted" and i, what="the outcome"
    )
    assert (final.status, final.failure_code) == ("cancelled", "cancelled_by_user")
    assert "callback_contradicted" in final.flags
    assert final.receipt is None
    assert ledger_state(db, merchant.id).entries == 0
