"""A whole batch of payments through every real process, for chaos tests.

``PaymentLoad`` starts payments through the ingress like a merchant's service
would (retrying 503s with the same idempotency key); ``MerchantReceiver`` is
the merchant's webhook endpoint, counting deliveries per ``webhook-id``;
``verify_batch`` checks the promises: every accepted payment final, every
success credited exactly once, every event delivered (deduplicated by
webhook-id), the ledger equal to the succeeded payments.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests
from sqlalchemy import func, select

from shared.db.models import Balance, LedgerEntry, PaymentIntent, WebhookEvent
from shared.db.session import Database
from shared.domain.states import FINAL_STATES
from shared.settings import Settings
from shared.webhooks import set_endpoint
from tests.conftest import DARAJA_CREDENTIALS, make_merchant
from tests.support.waiting import wait_until
from tests.support.witness import assert_pushed_once, pushes

# Payments per batch run: 500 in `make test`, 2,000 in `make chaos`.
CHAOS_PAYMENTS = int(os.environ.get("MALIPO_CHAOS_PAYMENTS", "500"))
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

# Outcome mix, by position in the batch: the simulator's documented phone rules.
CANCELLED, INSUFFICIENT, NO_CALLBACK = "254700001032", "254700000001", "254700009999"


@dataclass
class MerchantReceiver:
    """The merchant's webhook endpoint: answers 200 and counts each webhook-id."""

    server: ThreadingHTTPServer
    seen: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks"

    def unique(self) -> set[str]:
        with self.lock:
            return set(self.seen)


@contextmanager
def merchant_receiver() -> Iterator[MerchantReceiver]:
    receiver: MerchantReceiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                receiver.seen[self.headers.get("webhook-id", "")] += 1
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = MerchantReceiver(server)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class PaymentLoad:
    base_url: str
    api_key: str
    count: int
    concurrency: int = 12
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    accepted: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def body(self, i: int) -> dict[str, Any]:
        phone = (CANCELLED, INSUFFICIENT, NO_CALLBACK)[i % 10] if i % 10 < 3 else f"2547{i:08d}"
        return {
            "amount": 100 * (1 + i % 40),
            "currency": "KES",
            "phone": phone,
            "reference": f"{self.tag}-{i}",
        }

    def start_one(self, i: int) -> None:
        """Start payment ``i``; a 503 (a dependency down) is retried with the same key."""
        headers = {"Authorization": f"Bearer {self.api_key}", "Idempotency-Key": f"{self.tag}-{i}"}
        deadline = time.monotonic() + 180
        while True:
            try:
                response = requests.post(
                    f"{self.base_url}/v1/payments", json=self.body(i), headers=headers, timeout=30
                )
            except requests.RequestException:
                response = None
            if response is not None and response.status_code == 202:
                with self.lock:
                    self.accepted.append(str(response.json()["id"]))
                return
            if response is not None and response.status_code not in (429, 503):
                raise AssertionError(f"payment {i}: {response.status_code} {response.text[:200]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"payment {i} was never accepted")
            time.sleep(0.5)

    def run(self) -> threading.Thread:
        """Start every payment in the background; join the returned thread to wait for all."""

        def go() -> None:
            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                list(pool.map(self.start_one, range(self.count)))

        thread = threading.Thread(target=go, daemon=True)
        thread.start()
        return thread


def finished(db: Database, merchant_id: uuid.UUID) -> int:
    with db.transaction() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(PaymentIntent)
                .where(
                    PaymentIntent.merchant_id == merchant_id,
                    PaymentIntent.status.in_([str(s) for s in FINAL_STATES]),
                )
            )
            or 0
        )


@dataclass(frozen=True)
class BatchReport:
    """What one chaos run showed (``make chaos`` prints one row per run)."""

    run: str
    payments: int
    statuses: dict[str, int]
    pushes: tuple[int, int]  # prompts per payment, min and max, by the simulator's count
    credits: tuple[int, int]  # ledger entries per succeeded payment, min and max
    events_delivered: int
    settle_s: float

    def record(self) -> None:
        """Append to $MALIPO_CHAOS_REPORT (JSON lines) when it is set."""
        target = os.environ.get("MALIPO_CHAOS_REPORT")
        if target:
            with open(target, "a", encoding="utf-8") as out:
                out.write(json.dumps(asdict(self)) + "\n")


