"""An order service on the bus: 1,000 payment commands in, their events out, nothing lost.

A separate process (tests/support/order_service.py) talks to malipo only over
AMQP, as its own RabbitMQ user: it publishes ``payment.create`` commands and
consumes its answers and ``payment.*`` events. Every payment succeeds through the
Daraja simulator, every command is answered, every event arrives and is handled
once after dedupe — also when the workers are SIGKILLed in the middle.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from shared.bus_commands import validator
from shared.cli import main as malipo
from shared.crypto import CredentialCipher, payment_id_for
from shared.db.models import WebhookEvent
from shared.db.session import Database
from shared.settings import Settings
from tests.conftest import DARAJA_CREDENTIALS, make_merchant
from tests.support.chaos import CHAOS_ENV, finished
from tests.support.command_bus import bus_key
from tests.support.processes import ManagedProcess, python_module, worker_process
from tests.support.seed import ledger_state, status_counts
from tests.support.waiting import wait_until
from tests.support.witness import assert_pushed_once, pushes

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]

COMMANDS = 1000
STACK_ENV = {**CHAOS_ENV, "MALIPO_PAYMENT_EXPIRY_S": "120"}


@pytest.fixture
def stack(
    test_env: dict[str, str],
    log_dir: Path,
    ingress_server: ManagedProcess,
    sandbox_server: ManagedProcess,
) -> Iterator[dict[str, Any]]:
    env = {**test_env, **STACK_ENV}
    processes = {
        "scheduler": ManagedProcess(
            "bus-scheduler", python_module("workers.scheduler"), env, log_dir
        ).start(),
        "bus": ManagedProcess("bus-consumer", python_module("ingress.bus"), env, log_dir).start(),
        "workers": worker_process(env, log_dir, name="bus-worker", threads=8).start(),
    }
    yield {"env": env, "processes": processes, "log_dir": log_dir}
    for process in processes.values():
        process.stop()


@pytest.fixture
def service_user(broker: Any) -> Iterator[tuple[str, str]]:
    name = f"orders-{uuid.uuid4().hex[:6]}"
    result = CliRunner().invoke(malipo, ["bus", "service", name, "--apply"])
    assert result.exit_code == 0, result.output + result.stderr
    yield name, result.stderr.rsplit(": ", 1)[1].strip()
    subprocess.run(["rabbitmqctl", "delete_user", name], capture_output=True, check=False)


def run_order_service(
    db: Database,
    settings: Settings,
    cipher: CredentialCipher,
    test_env: dict[str, str],
    service_user: tuple[str, str],
    tmp_path: Path,
    breakage: Callable[[uuid.UUID], None],
) -> None:
    merchant = make_merchant(db, settings, cipher, daraja=dict(DARAJA_CREDENTIALS))
    token = bus_key(db, settings, cipher, merchant.id, ("payments:write", "payments:read"))
    name, password = service_user
    url = test_env["MALIPO_BROKER_URL"].replace("guest:guest@", f"{name}:{password}@")
    out = tmp_path / "order-service.json"
    argv = [
        sys.executable,
        "-m",
        "tests.support.order_service",
        *("--broker", url, "--api-key", token, "--merchant", str(merchant.id)),
        *("--service", name, "--count", str(COMMANDS), "--out", str(out)),
    ]
    service = subprocess.Popen(argv, env=test_env)
    try:
        breakage(merchant.id)
        assert service.wait(timeout=700) == 0, "the order service did not see everything"
    finally:
        if service.poll() is None:
            service.kill()
    seen = json.loads(out.read_text())

    # Every command sent once was answered with the HTTP answer for its key, always the same.
    keys = {message_id: key for message_id, key in seen["sent"].items()}
    assert sorted(keys.values()) == sorted(f"{name}-{i}" for i in range(COMMANDS))
    assert set(seen["answers"]) == set(keys)
    for message_id, answers in seen["answers"].items():
        expected = {"id": str(payment_id_for(merchant.id, keys[message_id])), "status": "accepted"}
        assert all(answer == [202, expected] for answer in answers), answers
    # Every payment succeeded through the simulator, credited once, except those whose push a
    # SIGKILL left unknown: never re-sent (ADR 0002), never prompted, it expires.
    payment_ids = {str(payment_id_for(merchant.id, key)) for key in keys.values()}
    counts = status_counts(db, merchant.id)
    prompts = pushes(test_env["MALIPO_DARAJA_BASE_URL"], db, merchant.id)
    never_prompted = [p for p, n in prompts.per_payment.items() if n == 0]
    assert set(counts) <= {"succeeded", "expired"}, counts
    assert sum(counts.values()) == COMMANDS
    assert counts.get("expired", 0) == len(never_prompted), (counts, len(never_prompted))
    ledger = ledger_state(db, merchant.id)
    assert ledger.entries == ledger.distinct_intents == counts["succeeded"]
    # Every event malipo committed for them arrived, and was handled once after dedupe.
    handled = [event["id"] for event in seen["events"]]
    assert len(handled) == len(set(handled))
    assert set(seen["finals"]) == payment_ids
    with db.transaction() as session:
        committed = set(
            session.scalars(
                select(WebhookEvent.webhook_id).where(WebhookEvent.merchant_id == merchant.id)
            )
        )
    assert set(handled) == committed
    assert {event["type"] for event in seen["events"]} == {f"payment.{s}" for s in counts}
    # Each customer was prompted once, by the simulator's own count.
    assert_pushed_once(prompts)
    # Each event as published fits shared/contracts/event.v1.json.
    for event in seen["events"]:
        validator("event").validate(event["body"])


def test_an_order_service_on_the_bus_gets_every_answer_and_event(
    db: Database,
    settings: Settings,
    cipher: CredentialCipher,
    test_env: dict[str, str],
    stack: dict[str, Any],
    service_user: tuple[str, str],
    tmp_path: Path,
) -> None:
    run_order_service(
        db, settings, cipher, test_env, service_user, tmp_path, lambda merchant_id: None
    )


def test_workers_sigkilled_mid_run_lose_nothing_on_the_bus(
    db: Database,
    settings: Settings,
    cipher: CredentialCipher,
    test_env: dict[str, str],
    stack: dict[str, Any],
    service_user: tuple[str, str],
    tmp_path: Path,
) -> None:
    processes = stack["processes"]

    def kill_workers(merchant_id: uuid.UUID) -> None:
        wait_until(
            lambda: finished(db, merchant_id) >= COMMANDS // 4,
            timeout_s=300,
            interval_s=0.1,
            what="a quarter of the payments final",
        )
        processes["workers"].kill()
        processes["bus"].kill()  # the command consumer too
        assert finished(db, merchant_id) < COMMANDS, "the kill must land mid-run"
        time.sleep(2)
        processes["workers"] = worker_process(
            stack["env"], stack["log_dir"], name="bus-worker-2", threads=8
        ).start()
        processes["bus"] = ManagedProcess(
            "bus-consumer-2", python_module("ingress.bus"), stack["env"], stack["log_dir"]
        ).start()

    run_order_service(db, settings, cipher, test_env, service_user, tmp_path, kill_workers)
