"""500 payouts and 300 refunds while a worker is SIGKILLed and RabbitMQ restarts.

The Daraja simulator's own record of the transfers it made is the witness: every
refund and payout malipo accepted was made exactly once (never twice, however
the crash fell), every hold was settled or released, and the ledger says what the
money did: collected − refunded − paid out.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from shared.db.models import AuditRecord, PaymentIntent, Transfer
from shared.db.session import Database
from shared.domain.states import FINAL_TRANSFER_STATES
from shared.settings import Settings
from tests.conftest import make_merchant
from tests.e2e.test_money_out import money_out_credentials
from tests.support.chaos import PaymentLoad, finished, restart_rabbitmq
from tests.support.money_out import MONEY_OUT_SCOPES, balance_of, ledger_sum, new_key
from tests.support.processes import ManagedProcess, python_module, worker_process
from tests.support.sim import Simulator
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]

PAYOUTS = int(os.environ.get("MALIPO_CHAOS_PAYOUTS", "500"))
REFUNDS = int(os.environ.get("MALIPO_CHAOS_REFUNDS", "300"))
COLLECTED_EACH, REFUNDED_EACH, PAID_EACH = 3_000, 500, 1_000
CHAOS_ENV = {
    "MALIPO_OUTBOX_RELAY_AFTER_S": "15",
    "MALIPO_OUTBOX_RELAY_INTERVAL_S": "3",
    "MALIPO_SCHEDULER_SWEEP_INTERVAL_S": "3",
    "MALIPO_TRANSFER_SWEEP_INTERVAL_S": "2",
    "MALIPO_TRANSFER_DISPATCH_AFTER_S": "10",
    "MALIPO_TRANSFER_RESULT_WAIT_S": "10",
    "MALIPO_DEAD_LETTER_DRAIN_INTERVAL_S": "30",
    "MALIPO_PAYMENT_EXPIRY_S": "60",
}


@dataclass
class CollectionLoad(PaymentLoad):
    """Payments that all succeed, of one amount: the money the transfers then move."""

    def body(self, i: int) -> dict[str, Any]:
        return {
            "amount": COLLECTED_EACH,
            "currency": "KES",
            "phone": f"2547{10_000_000 + i:08d}",
            "reference": f"{self.tag}-{i}",
        }


@dataclass
class TransferLoad:
    """Refunds and payouts sent as a merchant would: a failed request is retried, same key."""

    base_url: str
    token: str
    payments: list[str]
    payouts: int
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    accepted: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def request(self, i: int) -> tuple[str, dict[str, Any], str]:
        if i < len(self.payments):
            path = f"/v1/payments/{self.payments[i]}/refunds"
            return path, {"amount": REFUNDED_EACH, "reason": "order cancelled"}, "refund"
        n = i - len(self.payments)
        body = {
            "amount": PAID_EACH,
            "currency": "KES",
            "phone": f"2547{20_000_000 + n:08d}",
            "reason": "seller settlement",
        }
        return "/v1/payouts", body, "payout"

    def send_one(self, i: int) -> None:
        path, body, kind = self.request(i)
        headers = {"Authorization": f"Bearer {self.token}", "Idempotency-Key": f"{self.tag}-{i}"}
        deadline = time.monotonic() + 240
        while True:
            try:
                response = requests.post(
                    self.base_url + path, json=body, headers=headers, timeout=30
                )
            except requests.RequestException:
                response = None
            if response is not None and response.status_code == 202:
                with self.lock:
                    self.accepted[str(response.json()["id"])] = kind
                return
            if response is not None and response.status_code not in (429, 503):
                raise AssertionError(f"{kind} {i}: {response.status_code} {response.text[:200]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{kind} {i} was never accepted")
            time.sleep(0.5)

    def run(self) -> threading.Thread:
        count = len(self.payments) + self.payouts
        # Refunds and payouts interleaved, as a busy merchant's traffic would be.
        order = sorted(range(count), key=lambda i: (i * 7919) % count)

        def go() -> None:
            with ThreadPoolExecutor(max_workers=10) as pool:
                list(pool.map(self.send_one, order))

        thread = threading.Thread(target=go, daemon=True)
        thread.start()
        return thread


@pytest.fixture
def stack(
    test_env: dict[str, str],
    log_dir: Path,
    ingress_server: ManagedProcess,
    sandbox_server: ManagedProcess,
) -> Iterator[dict[str, Any]]:
    env = {**test_env, **CHAOS_ENV}
    scheduler = ManagedProcess(
        "money-chaos-scheduler", python_module("workers.scheduler"), env, log_dir
    ).start()
    workers = {"current": worker_process(env, log_dir, name="money-chaos-worker", threads=8)}
    workers["current"].start()
    yield {"env": env, "workers": workers, "log_dir": log_dir}
    workers["current"].stop()
    scheduler.stop()


def receipts_known(db: Database, paid: list[uuid.UUID]) -> bool:
    with db.transaction() as session:
        missing = session.scalar(
            select(func.count())
            .select_from(PaymentIntent)
            .where(PaymentIntent.id.in_(paid), PaymentIntent.receipt.is_(None))
        )
    return not missing


def final_transfers(db: Database, ids: list[uuid.UUID]) -> int:
    with db.transaction() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Transfer)
                .where(
                    Transfer.id.in_(ids),
                    Transfer.status.in_([s.value for s in FINAL_TRANSFER_STATES]),
                )
            )
            or 0
        )


def test_transfers_are_made_once_through_a_killed_worker_and_a_broker_restart(
    db: Database,
    settings: Settings,
    cipher: Any,
    test_env: dict[str, str],
    stack: dict[str, Any],
    broker: Any,
) -> None:
    merchant = make_merchant(db, settings, cipher, daraja=money_out_credentials())
    base_url = test_env["MALIPO_PUBLIC_BASE_URL"]
    collection = CollectionLoad(base_url, merchant.api_key, REFUNDS + PAYOUTS // 3)
    collection.run().join(timeout=600)
    wait_until(
        lambda: finished(db, merchant.id) >= collection.count,
        timeout_s=300,
        what="the collections to finish",
    )
    with db.transaction() as session:
        paid = list(
            session.scalars(
                select(PaymentIntent.id).where(
                    PaymentIntent.merchant_id == merchant.id, PaymentIntent.status == "succeeded"
                )
            )
        )
    collected = len(paid) * COLLECTED_EACH
    # A payment the STK query settled learns its receipt from the callback that follows;
    # a Reversal needs it, so the refunds start once every receipt is known.
    wait_until(lambda: receipts_known(db, paid), timeout_s=120, what="the collections' receipts")
    assert collected >= REFUNDS * REFUNDED_EACH + PAYOUTS * PAID_EACH

    key = new_key(db, settings, merchant.id, MONEY_OUT_SCOPES)
    load = TransferLoad(base_url, key.token, [str(p) for p in paid[:REFUNDS]], PAYOUTS)
    loading = load.run()
    total = REFUNDS + PAYOUTS

    def done() -> int:
        return final_transfers(db, [uuid.UUID(i) for i in list(load.accepted)])

    wait_until(lambda: done() >= total // 4, timeout_s=300, interval_s=0.2, what="a quarter")
    stack["workers"]["current"].kill()
    stack["workers"]["current"] = worker_process(
        stack["env"], stack["log_dir"], name="money-chaos-worker-2", threads=8
    ).start()
    wait_until(lambda: done() >= total // 2, timeout_s=300, interval_s=0.2, what="a half")
    restart_rabbitmq()
    loading.join(timeout=600)
    assert len(load.accepted) == total
    wait_until(lambda: done() >= total, timeout_s=400, what="every transfer to finish")

    with db.transaction() as session:
        rows = {
            row.request_ref: row
            for row in session.scalars(
                select(Transfer).where(Transfer.id.in_([uuid.UUID(i) for i in load.accepted]))
            )
        }
    simulator = Simulator(test_env["MALIPO_DARAJA_BASE_URL"])
    witness = Counter(
        t["originator_conversation_id"]
        for t in simulator._call("GET", "/transfers")["transfers"]
        if t["originator_conversation_id"] in rows and t["made"]
    )
    statuses = Counter(row.status for row in rows.values())
    # Each transfer the gateway made, it made once; and each is one malipo says succeeded.
    assert set(witness.values()) <= {1}, [ref for ref, n in witness.items() if n > 1]
    succeeded = {ref for ref, row in rows.items() if row.status == "succeeded"}
    assert set(witness) == succeeded, statuses
    failures = Counter(
        f"{row.failure_code}: {row.failure_message}" for row in rows.values() if row.failure_code
    )
    assert statuses["succeeded"] > total * 0.95, (statuses, failures.most_common(5))
    refunded = sum(
        r.amount_minor for r in rows.values() if r.kind == "refund" and r.status == "succeeded"
    )
    paid_out = sum(
        r.amount_minor for r in rows.values() if r.kind == "payout" and r.status == "succeeded"
    )
    available, held = balance_of(db, merchant.id, "KES")
    assert held == 0  # every hold settled or released
    assert available == collected - refunded - paid_out
    assert ledger_sum(db, merchant.id) == available
    # Every transfer's audit trail opens with its request and ends with where it ended.
    trails = audit_trails(db, [str(row.id) for row in rows.values()])
    unaudited = [
        (row.kind, row.status, trails.get(str(row.id)))
        for row in rows.values()
        if (trails.get(str(row.id)) or ["?"])[0] != f"{row.kind}.requested"
        or trails[str(row.id)][-1] != f"{row.kind}.{row.status}"
    ]
    assert unaudited == [], unaudited[:5]


def audit_trails(db: Database, ids: list[str]) -> dict[str, list[str]]:
    """Each transfer's audit actions, oldest first."""
    trails: dict[str, list[str]] = {}
    with db.transaction() as session:
        for subject_id, action in session.execute(
            select(AuditRecord.subject_id, AuditRecord.action)
            .where(AuditRecord.subject_id.in_(ids))
            .order_by(AuditRecord.id)
        ):
            trails.setdefault(subject_id, []).append(action)
    return trails
