"""2,000 payments through every real process while something breaks mid-batch.

For each run — a worker SIGKILLed, RabbitMQ restarted, PostgreSQL restarted —
every accepted payment reaches a final state, every success is credited exactly
once, every merchant event reaches the merchant's endpoint (deduplicated by
webhook-id), and the ledger total equals the sum of the succeeded payments.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.db.session import Database
from shared.settings import Settings
from shared.webhooks import set_endpoint
from tests.conftest import DARAJA_CREDENTIALS, make_merchant
from tests.support.chaos import (
    PaymentLoad,
    finished,
    merchant_receiver,
    restart_rabbitmq,
    verify_batch,
)
from tests.support.processes import ManagedProcess, python_module, worker_process
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]

PAYMENTS = int(os.environ.get("MALIPO_CHAOS_PAYMENTS", "2000"))
CHAOS_ENV = {
    # The relay and sweep run often, so what a crash interrupted is picked up within seconds.
    "MALIPO_OUTBOX_RELAY_AFTER_S": "15",
    "MALIPO_OUTBOX_RELAY_INTERVAL_S": "3",
    "MALIPO_SCHEDULER_SWEEP_INTERVAL_S": "3",
    "MALIPO_DEAD_LETTER_DRAIN_INTERVAL_S": "30",
    "MALIPO_WEBHOOK_RETRY_SCHEDULE_S": "1,2,4,8,15,30,60",
    "MALIPO_WEBHOOK_TIMEOUT_S": "5",
    "MALIPO_PAYMENT_EXPIRY_S": "60",
}


@pytest.fixture
def stack(
    test_env: dict[str, str],
    log_dir: Path,
    ingress_server: ManagedProcess,
    sandbox_server: ManagedProcess,
) -> Iterator[dict[str, Any]]:
    env = {**test_env, **CHAOS_ENV}
    scheduler = ManagedProcess(
        "chaos-scheduler", python_module("workers.scheduler"), env, log_dir
    ).start()
    workers = {"current": worker_process(env, log_dir, name="chaos-worker", threads=8).start()}
    yield {"env": env, "workers": workers, "log_dir": log_dir}
    workers["current"].stop()
    scheduler.stop()


def run_batch(
    db: Database,
    settings: Settings,
    cipher: Any,
    test_env: dict[str, str],
    breakage: Callable[[], None],
) -> dict[str, int]:
    merchant = make_merchant(db, settings, cipher, daraja=dict(DARAJA_CREDENTIALS))
    with merchant_receiver() as receiver:
        with db.transaction() as session:
            set_endpoint(
                session,
                cipher,
                merchant.id,
                receiver.url,
                production=False,
                allowed_hosts=settings.webhook_allowed_hosts(),
            )
        load = PaymentLoad(test_env["MALIPO_PUBLIC_BASE_URL"], merchant.api_key, PAYMENTS)
        loading = load.run()
        wait_until(
            lambda: finished(db, merchant.id) >= PAYMENTS // 4,
            timeout_s=300,
            interval_s=0.2,
            what="a quarter done",
        )
        breakage()
        loading.join(timeout=600)
        return verify_batch(db, merchant.id, load, receiver)


def test_a_worker_killed_mid_batch(
    db: Database, settings: Settings, cipher: Any, test_env: dict[str, str], stack: dict[str, Any]
) -> None:
    def kill_worker() -> None:
        stack["workers"]["current"].kill()
        stack["workers"]["current"] = worker_process(
            stack["env"], stack["log_dir"], name="chaos-worker-2", threads=8
        ).start()

    statuses = run_batch(db, settings, cipher, test_env, kill_worker)

    assert statuses.get("succeeded", 0) > PAYMENTS // 2


def test_rabbitmq_restarted_mid_batch(
    db: Database,
    settings: Settings,
    cipher: Any,
    test_env: dict[str, str],
    stack: dict[str, Any],
    broker: Any,
) -> None:
    statuses = run_batch(db, settings, cipher, test_env, restart_rabbitmq)

    assert statuses.get("succeeded", 0) > PAYMENTS // 2


def postgres_cluster() -> list[str]:
    version = sorted(os.listdir("/etc/postgresql"), key=lambda v: [int(p) for p in v.split(".")])[
        -1
    ]
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]


def test_postgresql_restarted_mid_batch(
    db: Database, settings: Settings, cipher: Any, test_env: dict[str, str], stack: dict[str, Any]
) -> None:
    def restart_postgresql() -> None:
        subprocess.run(
            [*postgres_cluster(), "restart"], check=True, capture_output=True, timeout=120
        )

    statuses = run_batch(db, settings, cipher, test_env, restart_postgresql)

    assert statuses.get("succeeded", 0) > PAYMENTS // 2
