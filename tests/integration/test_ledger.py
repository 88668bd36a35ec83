"""The ledger: each collection credited once, and the balance always the sum of the ledger.

The balance row is written as the unit of work's last statement (``write_last``);
these tests hold it to the same promises as before: many concurrent credits for
one merchant add up exactly, a repeated credit adds nothing, and a unit of work
that fails after its credit leaves neither the entry nor the balance behind.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from shared.db.models import Balance, PaymentIntent
from shared.db.session import Database
from tests.conftest import MerchantAccount
from tests.support.seed import SeededPayment, ledger_state, seed_submitted_payments
from workers.ledger import credit_collection


class Interrupted(Exception):
    pass


def balance(db: Database, merchant_id: uuid.UUID) -> int:
    with db.transaction() as session:
        row = session.get(Balance, (merchant_id, "KES"))
        return row.available_minor if row is not None else 0


def credit(db: Database, payment: SeededPayment) -> bool:
    with db.transaction() as session:
        intent = session.scalars(
            select(PaymentIntent).where(PaymentIntent.id == payment.id).with_for_update()
        ).one()
        return credit_collection(session, intent, f"R{payment.checkout_id[-8:]}")


def test_concurrent_credits_for_one_merchant_add_up_exactly(
    db: Database, merchant: MerchantAccount
) -> None:
    # Given many submitted payments of one merchant
    payments = seed_submitted_payments(db, merchant.id, 120, tag=f"l{uuid.uuid4().hex[:6]}")

    # When each is credited twice, from eight threads at once
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda p: credit(db, p), payments + payments))

    # Then each was credited once, and the balance is exactly the ledger's sum
    assert sum(results) == len(payments)
    ledger = ledger_state(db, merchant.id)
    assert ledger.entries == ledger.distinct_intents == len(payments)
    assert ledger.total_minor == sum(p.amount_minor for p in payments)
    assert balance(db, merchant.id) == ledger.total_minor


def test_a_unit_of_work_that_fails_after_its_credit_leaves_no_trace(
    db: Database, merchant: MerchantAccount
) -> None:
    [payment] = seed_submitted_payments(db, merchant.id, 1, tag=f"f{uuid.uuid4().hex[:6]}")

    def credit_then_fail() -> None:
        with db.transaction() as session:
            intent = session.get(PaymentIntent, payment.id, with_for_update=True)
            assert intent is not None
            assert credit_collection(session, intent, "RFAILED01")
            raise Interrupted  # e.g. the audit row could not be written

    with pytest.raises(Interrupted):
        credit_then_fail()

    assert ledger_state(db, merchant.id).entries == 0
    assert balance(db, merchant.id) == 0
    # And the credit can still happen, once
    assert credit(db, payment)
    assert balance(db, merchant.id) == payment.amount_minor
