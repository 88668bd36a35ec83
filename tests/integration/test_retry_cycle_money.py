"""A customer's retry and the money: every push that was paid is credited once, or flagged.

ADR 0013: a retry is a new cycle (new push) of the same payment. A success for an
earlier cycle's push still credits the payment, once; when both pushes were paid the
payment is flagged ``duplicate_collection`` for a refund. A word about an earlier
cycle must not disturb the cycle in progress, and a success whose amount or phone
contradicts the intent is flagged and never credited (workers/outcomes.py).

Everything runs for real: the ingress process takes the payment, the retry and the
callbacks (POSTed to the very callback URL each push gave the simulator); the workers
in this process push to the Daraja simulator, poll it and expire the first cycle
locally. The simulator is told to send no callback of its own (and to keep its status
query "being processed"), so which callback arrives when is the test's choice. Before
any ledger assertion the callbacks queue and its delay queue are fully acknowledged.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from sqlalchemy import select

from shared.db.models import (
    AuditRecord,
    Balance,
    GatewayEvent,
    LedgerEntry,
    PaymentAttempt,
    PaymentIntent,
)
from shared.db.session import Database
from shared.merchants import issue_api_key
from shared.settings import Settings
from tests.conftest import ApiClient, MerchantAccount
from tests.e2e.test_payment_flow import start_payment
from tests.support.rabbit import Rabbit
from tests.support.seed import SeededPayment, failure_callback, success_callback
from tests.support.sim import Simulator
from tests.support.waiting import wait_until

pytestmark = pytest.mark.usefixtures("worker", "ingress_server")

AMOUNT = 2500  # minor units: KES 25, a whole-shilling amount as Daraja needs


@dataclass(frozen=True)
class Push:
    """One STK push of the payment, as the simulator received and answered it."""

    cycle: int
    checkout_id: str
    callback_url: str


@dataclass(frozen=True)
class Retried:
    payment_id: uuid.UUID
    phone: str
    amount: int
    first: Push
    second: Push


@dataclass(frozen=True)
class Money:
    entries: list[tuple[int, str | None]]  # (amount, gateway receipt) per ledger row
    balance: int


@pytest.fixture
def worker_settings(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Change the in-process workers' settings for one test (restored afterwards)."""
    from workers.runtime import runtime

    rt = runtime()

    def change(**update: Any) -> None:
        monkeypatch.setattr(rt, "settings", rt.settings.model_copy(update=update))

    return change


def unique_phone() -> str:
    # 25471xxxxxxx: no built-in simulator rule, and no other test prompts this phone.
    return f"25471{uuid.uuid4().int % 10**7:07d}"


def find_intent(db: Database, payment_id: uuid.UUID) -> PaymentIntent | None:
    with db.transaction() as session:
        return session.get(PaymentIntent, payment_id)


def intent_of(db: Database, payment_id: uuid.UUID) -> PaymentIntent:
    intent = find_intent(db, payment_id)
    assert intent is not None
    return intent


def money_of(db: Database, merchant: MerchantAccount) -> Money:
    with db.transaction() as session:
        entries = session.execute(
            select(LedgerEntry.amount_minor, LedgerEntry.gateway_txn_id)
            .where(LedgerEntry.merchant_id == merchant.id)
            .order_by(LedgerEntry.id)
        ).all()
        balance = session.get(Balance, (merchant.id, "KES"))
    return Money([(int(a), r) for a, r in entries], balance.available_minor if balance else 0)


def outcome_of(db: Database, checkout_id: str, result_code: int) -> str | None:
    with db.transaction() as session:
        return session.scalar(
            select(GatewayEvent.outcome).where(
                GatewayEvent.gateway == "daraja",
                GatewayEvent.event_key == f"stk:{checkout_id}:{result_code}",
            )
        )


