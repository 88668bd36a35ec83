"""What end-to-end tests ask of a payment: its view over HTTP, and its rows in the database."""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from sqlalchemy import func, select

from shared.db.models import Balance, GatewayEvent, LedgerEntry, PaymentIntent
from shared.db.session import Database
from tests.support.waiting import wait_until


class Client(Protocol):
    def get(self, path: str, **kwargs: Any) -> Any: ...


class Merchant(Protocol):
    @property
    def id(self) -> uuid.UUID: ...

    def headers(self, idempotency_key: str | None = None) -> dict[str, str]: ...


def view_of(
    api: Client, merchant: Merchant, payment_id: str, wait_s: int = 0, until: str | None = None
) -> dict[str, Any]:
    """``GET /v1/payments/{id}``, held up to ``wait_s`` for a change (or ``until``); it exists."""
    params: dict[str, Any] | None = {"wait": wait_s} if wait_s else None
    if params is not None and until is not None:
        params["until"] = until
    response = api.get(f"/v1/payments/{payment_id}", params=params, headers=merchant.headers())
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


def final_view(
    api: Client, merchant: Merchant, payment_id: str, timeout_s: float = 30
) -> dict[str, Any]:
    """The payment's view once it is finished (neither created nor submitted)."""

    def finished() -> dict[str, Any] | None:
        response = api.get(
            f"/v1/payments/{payment_id}", params={"wait": 5}, headers=merchant.headers()
        )
        if response.status_code != 200:
            return None  # accepted, not stored yet
        view: dict[str, Any] = response.json()
        return view if view["status"] not in ("created", "submitted") else None

    return wait_until(finished, timeout_s=timeout_s, what=f"payment {payment_id} to finish")


def intent(db: Database, payment_id: str) -> PaymentIntent:
    with db.transaction() as session:
        found = session.get(PaymentIntent, uuid.UUID(payment_id))
    assert found is not None
    return found


def events(db: Database, payment_id: str) -> list[GatewayEvent]:
    """Everything a gateway said about the payment, oldest first."""
    with db.transaction() as session:
        return list(
            session.scalars(
                select(GatewayEvent)
                .where(GatewayEvent.intent_id == uuid.UUID(payment_id))
                .order_by(GatewayEvent.id)
            )
        )


def ledger_rows(db: Database, payment_id: str) -> list[LedgerEntry]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(LedgerEntry)
                .where(LedgerEntry.intent_id == uuid.UUID(payment_id))
                .order_by(LedgerEntry.id)
            )
        )


def ledger_total(db: Database, merchant: Merchant) -> int:
    """What the merchant's ledger entries add up to (collections less fees)."""
    with db.transaction() as session:
        total = session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0)).where(
                LedgerEntry.merchant_id == merchant.id
            )
        )
    return int(total or 0)


def balance(db: Database, merchant: Merchant, currency: str) -> int | None:
    with db.transaction() as session:
        found = session.get(Balance, (merchant.id, currency))
        return None if found is None else found.available_minor