def verify_batch(
    db: Database,
    merchant_id: uuid.UUID,
    load: PaymentLoad,
    receiver: MerchantReceiver,
    *,
    sim_base_url: str,
    run: str,
    started: float,
) -> BatchReport:
    """Wait for the batch to settle, then check every promise (the customer's side by the
    gateway simulator's own count of prompts); returns the run's report."""
    assert len(load.accepted) == load.count, "every payment must end up accepted"
    wait_until(
        lambda: finished(db, merchant_id) == load.count,
        timeout_s=300,
        interval_s=1,
        what="every payment final",
    )
    with db.transaction() as session:
        intents = session.scalars(
            select(PaymentIntent).where(PaymentIntent.merchant_id == merchant_id)
        ).all()
        statuses = Counter(i.status for i in intents)
        succeeded = {i.id: i.amount_minor for i in intents if i.status == "succeeded"}
        entries = session.execute(
            select(LedgerEntry.intent_id, LedgerEntry.amount_minor).where(
                LedgerEntry.merchant_id == merchant_id
            )
        ).all()
        balance = session.get(Balance, (merchant_id, "KES"))
    assert {str(i.id) for i in intents} == set(load.accepted)
    credited = Counter(intent_id for intent_id, _ in entries)
    assert all(n == 1 for n in credited.values()), "a payment credited twice"
    assert set(credited) == set(succeeded), "every success credited, nothing else"
    total = sum(amount for _, amount in entries)
    assert total == sum(succeeded.values())
    assert (balance.available_minor if balance else 0) == total

    def all_delivered() -> bool:
        with db.transaction() as session:
            events = session.execute(
                select(WebhookEvent.webhook_id, WebhookEvent.status).where(
                    WebhookEvent.merchant_id == merchant_id
                )
            ).all()
        return (
            len(events) >= load.count
            and all(status == "delivered" for _, status in events)
            and {webhook_id for webhook_id, _ in events} <= receiver.unique()
        )

    wait_until(
        all_delivered, timeout_s=300, interval_s=1, what="every event delivered to the merchant"
    )
    with db.transaction() as session:
        event_ids = set(
            session.scalars(
                select(WebhookEvent.webhook_id).where(WebhookEvent.merchant_id == merchant_id)
            )
        )
    # Exactly once after deduplication by webhook-id: the receiver saw each event, and nothing else.
    assert receiver.unique() == event_ids
    settle_s = time.monotonic() - started
    prompts = pushes(sim_base_url, db, merchant_id)
    assert_pushed_once(prompts)
    report = BatchReport(
        run=run,
        payments=load.count,
        statuses=dict(statuses),
        pushes=prompts.spread,
        credits=(min(credited.values(), default=0), max(credited.values(), default=0)),
        events_delivered=len(event_ids),
        settle_s=round(settle_s, 1),
    )
    report.record()
    return report


def run_batch(
    db: Database,
    settings: Settings,
    cipher: Any,
    payments: int,
    env: dict[str, str],
    breakage: Callable[[], None],
    run: str,
) -> dict[str, int]:
    merchant = make_merchant(db, settings, cipher, daraja=dict(DARAJA_CREDENTIALS))
    started = time.monotonic()
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
        load = PaymentLoad(env["MALIPO_PUBLIC_BASE_URL"], merchant.api_key, payments)
        loading = load.run()
        wait_until(
            lambda: finished(db, merchant.id) >= payments // 4,
            timeout_s=300,
            interval_s=0.2,
            what="a quarter done",
        )
        breakage()
        loading.join(timeout=600)
        report = verify_batch(
            db,
            merchant.id,
            load,
            receiver,
            sim_base_url=env["MALIPO_DARAJA_BASE_URL"],
            run=run,
            started=started,
        )
    return report.statuses


def rabbitmq(*args: str) -> None:
    """``rabbitmqctl`` on this machine's RabbitMQ (stop_app, start_app, await_startup, ...)."""
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


def crash_rabbitmq() -> None:
    """SIGKILL RabbitMQ's Erlang VM (no clean shutdown), then start it again."""
    found = subprocess.run(
        ["pgrep", "-f", "beam.smp.*rabbit"], capture_output=True, text=True, check=False
    )
    pids = [int(pid) for pid in found.stdout.split()]
    assert pids, "no RabbitMQ VM to kill"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait_until(
        lambda: (
            subprocess.run(
                ["pgrep", "-f", "beam.smp.*rabbit"], capture_output=True, check=False
            ).returncode
            != 0
        ),
        timeout_s=30,
        what="the RabbitMQ VM to be gone",
    )
    time.sleep(2)
    subprocess.run(["rabbitmq-server", "-detached"], check=True, capture_output=True, timeout=60)
    # Until the VM's distribution is up, rabbitmqctl cannot even ask (exit 69): ask again.
    wait_until(
        lambda: (
            subprocess.run(
                ["rabbitmqctl", "-q", "await_startup"],
                capture_output=True,
                check=False,
                timeout=120,
            ).returncode
            == 0
        ),
        timeout_s=180,
        interval_s=1,
        what="RabbitMQ to boot again",
    )


def postgres_cluster() -> list[str]:
    version = sorted(os.listdir("/etc/postgresql"), key=lambda v: [int(p) for p in v.split(".")])[
        -1
    ]
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]


def crash_postgresql() -> None:
    """Stop PostgreSQL in immediate mode (no checkpoint: crash recovery on start), start it."""
    command, redirect, *cluster = postgres_cluster()
    subprocess.run(
        [command, redirect, "--mode=immediate", *cluster, "stop"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    time.sleep(1)
    subprocess.run([*postgres_cluster(), "start"], check=True, capture_output=True, timeout=120)


def restart_rabbitmq() -> None:
    rabbitmq("stop_app")
    try:
        time.sleep(1)
    finally:
        rabbitmq("start_app")
        rabbitmq("await_startup")
