"""Both sides of a reconciliation for tests: real pushes to the simulators, and the
ledger seeded as malipo would have recorded them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.crypto import CredentialCipher
from shared.db.models import GatewayEvent, LedgerEntry, PaymentAttempt, PaymentIntent
from shared.db.session import Database
from shared.domain.money import Money
from shared.gateways.base import Outcome, PaymentRequest
from shared.merchants import create_merchant, store_gateway_credentials
from tests.support.sim import Simulator
from tests.support.waiting import wait_until

FAILED_EVERY = 10  # one payment in ten failed (wrong PIN / insufficient funds)
WRONG_PIN = "254700002001"


@dataclass
class Paid:
    """One payment as both sides know it."""

    id: uuid.UUID
    gateway: str
    gateway_ref: str
    amount_minor: int
    phone: str
    reference: str
    status: str
    receipt: str | None


def make_merchant_with(
    db: Database, cipher: CredentialCipher, gateway: str, credentials: dict[str, str]
) -> uuid.UUID:
    with db.transaction() as session:
        merchant = create_merchant(session, f"recon-{uuid.uuid4().hex[:8]}")
        store_gateway_credentials(
            session, cipher, merchant.id, gateway, credentials, production=False
        )
        return merchant.id


def worker_runtime() -> Any:
    import workers.reconcile  # noqa: F401 - declares the actors on the test broker
    from workers.runtime import runtime

    return runtime()


def push_daraja(credentials: dict[str, str], tag: str, count: int, sim: Simulator) -> list[Paid]:
    """``count`` real STK pushes; every tenth to the wrong-PIN phone."""
    rt = worker_runtime()
    adapter = rt.gateways.get("daraja")
    typed = adapter.credentials(credentials)
    paid = []
    for n in range(count):
        phone = WRONG_PIN if n % FAILED_EVERY == 0 else f"2547{10_000_000 + n:08d}"
        amount = 100 * (10 + n % 90)
        reference = f"D{tag}{n:05d}"
        answer = adapter.push(typed, push_request(amount, phone, reference, "daraja"))
        assert answer.accepted, answer
        paid.append(
            Paid(
                uuid.uuid4(), "daraja", str(answer.gateway_ref), amount, phone, reference, "", None
            )
        )
    by_id = {t["CheckoutRequestID"]: t for t in sim.transactions()}
    wait_until(
        lambda: all(t["status"] == "completed" for t in sim.transactions()),
        timeout_s=60,
        what="every push answered",
    )
    by_id = {t["CheckoutRequestID"]: t for t in sim.transactions()}
    for payment in paid:
        record = by_id[payment.gateway_ref]
        payment.status = "succeeded" if str(record["ResultCode"]) == "0" else "failed"
        payment.receipt = record["MpesaReceiptNumber"]
    return paid


def push_intasend(credentials: dict[str, str], tag: str, count: int) -> list[Paid]:
    rt = worker_runtime()
    adapter = rt.gateways.get("intasend")
    typed = adapter.credentials(credentials)
    paid = []
    for n in range(count):
        phone = "254700000001" if n % FAILED_EVERY == 0 else f"2547{20_000_000 + n:08d}"
        amount = 100 * (10 + n % 90)
        reference = f"I{tag}{n:05d}"
        answer = adapter.push(typed, push_request(amount, phone, reference, "intasend"))
        assert answer.accepted, answer
        paid.append(
            Paid(
                uuid.uuid4(),
                "intasend",
                str(answer.gateway_ref),
                amount,
                phone,
                reference,
                "",
                None,
            )
        )

    def settled() -> bool:
        for payment in paid:
            if payment.status:
                continue
            verdict = adapter.query_status(typed, payment.gateway_ref).verdict
            if verdict.outcome == Outcome.PENDING:
                return False
            payment.status = "succeeded" if verdict.outcome == Outcome.SUCCEEDED else "failed"
            payment.receipt = verdict.receipt
        return True

    wait_until(settled, timeout_s=90, interval_s=0.5, what="every invoice final")
    return paid


def push_request(amount: int, phone: str, reference: str, gateway: str) -> PaymentRequest:
    return PaymentRequest(
        payment_id=str(uuid.uuid4()),
        attempt_ref=str(uuid.uuid4()),
        amount=Money(amount, "KES"),
        phone=phone,
        reference=reference,
        description=None,
        callback_url=f"http://127.0.0.1:9/callbacks/{gateway}/unused",  # nobody listens
    )


def seed_ledger(db: Database, merchant_id: uuid.UUID, paid: list[Paid], lost: set[str]) -> None:
    """What malipo recorded of the day: finals from callbacks, except the lost ones (expired)."""
    now = datetime.now(UTC)
    with db.transaction() as session:
        for payment in paid:
            status = "expired" if payment.gateway_ref in lost else payment.status
            session.add(
                PaymentIntent(
                    id=payment.id,
                    merchant_id=merchant_id,
                    idempotency_key=f"key-{payment.id}",
                    request_hash="seed",
                    gateway=payment.gateway,
                    amount_minor=payment.amount_minor,
                    currency="KES",
                    phone=payment.phone,
                    reference=payment.reference,
                    status=status,
                    gateway_ref=payment.gateway_ref,
                    receipt=payment.receipt if status == "succeeded" else None,
                    settled_ref=payment.gateway_ref if status == "succeeded" else None,
                    failure_code=None if status == "succeeded" else status,
                    accepted_at=now,
                    submitted_at=now,
                    finished_at=now,
                )
            )
        session.flush()
        for payment in paid:
            status = "expired" if payment.gateway_ref in lost else payment.status
            session.add(
                PaymentAttempt(
                    intent_id=payment.id,
                    number=1,
                    gateway=payment.gateway,
                    status="accepted",
                    gateway_ref=payment.gateway_ref,
                )
            )
            if status == "succeeded":
                session.add(
                    LedgerEntry(
                        merchant_id=merchant_id,
                        intent_id=payment.id,
                        kind="collection",
                        amount_minor=payment.amount_minor,
                        currency="KES",
                        gateway=payment.gateway,
                        gateway_txn_id=payment.receipt,
                    )
                )
            # A final state the gateway told us (a local expiry is ours alone).
            session.add(
                GatewayEvent(
                    gateway=payment.gateway,
                    event_key=f"seed:{payment.gateway_ref}",
                    source="local" if status == "expired" else "callback",
                    merchant_id=merchant_id,
                    intent_id=payment.id,
                    gateway_ref=payment.gateway_ref,
                    result_code="seed",
                    outcome="applied",
                    body_masked="{}",
                    received_at=now,
                )
            )
