"""A worker process SIGKILLed while applying callbacks loses nothing and credits nothing twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from shared.db.models import Balance, GatewayEvent
from shared.db.session import Database
from shared.settings import Settings
from tests.conftest import DARAJA_CREDENTIALS, make_merchant
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

PAYMENTS = 1200
DUPLICATED = 200  # these callbacks are delivered twice


def post_callbacks(base_url: str, secret: str, bodies: list[bytes]) -> None:
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=8))

    def post(body: bytes) -> int:
        response = session.post(
            f"{base_url}/callbacks/mpesa/{secret}",
            data=body,
            headers={"Content-Type": "application/json;charset=UTF-8"},
            timeout=30,
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(post, bodies))
    assert set(statuses) == {200}


def test_sigkill_mid_batch_loses_nothing_and_credits_once(
    rabbit: Rabbit,
    db: Database,
    settings: Settings,
    cipher: Any,
    broker: Any,
    ingress_server: ManagedProcess,
    test_env: dict[str, str],
    log_dir: Path,
) -> None:
    # Given 1,200 submitted payments and their success callbacks accepted by the ingress (200 twice)
    merchant = make_merchant(db, settings, cipher, daraja=dict(DARAJA_CREDENTIALS))
    payments = seed_submitted_payments(db, merchant.id, PAYMENTS, tag="kill")
    bodies = [success_callback(p, receipt=f"RK{i:08d}") for i, p in enumerate(payments)]
    post_callbacks(
        test_env["MALIPO_PUBLIC_BASE_URL"],
        str(merchant.callback_secret),
        bodies + bodies[:DUPLICATED],
    )

    # When a worker process is killed with SIGKILL in the middle of applying them
    first = worker_process(test_env, log_dir, name="chaos-worker-1", threads=4).start()
    try:
        wait_until(
            lambda: ledger_state(db, merchant.id).entries >= PAYMENTS // 10,
            timeout_s=60,
            interval_s=0.02,
            what="the worker to be mid-batch",
        )
    finally:
        first.kill()
    credited_at_kill = ledger_state(db, merchant.id).entries
    assert credited_at_kill < PAYMENTS, "the kill must land mid-batch"

    # Then a fresh worker finishes the batch: every payment succeeded, each credited exactly once
    second = worker_process(test_env, log_dir, name="chaos-worker-2", threads=4).start()
    try:
        wait_until(
            lambda: status_counts(db, merchant.id).get("succeeded") == PAYMENTS,
            timeout_s=120,
            what="every payment to succeed",
        )
        wait_until(
            lambda: rabbit.counts("callbacks")[0] == 0,
            timeout_s=60,
            what="the callbacks queue to drain",
        )
    finally:
        second.stop()

    ledger = ledger_state(db, merchant.id)
    assert ledger.entries == ledger.distinct_intents == PAYMENTS
    assert ledger.total_minor == sum(p.amount_minor for p in payments)
    with db.transaction() as session:
        balance = session.get(Balance, (merchant.id, "KES"))
        applied = session.scalar(
            select(func.count())
            .select_from(GatewayEvent)
            .where(GatewayEvent.merchant_id == merchant.id, GatewayEvent.outcome == "applied")
        )
        stored = session.scalar(
            select(func.count())
            .select_from(GatewayEvent)
            .where(GatewayEvent.merchant_id == merchant.id)
        )
    assert balance is not None
    assert balance.available_minor == ledger.total_minor
    assert applied == stored == PAYMENTS  # duplicates stopped at the event key
    assert credited_at_kill > 0
