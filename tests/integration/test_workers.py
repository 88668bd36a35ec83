"""Actors in-process against the real RabbitMQ, PostgreSQL and Daraja simulator."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from shared.crypto import payment_id_for, request_hash
from shared.db.models import AuditRecord, GatewayEvent, PaymentIntent
from shared.db.session import Database
from shared.messages import ApplyCallback, InitiatePayment, Publisher
from shared.settings import Settings
from tests.conftest import MerchantAccount
from tests.support.rabbit import Rabbit
from tests.support.seed import (
    failure_callback,
    ledger_state,
    seed_submitted_payments,
    success_callback,
)
from tests.support.sim import Simulator
from tests.support.waiting import wait_until

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
def publisher(broker: Any) -> Publisher:
    return Publisher(broker)


def initiate(
    merchant: MerchantAccount,
    key: str,
    *,
    amount: int = 100,
    phone: str = "254712345678",
    reference: str = "R-1",
    accepted_at: datetime | None = None,
) -> InitiatePayment:
    request = {
        "amount": amount,
        "currency": "KES",
        "phone": phone,
        "reference": reference,
        "description": None,
        "gateway": "daraja",
    }
    return InitiatePayment(
        payment_id=str(payment_id_for(merchant.id, key)),
        merchant_id=str(merchant.id),
        idempotency_key=key,
        request=request,
        request_hash=request_hash(request),
        accepted_at=(accepted_at or datetime.now(UTC)).isoformat(),
    )


def load(db: Database, payment_id: str) -> PaymentIntent | None:
    with db.transaction() as session:
        return session.get(PaymentIntent, uuid.UUID(payment_id))


def audit_actions(db: Database, subject_id: str) -> list[str]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(AuditRecord.action)
                .where(AuditRecord.subject_id == subject_id)
                .order_by(AuditRecord.id)
            )
        )


def test_two_requests_racing_with_one_key_make_one_intent_and_a_visible_conflict(
    publisher: Publisher, merchant: MerchantAccount, db: Database, sim: Simulator
) -> None:
    first, second = initiate(merchant, "race", amount=100), initiate(merchant, "race", amount=200)
    assert first.payment_id == second.payment_id

    publisher.send(first)
    publisher.send(second)

    wait_until(
        lambda: "payment.idempotency_conflict" in audit_actions(db, first.payment_id),
        what="the conflict",
    )
    intent = wait_until(lambda: load(db, first.payment_id), what="the intent")
    assert intent.amount_minor in (100, 200)
    with db.transaction() as session:
        ids = session.scalars(
            select(PaymentIntent.id).where(PaymentIntent.merchant_id == merchant.id)
        ).all()
    assert ids == [intent.id]
    assert len([r for r in sim.requests(kind="stkpush") if r["status"] == 200]) == 1


def test_a_command_older_than_the_initiation_window_fails_without_a_push(
    publisher: Publisher,
    merchant: MerchantAccount,
    db: Database,
    sim: Simulator,
    settings: Settings,
) -> None:
    stale = initiate(
        merchant,
        "stale",
        accepted_at=datetime.now(UTC) - timedelta(seconds=settings.initiation_window_s + 5),
    )

    publisher.send(stale)

    intent = wait_until(
        lambda: (i := load(db, stale.payment_id)) and i.status == "failed" and i, what="failure"
    )
    assert intent.failure_code == "gateway_unavailable"
    assert sim.requests(kind="stkpush") == []


def test_a_malformed_message_fails_at_once_into_the_dead_letter_queue(
    rabbit: Rabbit, publisher: Publisher, broker: Any
) -> None:
    before = rabbit.counts("payments")[2]

    publisher.enqueue(InitiatePayment.spec, {"payment_id": "not enough fields"})

    wait_until(lambda: rabbit.counts("payments")[2] == before + 1, what="the dead letter")


def callback_message(
    merchant: MerchantAccount, body: bytes, attempt_ref: str | None = None
) -> ApplyCallback:
    return ApplyCallback(
        gateway="daraja",
        merchant_id=str(merchant.id),
        body_b64=base64.b64encode(body).decode(),
        headers={"content-type": "application/json"},
        received_at=datetime.now(UTC).isoformat(),
        remote_addr="127.0.0.1",
        attempt_ref=attempt_ref,
    )


def events_for(db: Database, merchant: MerchantAccount) -> list[GatewayEvent]:
    with db.transaction() as session:
        return list(
            session.scalars(select(GatewayEvent).where(GatewayEvent.merchant_id == merchant.id))
        )


def test_an_unmatched_callback_is_kept_as_an_orphan_and_never_credited(
    publisher: Publisher, merchant: MerchantAccount, db: Database, settings: Settings
) -> None:
    [ghost] = seed_submitted_payments(db, merchant.id, 1, tag=f"ghost{uuid.uuid4().hex[:6]}")
    unknown = ghost.__class__(
        id=uuid.uuid4(), checkout_id="ws_CO_nobody", amount_minor=100, phone=ghost.phone
    )

    publisher.send(callback_message(merchant, success_callback(unknown, receipt="RNOBODY001")))

    [event] = wait_until(
        lambda: events_for(db, merchant), timeout_s=20, what="the orphan to be recorded"
    )
    assert (event.outcome, event.intent_id) == ("orphan", None)
    assert ghost.phone not in event.body_masked
    assert ledger_state(db, merchant.id).entries == 0


def test_a_callback_that_overtakes_its_push_answer_is_applied_once_the_answer_is_stored(
    publisher: Publisher, merchant: MerchantAccount, db: Database
) -> None:
    [payment] = seed_submitted_payments(db, merchant.id, 1, tag=f"race{uuid.uuid4().hex[:6]}")
    with db.transaction() as session:  # as if the push answer were not stored yet
        from shared.db.models import PaymentAttempt

        attempt = session.scalars(
            select(PaymentAttempt).where(PaymentAttempt.intent_id == payment.id)
        ).one()
        attempt.gateway_ref, attempt.status = None, "sending"

    publisher.send(callback_message(merchant, success_callback(payment, receipt="RRACE00001")))
    threading.Timer(0.3, _store_answer, args=(db, payment)).start()

    wait_until(
        lambda: (i := load(db, str(payment.id))) and i.status == "succeeded",
        timeout_s=20,
        what="success",
    )
    assert ledger_state(db, merchant.id).entries == 1


def _store_answer(db: Database, payment: Any) -> None:
    from shared.db.models import PaymentAttempt

    with db.transaction() as session:
        attempt = session.scalars(
            select(PaymentAttempt).where(PaymentAttempt.intent_id == payment.id)
        ).one()
        attempt.gateway_ref, attempt.status = payment.checkout_id, "accepted"


def test_a_failure_after_success_does_not_overwrite_it(
    publisher: Publisher, merchant: MerchantAccount, db: Database
) -> None:
    [payment] = seed_submitted_payments(db, merchant.id, 1, tag=f"late{uuid.uuid4().hex[:6]}")
    publisher.send(callback_message(merchant, success_callback(payment, receipt="RLATE00001")))
    wait_until(lambda: (i := load(db, str(payment.id))) and i.status == "succeeded", what="success")

    publisher.send(
        callback_message(merchant, failure_callback(payment, 1032, "Request cancelled by user"))
    )

    wait_until(lambda: len(events_for(db, merchant)) == 2, what="the late failure to be recorded")
    intent = load(db, str(payment.id))
    assert intent is not None
    assert (intent.status, intent.failure_code) == ("succeeded", None)
    assert sorted(e.outcome for e in events_for(db, merchant)) == ["applied", "stale"]
    assert ledger_state(db, merchant.id).entries == 1


def test_a_phone_prompted_too_often_fails_the_next_push_as_rate_limited(
    publisher: Publisher,
    merchant: MerchantAccount,
    db: Database,
    sim: Simulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given workers that allow one prompt per phone per window
    from workers.runtime import runtime

    rt = runtime()
    monkeypatch.setattr(rt, "settings", rt.settings.model_copy(update={"phone_push_limit": 1}))
    phone = f"2547{uuid.uuid4().int % 10**8:08d}"
    first = initiate(merchant, "p-1", phone=phone, reference="P-1")
    second = initiate(merchant, "p-2", phone=phone, reference="P-2")

    # When two payments to that phone are initiated one after the other
    publisher.send(first)
    wait_until(
        lambda: (i := load(db, first.payment_id)) and i.status == "submitted", what="the first push"
    )
    publisher.send(second)

    # Then the second is not pushed: it fails as rate_limited
    refused = wait_until(
        lambda: (i := load(db, second.payment_id)) and i.status == "failed" and i, what="refusal"
    )
    assert refused.failure_code == "rate_limited"
    assert (
        len(
            [
                r
                for r in sim.requests(kind="stkpush")
                if r["body"].get("PhoneNumber") == phone and r["status"] == 200
            ]
        )
        == 1
    )


def with_phone(body: bytes, phone: str) -> bytes:
    """The callback with its PhoneNumber item replaced (as Daraja masks it)."""
    document = json.loads(body)
    for item in document["Body"]["stkCallback"]["CallbackMetadata"]["Item"]:
        if item["Name"] == "PhoneNumber":
            item["Value"] = phone
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("masking", "outcome"),
    [
        (lambda p: p[:9] + "***", "applied"),  # 254722000***
        (lambda p: "0" + p[3:9] + "***", "applied"),  # 0722000***
        (lambda p: p[:4] + "******" + p[-2:], "applied"),  # 2547******78
        (lambda p: "*" * 12, "applied"),  # nothing to compare: not a mismatch
        (lambda p: "0" + p[3:6] + ("999" if p[6:9] != "999" else "888") + "***", "mismatch"),
    ],
    ids=["254-trailing", "0-trailing", "middle", "all-masked", "other-digits"],
)
def test_a_masked_phone_in_a_daraja_callback_is_compared_by_the_digits_it_shows(
    publisher: Publisher, merchant: MerchantAccount, db: Database, masking: Any, outcome: str
) -> None:
    [payment] = seed_submitted_payments(db, merchant.id, 1, tag=f"mask{uuid.uuid4().hex[:6]}")
    body = with_phone(success_callback(payment, receipt="RMASK00001"), masking(payment.phone))

    publisher.send(callback_message(merchant, body))

    [event] = wait_until(lambda: events_for(db, merchant), what="the callback to be applied")
    assert event.outcome == outcome
    expected = ("succeeded", []) if outcome == "applied" else ("submitted", ["phone_mismatch"])
    intent = load(db, str(payment.id))
    assert intent is not None
    assert (intent.status, intent.flags) == expected
    assert ledger_state(db, merchant.id).entries == (1 if outcome == "applied" else 0)
