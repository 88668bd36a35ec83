"""A batch of payments through every real process while something breaks mid-batch.

For each run — a worker SIGKILLed, RabbitMQ restarted and its Erlang VM SIGKILLed,
PostgreSQL restarted and stopped in immediate mode (crash recovery), the ingress's
gunicorn master and workers SIGKILLed while callbacks arrive — every accepted
payment reaches a final state, every success is credited exactly once, no customer
was prompted twice and each who answered was prompted once (by the gateway
simulator's own count), never after the payment was final, every merchant event
reaches the merchant's endpoint
(deduplicated by webhook-id), and the ledger total equals the sum of the succeeded
payments. ``MALIPO_CHAOS_PAYMENTS`` sizes the batch: 500 in ``make test``, 2,000 in
``make chaos``.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.db.session import Database
from shared.settings import Settings
from tests.support.chaos import (
    CHAOS_ENV,
    crash_postgresql,
    crash_rabbitmq,
    postgres_cluster,
    restart_rabbitmq,
    run_batch,
)
from tests.support.chaos import (
    CHAOS_PAYMENTS as PAYMENTS,
)
from tests.support.env import free_port
from tests.support.processes import (
    ManagedProcess,
    ingress_process,
    python_module,
    worker_process,
)

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]


def start_stack(env: dict[str, str], log_dir: Path) -> dict[str, Any]:
    scheduler = ManagedProcess(
        "chaos-scheduler", python_module("workers.scheduler"), env, log_dir
    ).start()
    workers = {"current": worker_process(env, log_dir, name="chaos-worker", threads=8).start()}
    return {"env": env, "workers": workers, "scheduler": scheduler, "log_dir": log_dir}


def stop_stack(stack: dict[str, Any]) -> None:
    stack["workers"]["current"].stop()
    stack["scheduler"].stop()


@pytest.fixture
def stack(
    test_env: dict[str, str],
    log_dir: Path,
    ingress_server: ManagedProcess,
    sandbox_server: ManagedProcess,
) -> Iterator[dict[str, Any]]:
    running = start_stack({**test_env, **CHAOS_ENV}, log_dir)
    yield running
    stop_stack(running)


@pytest.fixture
def own_ingress_stack(
    test_env: dict[str, str], log_dir: Path, sandbox_server: ManagedProcess, broker: Any
) -> Iterator[dict[str, Any]]:
    """A stack with an ingress of its own (the suite's shared one is never killed): the
    workers give the gateway callback URLs on it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **test_env,
        **CHAOS_ENV,
        "MALIPO_INGRESS_PORT": str(port),
        "MALIPO_PUBLIC_BASE_URL": base,
        # Its own spool: what a killed ingress spooled is drained by its successor.
        "MALIPO_SPOOL_DIR": tempfile.mkdtemp(prefix="malipo-chaos-spool-"),
    }
    ingress = {"current": ingress_process(env, log_dir, name="chaos-ingress").start()}
    ingress["current"].wait_http(f"{base}/readyz")
    running = start_stack(env, log_dir)
    running["ingress"] = ingress
    yield running
    stop_stack(running)
    ingress["current"].stop()


def test_a_worker_killed_mid_batch(
    db: Database, settings: Settings, cipher: Any, test_env: dict[str, str], stack: dict[str, Any]
) -> None:
    def kill_worker() -> None:
        stack["workers"]["current"].kill()
        stack["workers"]["current"] = worker_process(
            stack["env"], stack["log_dir"], name="chaos-worker-2", threads=8
        ).start()

    statuses = run_batch(
        db, settings, cipher, PAYMENTS, stack["env"], kill_worker, "worker SIGKILLed"
    )

    assert statuses.get("succeeded", 0) > PAYMENTS // 2


def test_rabbitmq_restarted_mid_batch(
    db: Database,
    settings: Settings,
    cipher: Any,
    test_env: dict[str, str],
    stack: dict[str, Any],
    broker: Any,
) -> None:
    statuses = run_batch(
        db, settings, cipher, PAYMENTS, stack["env"], restart_rabbitmq, "RabbitMQ restarted"
    )

    assert statuses.get("succeeded", 0) > PAYMENTS // 2


def test_postgresql_restarted_mid_batch(
    db: Database, settings: Settings, cipher: Any, test_env: dict[str, str], stack: dict[str, Any]
) -> None:
    def restart_postgresql() -> None:
        subprocess.run(
            [*postgres_cluster(), "restart"], check=True, capture_output=True, timeout=120
        )  # a clean restart: a checkpoint, then start

    statuses = run_batch(
        db, settings, cipher, PAYMENTS, stack["env"], restart_postgresql, "PostgreSQL restarted"
    )

    assert statuses.get("succeeded", 0) > PAYMENTS // 2


def test_rabbitmq_vm_sigkilled_mid_batch(
    db: Database,
    settings: Settings,
    cipher: Any,
    stack: dict[str, Any],
    broker: Any,
) -> None:
    statuses = run_batch(
        db, settings, cipher, PAYMENTS, stack["env"], crash_rabbitmq, "RabbitMQ VM SIGKILLed"
    )

    assert statuses.get("succeeded", 0) > PAYMENTS // 2


def test_postgresql_stopped_in_immediate_mode_mid_batch(
    db: Database, settings: Settings, cipher: Any, stack: dict[str, Any]
) -> None:
    statuses = run_batch(
        db,
        settings,
        cipher,
        PAYMENTS,
        stack["env"],
        crash_postgresql,
        "PostgreSQL crashed (immediate)",
    )

    assert statuses.get("succeeded", 0) > PAYMENTS // 2


def test_the_ingress_sigkilled_while_callbacks_arrive(
    db: Database, settings: Settings, cipher: Any, own_ingress_stack: dict[str, Any]
) -> None:
    stack = own_ingress_stack
    base = stack["env"]["MALIPO_PUBLIC_BASE_URL"]

    def kill_ingress() -> None:
        stack["ingress"]["current"].kill()  # gunicorn's master and workers: one process group
        time.sleep(2)  # callbacks and commands meanwhile find the port closed
        restarted = ingress_process(stack["env"], stack["log_dir"], name="chaos-ingress-2")
        stack["ingress"]["current"] = restarted.start()
        restarted.wait_http(f"{base}/readyz")

    statuses = run_batch(
        db, settings, cipher, PAYMENTS, stack["env"], kill_ingress, "ingress SIGKILLed"
    )

    assert statuses.get("succeeded", 0) > PAYMENTS // 2
