"""Transient failures retry with growing delays; exhausted ones are archived; replay applies once.

This module runs its workers as real processes (no in-process worker): one of them
is given a short retry policy and lock timeout, to exhaust its retries quickly.
"""

from __future__ import annotations

import itertools
import json
import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import select, text

from shared.cli import main
from shared.db.models import DeadLetter, GatewayEvent, PaymentIntent
from shared.db.session import Database
from shared.settings import Settings
from tests.conftest import ApiClient, MerchantAccount
from tests.support.processes import ManagedProcess, worker_process
from tests.support.rabbit import Rabbit
from tests.support.seed import ledger_state, seed_submitted_payments, success_callback
from tests.support.sim import Simulator
from tests.support.waiting import wait_until

pytestmark = pytest.mark.usefixtures("ingress_server")

IMPATIENT = {
    # apply_callback gives up after 2 quick retries; a lock held 200 ms is a transient error.
    "MALIPO_RETRY_POLICIES": json.dumps(
        {"apply_callback": {"max_retries": 2, "min_backoff_ms": 100, "max_backoff_ms": 300}}
    ),
    "MALIPO_DB_LOCK_TIMEOUT_MS": "200",
}


@pytest.fixture(scope="module")
def patient_worker(
    test_env: dict[str, str], log_dir: Path, broker: Any
) -> Iterator[ManagedProcess]:
    process = worker_process(test_env, log_dir, name="retries-worker").start()
    yield process
    process.stop()


def test_a_transient_gateway_failure_is_retried_with_growing_delays_then_succeeds(
    api: ApiClient,
    merchant: MerchantAccount,
    sim: Simulator,
    db: Database,
    patient_worker: ManagedProcess,
) -> None:
    # Given Daraja answers "busy" (500.003.02) to the first three pushes for this phone
    sim.scenario(
        match={"phone": "254711500001"},
        push_error={
            "status": 500,
            "errorCode": "500.003.02",
            "errorMessage": "Spike Arrest Violation",
            "times": 3,
        },
    )
    body = {
        "amount": 100,
        "currency": "KES",
        "phone": "254711500001",
        "reference": f"T-{uuid.uuid4().hex[:8]}",
    }

    # When a payment is made
    payment_id = api.post(
        "/v1/payments", json=body, headers=merchant.headers(str(uuid.uuid4()))
    ).json()["id"]

    # Then the push is retried after growing delays and the payment succeeds
    def finished() -> PaymentIntent | None:
        with db.transaction() as session:
            intent = session.get(PaymentIntent, uuid.UUID(payment_id))
        return intent if intent is not None and intent.status == "succeeded" else None

    wait_until(finished, timeout_s=60, what="the payment to succeed")
    pushes = [
        r
        for r in sim.requests(kind="stkpush")
        if r["body"].get("PhoneNumber") == "254711500001" and r["status"] != 404
    ]
    assert [p["status"] for p in pushes] == [500, 500, 500, 200]
    times = [datetime.fromisoformat(p["time"]) for p in pushes]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.9  # at least the 1 s minimum backoff
    assert gaps[0] < gaps[1] < gaps[2]  # exponential: each wait longer than the last


@pytest.fixture
def impatient_worker(
    test_env: dict[str, str], log_dir: Path, patient_worker: ManagedProcess
) -> Iterator[ManagedProcess]:
    patient_worker.stop()  # only the impatient worker consumes during this test
    process = worker_process({**test_env, **IMPATIENT}, log_dir, name="impatient-worker").start()
    yield process
    process.stop()
    patient_worker.start()


def test_an_exhausted_message_is_archived_and_replaying_it_twice_applies_once(
    db: Database,
    settings: Settings,
    merchant: MerchantAccount,
    test_env: dict[str, str],
    impatient_worker: ManagedProcess,
    rabbit: Rabbit,
) -> None:
    # Given a submitted payment whose row another transaction keeps locked
    [payment] = seed_submitted_payments(db, merchant.id, 1, tag=f"x{uuid.uuid4().hex[:8]}")
    blocker = db.engine.connect()
    blocker.begin()
    blocker.execute(
        text("SELECT 1 FROM payment_intents WHERE id = :id FOR UPDATE"), {"id": payment.id}
    )
    try:
        # When its success callback arrives, the worker cannot lock the payment, retries, gives up
        url = f"{test_env['MALIPO_PUBLIC_BASE_URL']}/callbacks/mpesa/{merchant.callback_secret}"
        answer = requests.post(
            url,
            data=success_callback(payment, "REXHAUST01"),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert answer.status_code == 200
        row = wait_until(
            lambda: dead_letter_of(db, "apply_callback", payment.checkout_id),
            timeout_s=30,
            what="the dead letter",
        )
    finally:
        blocker.rollback()
        blocker.close()

    # Then it is in the archive with its retries and traceback, listed by `malipo dlq list`
    assert (row.status, row.retries) == ("dead", 2)
    assert "LockNotAvailable" in (row.traceback or "") or "lock timeout" in (row.traceback or "")
    listed = CliRunner().invoke(
        main, ["dlq", "list", "--actor", "apply_callback"], env=dict(os.environ)
    )
    assert str(row.id) in listed.output
    assert ledger_state(db, merchant.id).entries == 0

    # And replaying it twice (the lock is gone; the second forced) credits the payment once
    for _ in range(2):
        replayed = CliRunner().invoke(
            main,
            ["dlq", "replay", str(row.id), "--reason", "lock released", "--force"],
            env=dict(os.environ),
        )
        assert replayed.exit_code == 0, replayed.output
    rabbit.wait_settled("callbacks")  # both replayed copies have been processed
    with db.transaction() as session:
        archived = session.get(DeadLetter, row.id)
        assert archived is not None
        assert (archived.status, archived.replay_count) == ("replayed", 2)
    assert ledger_state(db, merchant.id).entries == 1
    assert applied_events(db, payment.id) == 1


def dead_letter_of(db: Database, actor: str, marker: str) -> DeadLetter | None:
    import base64

    with db.transaction() as session:
        for row in session.scalars(select(DeadLetter).where(DeadLetter.actor == actor)):
            try:
                body = base64.b64decode(row.message.get("kwargs", {}).get("body_b64", ""))
            except ValueError:
                continue  # another test's poisoned message
            if marker.encode() in body:
                return row
    return None


def applied_events(db: Database, payment_id: uuid.UUID) -> int:
    with db.transaction() as session:
        return len(
            session.scalars(
                select(GatewayEvent).where(
                    GatewayEvent.intent_id == payment_id, GatewayEvent.outcome == "applied"
                )
            ).all()
        )
