"""A key that was accepted always gets its first answer: limits never refuse its replay.

Tried as a new user would: two payments to one phone, then a third, then the third's
request again at once with the same Idempotency-Key. Before, the immediate replay got
``429 rate_limited`` (the worker had not stored the payment yet, so the replay was
counted as a new prompt) and the same replay seconds later ``202``. The answer must not
depend on whether a worker stored the payment yet, nor on who wins a race.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from shared.db.models import AcceptedCommand
from shared.db.session import Database
from shared.settings import Settings
from tests.conftest import MerchantAccount
from tests.support.app import ingress_client
from tests.support.rabbit import Rabbit


@pytest.fixture(autouse=True)
def _empty_queues(rabbit: Rabbit, broker: Any) -> Any:
    yield
    rabbit.purge("payments")  # nobody consumes here: no worker stores these payments


def body(phone: str, reference: str) -> dict[str, Any]:
    return {"amount": 100, "currency": "KES", "phone": phone, "reference": reference}


def test_a_replay_of_an_accepted_key_is_never_refused_by_the_phone_limit(
    settings: Settings, db: Database, merchant: MerchantAccount
) -> None:
    client = ingress_client(settings, db, phone_push_limit=3, phone_push_window_s=600)
    phone = f"0714{uuid.uuid4().int % 10**6:06d}"
    for n in range(2):
        first = client.simulate_post(
            "/v1/payments", json=body(phone, f"r{n}"), headers=merchant.headers(f"k{n}")
        )
        assert first.status_code == 202

    third = client.simulate_post(
        "/v1/payments", json=body(phone, "r2"), headers=merchant.headers("k2")
    )
    replays = [
        client.simulate_post("/v1/payments", json=body(phone, "r2"), headers=merchant.headers("k2"))
        for _ in range(3)
    ]
    fourth = client.simulate_post(
        "/v1/payments", json=body(phone, "r3"), headers=merchant.headers("k3")
    )

    assert third.status_code == 202
    assert [r.status_code for r in replays] == [202, 202, 202]
    assert {r.json["id"] for r in replays} == {third.json["id"]}
    # The replays counted nothing: the phone's fourth prompt is the one refused.
    assert fourth.status_code == 429
    assert fourth.json["error"]["code"] == "rate_limited"


def test_a_replay_racing_its_first_copy_gets_the_same_answer(
    settings: Settings, db: Database, merchant: MerchantAccount
) -> None:
    client = ingress_client(settings, db, phone_push_limit=1, phone_push_window_s=600)
    phone = f"0715{uuid.uuid4().int % 10**6:06d}"
    start = threading.Barrier(8)
    answers: list[Any] = []
    lock = threading.Lock()

    def post() -> None:
        own = ingress_client(settings, db, phone_push_limit=1, phone_push_window_s=600)
        start.wait()
        answer = own.simulate_post(
            "/v1/payments", json=body(phone, "race"), headers=merchant.headers("race-key")
        )
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert [a.status_code for a in answers] == [202] * 8, [a.text for a in answers]
    assert len({a.json["id"] for a in answers}) == 1
    with db.transaction() as session:
        accepted = session.scalar(
            select(func.count())
            .select_from(AcceptedCommand)
            .where(AcceptedCommand.payment_id == uuid.UUID(answers[0].json["id"]))
        )
    assert accepted == 1
    # One prompt counted: the phone's limit of one is now used up by this payment.
    other = client.simulate_post(
        "/v1/payments", json=body(phone, "other"), headers=merchant.headers("other-key")
    )
    assert other.status_code == 429


def test_the_same_key_with_another_body_is_still_a_conflict(
    settings: Settings, db: Database, merchant: MerchantAccount
) -> None:
    client = ingress_client(settings, db)
    phone = f"0716{uuid.uuid4().int % 10**6:06d}"
    first = client.simulate_post(
        "/v1/payments", json=body(phone, "c1"), headers=merchant.headers("same")
    )
    other = client.simulate_post(
        "/v1/payments", json=body(phone, "c2"), headers=merchant.headers("same")
    )

    assert first.status_code == 202
    assert other.status_code == 409
    assert other.json["error"]["code"] == "idempotency_conflict"
