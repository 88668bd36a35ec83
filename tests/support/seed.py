"""Seed payments directly in PostgreSQL, and their Daraja callbacks, for stress and chaos tests."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from shared.db.models import LedgerEntry, PaymentAttempt, PaymentIntent
from shared.db.session import Database


@dataclass(frozen=True)
class SeededPayment:
    id: uuid.UUID
    checkout_id: str
    amount_minor: int
    phone: str


def seed_submitted_payments(
    db: Database, merchant_id: uuid.UUID, count: int, tag: str
) -> list[SeededPayment]:
    """``count`` payments already pushed (submitted, accepted attempt), as initiate leaves them."""
    now = datetime.now(UTC)
    seeded = []
    with db.transaction() as session:
        for i in range(count):
            payment = SeededPayment(
                id=uuid.uuid4(),
                checkout_id=f"ws_CO_{tag}_{i:06d}",
                amount_minor=100 * (1 + i % 50),
                phone=f"2547{i:08d}",
            )
            session.add(
                PaymentIntent(
                    id=payment.id,
                    merchant_id=merchant_id,
                    idempotency_key=f"{tag}-{i}",
                    request_hash="seed",
                    gateway="daraja",
                    amount_minor=payment.amount_minor,
                    currency="KES",
                    phone=payment.phone,
                    reference=f"{tag}-{i}",
                    status="submitted",
                    gateway_ref=payment.checkout_id,
                    accepted_at=now,
                    submitted_at=now,
                    expires_at=now + timedelta(hours=1),
                    next_poll_at=now + timedelta(hours=1),
                )
            )
            seeded.append(payment)
        session.flush()
        for payment in seeded:
            session.add(
                PaymentAttempt(
                    intent_id=payment.id,
                    number=1,
                    gateway="daraja",
                    status="accepted",
                    gateway_ref=payment.checkout_id,
                )
            )
    return seeded


def success_callback(payment: SeededPayment, receipt: str) -> bytes:
    """A Daraja STK success callback, as Safaricom sends it."""
    items = [
        {"Name": "Amount", "Value": payment.amount_minor / 100},
        {"Name": "MpesaReceiptNumber", "Value": receipt},
        {"Name": "Balance"},
        {"Name": "TransactionDate", "Value": 20261122103000},
        {"Name": "PhoneNumber", "Value": int(payment.phone)},
    ]
    body = {
        "Body": {
            "stkCallback": {
                "MerchantRequestID": f"mr-{payment.checkout_id}",
                "CheckoutRequestID": payment.checkout_id,
                "ResultCode": 0,
                "ResultDesc": "The service request is processed successfully.",
                "CallbackMetadata": {"Item": items},
            }
        }
    }
    return json.dumps(body).encode()


def failure_callback(payment: SeededPayment, result_code: int, description: str) -> bytes:
    body = {
        "Body": {
            "stkCallback": {
                "MerchantRequestID": f"mr-{payment.checkout_id}",
                "CheckoutRequestID": payment.checkout_id,
                "ResultCode": result_code,
                "ResultDesc": description,
            }
        }
    }
    return json.dumps(body).encode()


@dataclass(frozen=True)
class LedgerState:
    entries: int
    distinct_intents: int
    total_minor: int


def ledger_state(db: Database, merchant_id: uuid.UUID) -> LedgerState:
    with db.transaction() as session:
        row = session.execute(
            select(
                func.count(LedgerEntry.id),
                func.count(func.distinct(LedgerEntry.intent_id)),
                func.coalesce(func.sum(LedgerEntry.amount_minor), 0),
            ).where(LedgerEntry.merchant_id == merchant_id)
        ).one()
    return LedgerState(int(row[0]), int(row[1]), int(row[2]))


def status_counts(db: Database, merchant_id: uuid.UUID) -> dict[str, int]:
    with db.transaction() as session:
        rows = session.execute(
            select(PaymentIntent.status, func.count())
            .where(PaymentIntent.merchant_id == merchant_id)
            .group_by(PaymentIntent.status)
        ).all()
    return {status: int(count) for status, count in rows}
