"""Ledger writes. Money moves here and nowhere else.

A collection is one ``ledger_entries`` row per intent (unique on intent and
kind) and the same amount added to the merchant's balance, in the caller's
transaction. A second credit for the same intent inserts nothing and adds nothing.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.db.models import Balance, LedgerEntry, PaymentIntent


def credit_collection(session: Session, intent: PaymentIntent, gateway_txn_id: str | None) -> bool:
    """Credit a succeeded intent's amount to its merchant once; True if this call credited it."""
    inserted = session.execute(
        insert(LedgerEntry)
        .values(
            merchant_id=intent.merchant_id,
            intent_id=intent.id,
            kind="collection",
            amount_minor=intent.amount_minor,
            currency=intent.currency,
            gateway=intent.gateway,
            gateway_txn_id=gateway_txn_id,
        )
        .on_conflict_do_nothing(index_elements=["intent_id", "kind"])
        .returning(LedgerEntry.id)
    ).scalar_one_or_none()
    if inserted is None:
        return False
    upsert = insert(Balance).values(
        merchant_id=intent.merchant_id,
        currency=intent.currency,
        available_minor=intent.amount_minor,
    )
    session.execute(
        upsert.on_conflict_do_update(
            index_elements=["merchant_id", "currency"],
            set_={
                "available_minor": Balance.available_minor + upsert.excluded.available_minor,
                "updated_at": func.now(),
            },
        )
    )
    return True
