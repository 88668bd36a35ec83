"""The gateway event is recorded once, after the decision; a copy recorded meanwhile undoes it.

``apply_word`` checks for the event key under the payment's row lock, lets the state
machine decide, then inserts the event with its outcome. An event with the same key
recorded meanwhile by a transaction that does not hold that lock (an orphan) makes the
insert conflict: nothing the word settled may stand, the transaction fails as
transient (retried), and the retry finds a duplicate.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, text

from shared.db.models import GatewayEvent, LedgerEntry, PaymentIntent
from shared.db.session import Database
from shared.gateways.base import GatewayVerdict, Outcome
from tests.conftest import MerchantAccount
from tests.support.seed import seed_submitted_payments
from workers import runtime as worker_runtime
from workers.outcomes import EventRecordedMeanwhile, GatewayWord, apply_word, lock_intent


def success_word(merchant: MerchantAccount, checkout_id: str) -> GatewayWord:
    return GatewayWord(
        gateway="daraja",
        event_key=f"stk:{checkout_id}:0",
        source="callback",
        gateway_ref=checkout_id,
        verdict=GatewayVerdict(Outcome.SUCCEEDED, result_code="0", receipt="RACE000001"),
        received_at=datetime.now(UTC),
        merchant_id=merchant.id,
    )


def state(db: Database, payment_id: uuid.UUID) -> tuple[str, int, list[str]]:
    with db.transaction() as session:
        status = session.scalar(select(PaymentIntent.status).where(PaymentIntent.id == payment_id))
        credits = session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.intent_id == payment_id)
        )
        outcomes = list(
            session.scalars(
                select(GatewayEvent.outcome).where(GatewayEvent.intent_id == payment_id)
            )
        )
    return str(status), int(credits or 0), outcomes


def apply_once(db: Database, payment_id: uuid.UUID, word: GatewayWord) -> str | None:
    """The word applied as the callback actor applies it: payment locked, one transaction."""
    with db.transaction() as session:
        intent = lock_intent(session, payment_id)
        assert intent is not None
        return apply_word(session, intent, word, datetime.now(UTC))


def test_an_event_recorded_meanwhile_rolls_the_decision_back_and_the_retry_is_a_duplicate(
    db: Database, merchant: MerchantAccount, broker: Any
) -> None:
    worker_runtime.runtime()  # the workers' collaborators, as the actors use them
    [payment] = seed_submitted_payments(db, merchant.id, 1, tag=f"race{uuid.uuid4().hex[:6]}")
    word = success_word(merchant, payment.checkout_id)

    # Another transaction records the same key as an orphan (no payment lock), and
    # commits only once the apply path has looked and its insert waits on this one.
    other = db.engine.connect()
    pending = other.begin()
    other.execute(
        text(
            "INSERT INTO gateway_events (gateway, event_key, source, merchant_id, outcome,"
            " body_masked, received_at)"
            " VALUES ('daraja', :key, 'callback', :merchant, 'orphan', '', now())"
        ),
        {"key": word.event_key, "merchant": merchant.id},
    )

    def commit_once_the_insert_waits() -> None:
        deadline = time.monotonic() + 10
        with db.autocommit() as watcher:
            while time.monotonic() < deadline:
                waiting = watcher.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND query LIKE 'INSERT INTO gateway_events%'"
                    )
                ).scalar_one()
                if waiting:
                    break
                time.sleep(0.01)
        pending.commit()

    committer = threading.Thread(target=commit_once_the_insert_waits)
    committer.start()
    try:
        with pytest.raises(EventRecordedMeanwhile):
            apply_once(db, payment.id, word)
    finally:
        committer.join()
        other.close()

    assert state(db, payment.id) == ("submitted", 0, [])  # nothing it decided stands

    assert apply_once(db, payment.id, word) is None  # the retry: a duplicate
    assert state(db, payment.id) == ("submitted", 0, [])


def test_a_word_is_recorded_once_with_the_outcome_it_was_given(
    db: Database, merchant: MerchantAccount, broker: Any
) -> None:
    worker_runtime.runtime()
    [payment] = seed_submitted_payments(db, merchant.id, 1, tag=f"once{uuid.uuid4().hex[:6]}")
    word = success_word(merchant, payment.checkout_id)

    assert apply_once(db, payment.id, word) == "applied"
    assert apply_once(db, payment.id, word) is None  # the second copy is a duplicate

    assert state(db, payment.id) == ("succeeded", 1, ["applied"])
