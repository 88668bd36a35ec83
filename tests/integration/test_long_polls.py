"""``GET /v1/payments/{id}?wait=`` cannot starve the ingress, and is woken by the database.

Before, each wait slept a gunicorn thread for up to 30 s polling the database, for any
id, unbounded: 32 of them stalled callbacks too.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import update

from ingress.waiting import ChangeWatcher
from shared.db.models import PaymentIntent
from shared.db.session import Database
from shared.merchants import issue_api_key
from shared.settings import Settings
from tests.conftest import ApiClient, MerchantAccount
from tests.support.app import ingress_client
from tests.support.seed import seed_submitted_payments


def key_for(db: Database, settings: Settings, merchant: MerchantAccount) -> dict[str, str]:
    with db.transaction() as session:
        token = issue_api_key(session, settings.secret_key.get_secret_value().encode(), merchant.id)
    return {"Authorization": f"Bearer {token}"}


def submitted(db: Database, merchant: MerchantAccount) -> str:
    [payment] = seed_submitted_payments(db, merchant.id, 1, tag=f"w{uuid.uuid4().hex[:6]}")
    return str(payment.id)


def fail(db: Database, payment_id: str) -> None:
    with db.transaction() as session:
        session.execute(
            update(PaymentIntent)
            .where(PaymentIntent.id == uuid.UUID(payment_id))
            .values(status="failed", failure_code="insufficient_funds")
        )


def test_the_watcher_is_woken_by_a_change_not_by_its_timeout(
    db: Database, settings: Settings, merchant: MerchantAccount
) -> None:
    watcher = ChangeWatcher(settings.database_url.get_secret_value())
    payment_id = submitted(db, merchant)
    try:
        watcher.wait(uuid.UUID(payment_id), 0.1)  # starts the listener
        deadline = time.monotonic() + 10
        while not watcher.listening and time.monotonic() < deadline:
            time.sleep(0.05)
        assert watcher.listening
        woken: list[bool] = []
        waiting = threading.Thread(
            target=lambda: woken.append(watcher.wait(uuid.UUID(payment_id), 20))
        )
        waiting.start()
        time.sleep(0.3)
        fail(db, payment_id)
        waiting.join(timeout=20)
        # True only when the trigger's notification woke it (a timeout returns False).
        assert woken == [True]
    finally:
        watcher.stop()


def test_a_waiting_request_answers_with_the_change(
    db: Database, settings: Settings, merchant: MerchantAccount
) -> None:
    client = ingress_client(settings, db)
    payment_id = submitted(db, merchant)
    answers: list[Any] = []
    waiting = threading.Thread(
        target=lambda: answers.append(
            client.simulate_get(
                f"/v1/payments/{payment_id}", params={"wait": "20"}, headers=merchant.headers()
            )
        )
    )
    waiting.start()
    time.sleep(0.5)
    fail(db, payment_id)
    waiting.join(timeout=25)

    [answer] = answers
    assert answer.status_code == 200
    assert answer.json["status"] == "failed"


def test_waits_over_a_key_s_share_are_answered_at_once_with_retry_after(
    db: Database, settings: Settings, merchant: MerchantAccount
) -> None:
    client = ingress_client(settings, db, max_waits_per_key=1, max_waiting_requests=4)
    payment_id = submitted(db, merchant)
    order: list[str] = []
    lock = threading.Lock()

    def get(name: str, wait: str) -> Any:
        answer = client.simulate_get(
            f"/v1/payments/{payment_id}", params={"wait": wait}, headers=merchant.headers()
        )
        with lock:
            order.append(name)
        return answer

    with ThreadPoolExecutor(2) as pool:
        held = pool.submit(get, "held", "4")
        time.sleep(0.5)  # the first wait holds the key's one slot
        over = pool.submit(get, "over", "4").result(timeout=10)
        first = held.result(timeout=10)

    assert order == ["over", "held"]  # answered at once, while the first still waited
    assert over.status_code == 200
    assert over.headers["Retry-After"] == "1"
    assert over.json["status"] == "submitted"
    assert "Retry-After" not in first.headers


@pytest.mark.usefixtures("worker")
def test_callbacks_are_served_while_every_wait_slot_is_taken(
    db: Database,
    settings: Settings,
    merchant: MerchantAccount,
    ingress_server: Any,
    api: ApiClient,
) -> None:
    # The test ingress runs 8 threads: at most 4 of them wait, whoever asks.
    payment_id = submitted(db, merchant)
    keys = [key_for(db, settings, merchant) for _ in range(4)]
    finished: list[str] = []
    lock = threading.Lock()

    def wait(headers: dict[str, str]) -> int:
        with ApiClient(api.base_url) as own:
            answer = own.get(f"/v1/payments/{payment_id}", params={"wait": 8}, headers=headers)
        with lock:
            finished.append("wait" if "Retry-After" not in answer.headers else "refused")
        return answer.status_code

    with ThreadPoolExecutor(16) as pool:
        waits = [pool.submit(wait, keys[n % 4]) for n in range(16)]
        time.sleep(1.0)
        with ApiClient(api.base_url) as own:
            callback = own.post(
                f"/callbacks/daraja/{merchant.callback_secret}",
                json={"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_nobody"}}},
            )
        with lock:
            finished.append("callback")
        statuses = [w.result(timeout=30) for w in waits]

    assert callback.status_code == 200
    assert set(statuses) == {200}
    # The callback was answered before any of the held waits ended.
    assert "wait" not in finished[: finished.index("callback")]
    assert finished.count("wait") <= 4
