"""Gateways' words arriving in any order: the state machine decides, nothing is lost or doubled."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from shared.db.models import GatewayEvent, PaymentIntent
from shared.db.session import Database
from shared.messages import ApplyCallback, Publisher
from tests.conftest import MerchantAccount
from tests.support.rabbit import Rabbit
from tests.support.seed import (
    SeededPayment,
    failure_callback,
    ledger_state,
    seed_submitted_payments,
    success_callback,
)
from tests.support.waiting import wait_until
from workers.outcomes import apply_word, lock_intent
from workers.polling import expiry_word

pytestmark = pytest.mark.usefixtures("worker")

WORDS = {
    "success": lambda p: success_callback(p, receipt=f"R{uuid.uuid4().hex[:9].upper()}"),
    "insufficient": lambda p: failure_callback(
        p, 1, "The balance is insufficient for the transaction."
    ),
    "cancel": lambda p: failure_callback(p, 1032, "Request cancelled by user"),
    "unreachable": lambda p: failure_callback(p, 1037, "DS timeout user cannot be reached"),
}


def deliver(
    publisher: Publisher, merchant: MerchantAccount, payment: SeededPayment, word: str, db: Database
) -> None:
    if word == "local_expiry":  # what the poller applies when the window closes
        with db.transaction() as session:
            intent = lock_intent(session, payment.id)
            assert intent is not None
            apply_word(
                session,
                intent,
                expiry_word("daraja", payment.id, payment.checkout_id, datetime.now(UTC)),
                datetime.now(UTC),
            )
        return
    body = WORDS[word](payment)
    publisher.send(
        ApplyCallback(
            gateway="daraja",
            merchant_id=str(merchant.id),
            body_b64=base64.b64encode(body).decode(),
            headers={},
            received_at=datetime.now(UTC).isoformat(),
        )
    )


def events(db: Database, payment: SeededPayment) -> list[str]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(GatewayEvent.outcome)
                .where(GatewayEvent.intent_id == payment.id)
                .order_by(GatewayEvent.id)
            )
        )


@pytest.mark.parametrize(
    ("first", "second", "status", "flags", "credited", "outcomes"),
    [
        ("success", "insufficient", "succeeded", [], 1, ["applied", "stale"]),
        ("insufficient", "success", "failed", ["conflicting_result"], 0, ["applied", "conflict"]),
        ("cancel", "success", "cancelled", ["conflicting_result"], 0, ["applied", "conflict"]),
        ("unreachable", "success", "succeeded", ["late_success"], 1, ["applied", "late_success"]),
        ("local_expiry", "success", "succeeded", ["late_success"], 1, ["applied", "late_success"]),
        ("success", "local_expiry", "succeeded", [], 1, ["applied", "stale"]),
        ("success", "success", "succeeded", [], 1, ["applied"]),
    ],
)
def test_every_order_of_two_words_ends_in_the_right_state(
    rabbit: Rabbit,
    broker: Any,
    db: Database,
    merchant: MerchantAccount,
    first: str,
    second: str,
    status: str,
    flags: list[str],
    credited: int,
    outcomes: list[str],
) -> None:
    publisher = Publisher(broker)
    [payment] = seed_submitted_payments(db, merchant.id, 1, tag=f"o{uuid.uuid4().hex[:8]}")

    deliver(publisher, merchant, payment, first, db)
    wait_until(lambda: events(db, payment), what="the first word applied")
    deliver(publisher, merchant, payment, second, db)
    expected_events = len(outcomes)
    wait_until(lambda: len(events(db, payment)) == expected_events, what="the second word recorded")
    if first == second:  # a duplicate is never recorded: give it time to be (wrongly) applied
        wait_until(lambda: rabbit.counts("callbacks")[0] == 0, what="queue drained")

    with db.transaction() as session:
        intent = session.get(PaymentIntent, payment.id)
        assert intent is not None
        assert intent.status == status
        assert intent.flags == flags
    assert ledger_state(db, merchant.id).entries == credited
    assert events(db, payment) == outcomes
