"""Ledger writes. Money moves here and nowhere else.

A collection is one ``ledger_entries`` row per intent (unique on intent and
kind) and the same amount added to the merchant's balance, in the caller's
transaction. A second credit for the same intent inserts nothing and adds nothing.
A gateway's fee on the collection (IntaSend's ``charges``) is a second, negative
entry (kind ``fee``) in the same transaction, so the entries and the balance
both say what the merchant nets.

Every collection of a merchant updates its one balance row, whose lock is held
until commit; so the balance is updated as the transaction's last write
(``write_last``), and callbacks for one merchant queue on it only briefly.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.db.models import Balance, LedgerEntry, PaymentIntent
from shared.db.session import write_last

_BALANCE_DELTAS = "malipo.balance_deltas"


# Built once: they run for every collection.
_INSERT_ENTRY = (
    insert(LedgerEntry)
    .on_conflict_do_nothing(index_elements=["intent_id", "kind"])
    .returning(LedgerEntry.id)
)
_balance = insert(Balance)
_ADD_TO_BALANCE = _balance.on_conflict_do_update(
    index_elements=["merchant_id", "currency"],
    set_={
        "available_minor": Balance.available_minor + _balance.excluded.available_minor,
        "updated_at": func.now(),
    },
)


def credit_collection(session: Session, intent: PaymentIntent, gateway_txn_id: str | None) -> bool:
    """Credit a succeeded intent's amount, less its fee, to its merchant once.

    True if this call credited it. The fee is ``intent.fee_minor`` (0 to the amount).
    """
    if not _insert_entry(session, intent, "collection", intent.amount_minor, gateway_txn_id):
        return False
    fee = intent.fee_minor or 0
    if fee:
        _insert_entry(session, intent, "fee", -fee, gateway_txn_id)
    _add_to_balance(session, intent.merchant_id, intent.currency, intent.amount_minor - fee)
    return True


def _insert_entry(
    session: Session, intent: PaymentIntent, kind: str, amount: int, gateway_txn_id: str | None
) -> bool:
    inserted = (
        session.connection()
        .execute(
            _INSERT_ENTRY,
            {
                "merchant_id": intent.merchant_id,
                "intent_id": intent.id,
                "kind": kind,
                "amount_minor": amount,
                "currency": intent.currency,
                "gateway": intent.gateway,
                "gateway_txn_id": gateway_txn_id,
            },
        )
        .scalar_one_or_none()
    )
    return inserted is not None


def _add_to_balance(session: Session, merchant_id: uuid.UUID, currency: str, amount: int) -> None:
    """Add ``amount`` to the merchant's balance when the unit of work ends (one upsert per row)."""
    deltas: dict[tuple[uuid.UUID, str], int] | None = session.info.get(_BALANCE_DELTAS)
    if deltas is None:
        deltas = session.info[_BALANCE_DELTAS] = {}
        write_last(session, _apply_balance_deltas)
    deltas[(merchant_id, currency)] = deltas.get((merchant_id, currency), 0) + amount


def _apply_balance_deltas(session: Session) -> None:
    deltas: dict[tuple[uuid.UUID, str], int] = session.info.pop(_BALANCE_DELTAS)
    for (merchant_id, currency), amount in sorted(deltas.items()):  # one lock order: no deadlock
        session.connection().execute(
            _ADD_TO_BALANCE,
            {"merchant_id": merchant_id, "currency": currency, "available_minor": amount},
        )