def listed_for_review(
    api: ApiClient, db: Database, settings: Settings, merchant: MerchantAccount, outcome: str
) -> list[dict[str, Any]]:
    """What the merchant's operator sees under ``GET /ops/events?outcome=…``."""
    with db.transaction() as session:
        key = issue_api_key(
            session, settings.secret_key.get_secret_value().encode(), merchant.id, ("ops:read",)
        )
    response = api.get(
        "/ops/events", params={"outcome": outcome}, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def flagged(db: Database, payment_id: uuid.UUID) -> list[dict[str, Any]]:
    with db.transaction() as session:
        return [
            dict(detail)
            for detail in session.scalars(
                select(AuditRecord.detail)
                .where(
                    AuditRecord.subject_id == str(payment_id),
                    AuditRecord.action == "payment.flagged",
                )
                .order_by(AuditRecord.id)
            )
        ]


def pushes_of(db: Database, sim: Simulator, payment_id: uuid.UUID) -> list[Push]:
    """The payment's accepted pushes, oldest first, with the callback URL each one carried."""
    with db.transaction() as session:
        attempts = session.scalars(
            select(PaymentAttempt)
            .where(PaymentAttempt.intent_id == payment_id)
            .order_by(PaymentAttempt.number)
        ).all()
        refs = [(a.cycle, a.gateway_ref, a.status) for a in attempts]
    urls = {
        r["response"]["CheckoutRequestID"]: r["body"]["CallBackURL"]
        for r in sim.requests(kind="stkpush")
        if r["status"] == 200
    }
    assert all(status == "accepted" and ref in urls for _, ref, status in refs), refs
    return [Push(cycle, str(ref), urls[ref]) for cycle, ref, _ in refs]


def deliver(rabbit: Rabbit, push: Push, body: bytes, result_code: int) -> None:
    """POST a Daraja callback to the push's own callback URL and wait until it is applied."""
    response = requests.post(
        push.callback_url,
        data=body,
        headers={"Content-Type": "application/json;charset=UTF-8"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    # Acknowledged by the ingress = confirmed in RabbitMQ. Now every message on the
    # callbacks queue (and its delay queue: a re-checked callback waits there) is acked.
    rabbit.wait_settled("callbacks")


def paid(push: Push, retried: Retried, receipt: str, **override: Any) -> bytes:
    """Daraja's success callback for ``push`` (phone/amount overridable: a contradicting word)."""
    return success_callback(
        SeededPayment(
            id=retried.payment_id,
            checkout_id=push.checkout_id,
            amount_minor=override.get("amount_minor", retried.amount),
            phone=override.get("phone", retried.phone),
        ),
        receipt=receipt,
    )


def unpaid(push: Push, retried: Retried, result_code: int, description: str) -> bytes:
    return failure_callback(
        SeededPayment(retried.payment_id, push.checkout_id, retried.amount, retried.phone),
        result_code,
        description,
    )


def receipt() -> str:
    return f"R{uuid.uuid4().hex[:9].upper()}"


def expire_unanswered(
    api: ApiClient,
    merchant: MerchantAccount,
    sim: Simulator,
    db: Database,
    worker_settings: Any,
    phone: str,
    **command: Any,
) -> uuid.UUID:
    """A payment whose prompt the customer never answers, expired here; its id."""
    # No callback, and the query keeps saying "being processed", so the poller expires
    # the payment when its window closes.
    sim.scenario(match={"phone": phone}, result_code=0, callback="none", callback_delay_s=3600)
    worker_settings(payment_expiry_s=3)  # a short window, so the test is quick
    payment_id = uuid.UUID(start_payment(api, merchant, phone=phone, amount=AMOUNT, **command))
    wait_until(
        lambda: (i := find_intent(db, payment_id)) is not None and i.status == "expired",
        timeout_s=30,
        what="the payment to expire locally",
    )
    return payment_id


def expire_then_retry(
    api: ApiClient,
    merchant: MerchantAccount,
    sim: Simulator,
    db: Database,
    rabbit: Rabbit,
    worker_settings: Any,
    *,
    second_push: dict[str, Any] | None = None,
    second_status: str = "submitted",
) -> Retried:
    """Cycle 1 is pushed, never answered, and expires locally; the customer retries.

    Returns once cycle 2's push is accepted (and, with ``second_push``, the
    simulator's own outcome for it has been applied, ending in ``second_status``).
    """
    phone = unique_phone()
    payment_id = expire_unanswered(api, merchant, sim, db, worker_settings, phone)
    assert money_of(db, merchant) == Money([], 0)

    # A long second window: cycle 2 must not expire while the test speaks for the gateway.
    worker_settings(payment_expiry_s=600)
    if second_push is not None:  # the newest matching scenario decides the second push
        sim.scenario(match={"phone": phone}, **second_push)
    retried = api.post(f"/v1/payments/{payment_id}/retry", headers=merchant.headers())
    assert retried.status_code == 202, retried.text

    def second_cycle() -> bool:
        intent = intent_of(db, payment_id)
        return intent.cycle == 2 and intent.status == second_status

    wait_until(second_cycle, timeout_s=30, what=f"the second cycle to be {second_status}")
    rabbit.wait_settled("callbacks")
    first, second = pushes_of(db, sim, payment_id)
    assert (first.cycle, second.cycle) == (1, 2)
    assert first.checkout_id != second.checkout_id
    assert money_of(db, merchant) == Money([], 0)
    return Retried(payment_id, phone, AMOUNT, first, second)


# -- 1. both pushes paid ---------------------------------------------------------------------


@pytest.mark.parametrize("first_paid", ["cycle_1", "cycle_2"])
def test_both_pushes_paid_credit_the_payment_once_and_flag_the_other_for_a_refund(
    api: ApiClient,
    merchant: MerchantAccount,
    sim: Simulator,
    db: Database,
    rabbit: Rabbit,
    settings: Settings,
    worker_settings: Any,
    first_paid: str,
) -> None:
    # Given a payment whose first push expired and that the customer retried
    r = expire_then_retry(api, merchant, sim, db, rabbit, worker_settings)
    in_order = [r.first, r.second] if first_paid == "cycle_1" else [r.second, r.first]
    receipts = {push.checkout_id: receipt() for push in in_order}

    # When the customer turns out to have paid both prompts, callbacks in either order
    for push in in_order:
        deliver(rabbit, push, paid(push, r, receipts[push.checkout_id]), 0)

    # Then the payment succeeded on the first success to arrive ...
    earlier, later = in_order
    intent = intent_of(db, r.payment_id)
    assert (intent.status, intent.cycle) == ("succeeded", 2)
    assert intent.settled_ref == earlier.checkout_id
    assert intent.receipt == receipts[earlier.checkout_id]
    assert intent.failure_code is None
    # ... the merchant is credited once, with that success's receipt (ADR 0013: "once") ...
    assert money_of(db, merchant) == Money([(r.amount, receipts[earlier.checkout_id])], r.amount)
    # ... and the second collection is flagged for a refund, naming the push that was paid again
    # (a success of the earlier push while the retry's was out is flagged on its own)
    expected_flags = (
        ["earlier_cycle_success", "duplicate_collection"]
        if first_paid == "cycle_1"
        else ["duplicate_collection"]
    )
    assert intent.flags == expected_flags
    assert [f for f in flagged(db, r.payment_id) if f["flag"] == "duplicate_collection"] == [
        {"flag": "duplicate_collection", "status": "succeeded", "gateway_ref": later.checkout_id}
    ]
    assert outcome_of(db, earlier.checkout_id, 0) == "applied"
    assert outcome_of(db, later.checkout_id, 0) == "duplicate_collection"
    # ... where the merchant's operator finds it
    [listed] = listed_for_review(api, db, settings, merchant, "duplicate_collection")
    assert (listed["payment_id"], listed["gateway_ref"]) == (str(r.payment_id), later.checkout_id)

    # The money invariant: what the customer paid = what is credited + what is flagged to refund
    collected = r.amount * len(in_order)
    refund_due = r.amount * intent.flags.count("duplicate_collection")
    assert money_of(db, merchant).balance + refund_due == collected

    # And Daraja delivering both callbacks again changes nothing
    for push in in_order:
        deliver(rabbit, push, paid(push, r, receipts[push.checkout_id]), 0)
    assert money_of(db, merchant) == Money([(r.amount, receipts[earlier.checkout_id])], r.amount)
    assert intent_of(db, r.payment_id).flags == expected_flags
    assert len(flagged(db, r.payment_id)) == len(expected_flags)


# -- 2. a late word of cycle 1 -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("result_code", "description"),
    [
        (1032, "Request cancelled by user"),
        (1, "The balance is insufficient for the transaction."),
    ],
)
def test_a_late_failure_of_the_first_push_does_not_disturb_the_second_cycle(
    api: ApiClient,
    merchant: MerchantAccount,
    sim: Simulator,
    db: Database,
    rabbit: Rabbit,
    worker_settings: Any,
    result_code: int,
    description: str,
) -> None:
    # Given a retried payment whose second push is with the customer
    r = expire_then_retry(api, merchant, sim, db, rabbit, worker_settings)

    # When the gateway's late word about the FIRST push arrives: it failed
    deliver(rabbit, r.first, unpaid(r.first, r, result_code, description), result_code)

    # Then it is recorded, and the second cycle carries on, untouched
    assert outcome_of(db, r.first.checkout_id, result_code) is not None
    intent = intent_of(db, r.payment_id)
    assert (intent.status, intent.cycle, intent.failure_code) == ("submitted", 2, None)
    assert intent.flags == []
    assert money_of(db, merchant) == Money([], 0)

    # And the second push succeeds on its own callback, credited once
    second_receipt = receipt()
    deliver(rabbit, r.second, paid(r.second, r, second_receipt), 0)
    intent = intent_of(db, r.payment_id)
    assert (intent.status, intent.receipt, intent.settled_ref) == (
        "succeeded",
        second_receipt,
        r.second.checkout_id,
    )
    assert intent.flags == []
    assert outcome_of(db, r.second.checkout_id, 0) == "applied"
    assert money_of(db, merchant) == Money([(r.amount, second_receipt)], r.amount)


def test_a_late_success_of_the_first_push_is_credited_after_the_second_push_was_cancelled(
    api: ApiClient,
    merchant: MerchantAccount,
    sim: Simulator,
    db: Database,
    rabbit: Rabbit,
    worker_settings: Any,
) -> None:
    # Given a retried payment whose second prompt the customer cancelled (the simulator's
    # own callback, through the ingress) ...
    r = expire_then_retry(
        api,
        merchant,
        sim,
        db,
        rabbit,
        worker_settings,
        second_push={"result_code": 1032, "callback": "once", "callback_delay_s": 0.3},
        second_status="cancelled",
    )
    assert outcome_of(db, r.second.checkout_id, 1032) == "applied"

    # When the first prompt turns out to have been paid after all
    first_receipt = receipt()
    deliver(rabbit, r.first, paid(r.first, r, first_receipt), 0)

    # Then the customer's money reaches the merchant, once (ADR 0013: a success for an
    # earlier cycle's push still credits the payment)
    assert money_of(db, merchant) == Money([(r.amount, first_receipt)], r.amount)
    assert intent_of(db, r.payment_id).status == "succeeded"


# -- 3. a success that contradicts the intent ----------------------------------------------------


@pytest.mark.parametrize(
    ("contradiction", "override"),
    [
        ("phone_mismatch", {"phone": "254719999999"}),
        ("amount_mismatch", {"amount_minor": AMOUNT - 1500}),
    ],
)
def test_a_success_that_contradicts_the_intent_is_flagged_and_never_credited(
    api: ApiClient,
    merchant: MerchantAccount,
    sim: Simulator,
    db: Database,
    rabbit: Rabbit,
    worker_settings: Any,
    contradiction: str,
    override: dict[str, Any],
) -> None:
    # Given a retried payment whose second push is with the customer
    r = expire_then_retry(api, merchant, sim, db, rabbit, worker_settings)
    assert (override.get("phone"), override.get("amount_minor")) != (r.phone, r.amount)

    # When a success for the first push arrives that names another phone (or amount)
    bogus_receipt = receipt()
    deliver(rabbit, r.first, paid(r.first, r, bogus_receipt, **override), 0)

    # Then it is kept and flagged for review, and nothing moves: no credit, cycle 2 untouched
    assert outcome_of(db, r.first.checkout_id, 0) == "mismatch"
    intent = intent_of(db, r.payment_id)
    assert (intent.status, intent.cycle, intent.settled_ref) == ("submitted", 2, None)
    assert intent.flags == [contradiction]
    assert [f["flag"] for f in flagged(db, r.payment_id)] == [contradiction]
    assert money_of(db, merchant) == Money([], 0)

    # And the genuine success of the second push is credited once, the flag kept
    good_receipt = receipt()
    deliver(rabbit, r.second, paid(r.second, r, good_receipt), 0)
    intent = intent_of(db, r.payment_id)
    assert (intent.status, intent.receipt) == ("succeeded", good_receipt)
    assert intent.flags == [contradiction]
    assert money_of(db, merchant) == Money([(r.amount, good_receipt)], r.amount)
    assert bogus_receipt not in {txn for _, txn in money_of(db, merchant).entries}


# -- 5. a late success after the merchant reused the reference ---------------------------------


def test_a_late_success_after_the_reference_was_reused_is_kept_for_review_not_crashed(
    api: ApiClient,
    merchant: MerchantAccount,
    sim: Simulator,
    db: Database,
    rabbit: Rabbit,
    settings: Settings,
    worker_settings: Any,
) -> None:
    # Given payment A for an order, never answered, expired here
    phone, reference = unique_phone(), f"ORD-{uuid.uuid4().hex[:8]}"
    first = expire_unanswered(api, merchant, sim, db, worker_settings, phone, reference=reference)
    # and payment B the merchant then started for the same order (its push still out)
    worker_settings(payment_expiry_s=600)
    second = uuid.UUID(
        start_payment(api, merchant, phone=phone, amount=AMOUNT, reference=reference)
    )
    wait_until(
        lambda: (i := find_intent(db, second)) is not None and i.status == "submitted",
        what="payment B to be submitted",
    )
    [push_a] = pushes_of(db, sim, first)
    a = Retried(first, phone, AMOUNT, push_a, push_a)

    # When the customer's payment of A's prompt arrives after all
    deliver(rabbit, push_a, paid(push_a, a, receipt()), 0)

    # Then A cannot become live beside B: it is kept for an operator, flagged and not
    # credited, instead of failing (and dead-lettering) on the live-reference index
    intent = intent_of(db, first)
    assert intent.status == "expired"
    assert intent.flags == ["paid_after_reference_reused"]
    assert outcome_of(db, push_a.checkout_id, 0) == "reference_taken"
    [listed] = listed_for_review(api, db, settings, merchant, "reference_taken")
    assert (listed["payment_id"], listed["gateway_ref"]) == (str(first), push_a.checkout_id)
    assert money_of(db, merchant) == Money([], 0)
    assert intent_of(db, second).status == "submitted"  # B goes on undisturbed
