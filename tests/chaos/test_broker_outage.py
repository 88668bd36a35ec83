"""RabbitMQ stops mid-test: callbacks are acknowledged, spooled, then applied once it returns."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from shared.db.session import Database
from shared.settings import Settings
from tests.conftest import DARAJA_CREDENTIALS, make_merchant
from tests.support.chaos import rabbitmq
from tests.support.processes import ManagedProcess, worker_process
from tests.support.rabbit import Rabbit
from tests.support.seed import (
    ledger_state,
    seed_submitted_payments,
    status_counts,
    success_callback,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.chaos

PAYMENTS = 60


def test_callbacks_during_an_outage_are_spooled_then_applied_exactly_once(
    rabbit: Rabbit,
    db: Database,
    settings: Settings,
    cipher: Any,
    broker: Any,
    ingress_server: ManagedProcess,
    test_env: dict[str, str],
    log_dir: Path,
) -> None:
    # Given submitted payments whose success callbacks will arrive while RabbitMQ is down
    merchant = make_merchant(db, settings, cipher, daraja=dict(DARAJA_CREDENTIALS))
    payments = seed_submitted_payments(db, merchant.id, PAYMENTS, tag="outage")
    bodies = [success_callback(p, receipt=f"RO{i:08d}") for i, p in enumerate(payments)]
    base = test_env["MALIPO_PUBLIC_BASE_URL"]
    url = f"{base}/callbacks/mpesa/{merchant.callback_secret}"

    def post(body: bytes) -> requests.Response:
        return requests.post(
            url, data=body, headers={"Content-Type": "application/json"}, timeout=30
        )

    rabbitmq("stop_app")
    try:
        # When the callbacks (and a few duplicates) are posted during the outage
        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(post, bodies + bodies[:10]))
        command = requests.post(
            f"{base}/v1/payments",
            json={"amount": 100, "currency": "KES", "phone": "0712345678", "reference": "OUT-1"},
            headers=merchant.headers("outage-1"),
            timeout=30,
        )
        ready = requests.get(f"{base}/readyz", timeout=30)
    finally:
        rabbitmq("start_app")
        rabbitmq("await_startup")

    # Then every callback was acknowledged in Daraja's form and held in the spool,
    # while a merchant command was told to come back later
    assert {a.status_code for a in answers} == {200}
    assert all(a.json() == {"ResultCode": 0, "ResultDesc": "Accepted"} for a in answers)
    assert command.status_code == 503
    assert command.headers["Retry-After"]
    assert ready.status_code == 503
    assert ready.json()["spool_depth"] == len(answers)

    # And once RabbitMQ is back, the spool drains and each payment is credited exactly once
    worker = worker_process(test_env, log_dir, name="outage-worker").start()
    try:
        wait_until(
            lambda: requests.get(f"{base}/readyz", timeout=10).json()["spool_depth"] == 0,
            timeout_s=60,
            what="the spool to drain",
        )
        wait_until(
            lambda: status_counts(db, merchant.id).get("succeeded") == PAYMENTS,
            timeout_s=60,
            what="every payment to succeed",
        )
        wait_until(lambda: rabbit.counts("callbacks")[0] == 0, what="queue drained")
    finally:
        worker.stop()
    ledger = ledger_state(db, merchant.id)
    assert ledger.entries == ledger.distinct_intents == PAYMENTS
    assert ledger.total_minor == sum(p.amount_minor for p in payments)
    assert not list(Path(test_env["MALIPO_SPOOL_DIR"]).glob("*.json"))
