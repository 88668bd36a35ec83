"""The database itself refuses what money out must never do, whatever the code does.

Behind the ingress's locks stand CHECK constraints: a payment refunded beyond its
amount, a balance or a hold below zero, a refund or payout ledger entry that adds
money, a second ledger entry for one transfer. Each is tried here with a bare
statement, past every lock, and must fail.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError

from shared.db.models import Balance, LedgerEntry, PaymentIntent, Transfer
from shared.db.session import Database
from shared.domain.errors import MalipoError
from shared.transfers import Requester, accept_refund, hold
from tests.conftest import MerchantAccount
from tests.support.seed import seed_submitted_payments
from workers.ledger import credit_collection


def succeeded_payment(db: Database, merchant: MerchantAccount, amount: int = 1_000) -> uuid.UUID:
    [payment] = seed_submitted_payments(db, merchant.id, 1, tag=f"c{uuid.uuid4().hex[:6]}")
    with db.transaction() as session:
        intent = session.get(PaymentIntent, payment.id, with_for_update=True)
        assert intent is not None
        intent.amount_minor = amount
        intent.status = "succeeded"
        credit_collection(session, intent, f"R{uuid.uuid4().hex[:9]}".upper())
    return payment.id


def test_a_payment_cannot_be_reserved_beyond_its_amount(
    db: Database, merchant: MerchantAccount
) -> None:
    payment_id = succeeded_payment(db, merchant)
    with pytest.raises(IntegrityError, match="refunds_within_amount"), db.transaction() as s:
        s.execute(
            update(PaymentIntent)
            .where(PaymentIntent.id == payment_id)
            .values(refund_reserved_minor=1_001)
        )
    with pytest.raises(IntegrityError, match="refunded_within_reserved"), db.transaction() as s:
        s.execute(
            update(PaymentIntent).where(PaymentIntent.id == payment_id).values(refunded_minor=1)
        )


def test_neither_available_nor_held_goes_below_zero(
    db: Database, merchant: MerchantAccount
) -> None:
    succeeded_payment(db, merchant)
    key = {"merchant_id": merchant.id, "currency": "KES"}
    with pytest.raises(IntegrityError, match="not_negative"), db.transaction() as s:
        s.execute(update(Balance).filter_by(**key).values(available_minor=-1))
    with pytest.raises(IntegrityError, match="held_not_negative"), db.transaction() as s:
        s.execute(update(Balance).filter_by(**key).values(held_minor=-1))
    # The hold itself refuses, naming what is available.
    with pytest.raises(MalipoError) as refused, db.transaction() as s:
        hold(s, merchant.id, "KES", 1_001)
    assert refused.value.code == "insufficient_balance"
    assert refused.value.facts["available"] == 1_000


def test_a_transfer_has_one_ledger_entry_and_it_takes_money_out(
    db: Database, merchant: MerchantAccount
) -> None:
    payment_id = succeeded_payment(db, merchant)
    with db.transaction() as session:
        refund, _ = accept_refund(
            session,
            Requester(merchant.id, None, "test"),
            payment_id,
            f"k-{uuid.uuid4().hex}",
            {"amount": 300, "reason": "test"},
        )
        refund_id = refund.id
    entry = {
        "merchant_id": merchant.id,
        "intent_id": None,
        "transfer_id": refund_id,
        "kind": "refund",
        "currency": "KES",
        "gateway": "daraja",
    }
    with pytest.raises(IntegrityError, match="one_subject"), db.transaction() as s:
        s.execute(insert(LedgerEntry).values(**entry, amount_minor=300))
    with db.transaction() as s:
        s.execute(insert(LedgerEntry).values(**entry, amount_minor=-300))
    with (
        pytest.raises(IntegrityError, match="uq_ledger_entries_transfer_id"),
        db.transaction() as s,
    ):
        s.execute(insert(LedgerEntry).values(**entry, amount_minor=-300))
    with db.transaction() as session:
        row = session.get(Transfer, refund_id)
        assert row is not None
        assert row.request_ref == refund_id.hex


def test_racing_refunds_of_one_payment_stop_at_its_amount(
    db: Database, merchant: MerchantAccount
) -> None:
    payment_id = succeeded_payment(db, merchant)

    def refund(n: int) -> int | str:
        try:
            with db.transaction() as session:
                accepted, _ = accept_refund(
                    session,
                    Requester(merchant.id, None, "test"),
                    payment_id,
                    f"race-{n}-{uuid.uuid4().hex}",
                    {"amount": 150, "reason": "race"},
                )
                return accepted.amount_minor
        except MalipoError as exc:
            return exc.code

    with ThreadPoolExecutor(20) as pool:
        taken = list(pool.map(refund, range(20)))

    assert sorted(taken, key=str) == [150] * 6 + ["refund_exceeds_payment"] * 14
    with db.transaction() as session:
        intent = session.get(PaymentIntent, payment_id)
        balance = session.get(Balance, (merchant.id, "KES"))
    assert intent is not None
    assert balance is not None
    assert intent.refund_reserved_minor == 900
    assert (balance.available_minor, balance.held_minor) == (100, 900)
