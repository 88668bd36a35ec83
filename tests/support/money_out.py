"""What the money-out suites share: keys with money-out scopes, requests, and the rows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import requests
from sqlalchemy import func, select

from shared.db.models import AuditRecord, Balance, LedgerEntry, Merchant, Transfer
from shared.db.session import Database
from shared.merchants import issue_api_key
from shared.settings import Settings
from tests.support.waiting import wait_until

MONEY_OUT_SCOPES = ("payments:write", "payments:read", "refunds:write", "payouts:write")


class Client(Protocol):
    def get(self, path: str, **kwargs: Any) -> requests.Response: ...

    def post(self, path: str, **kwargs: Any) -> requests.Response: ...


@dataclass(frozen=True)
class Key:
    """An API key of a merchant, as a set of headers."""

    token: str

    def headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers


def new_key(
    db: Database,
    settings: Settings,
    merchant_id: uuid.UUID | None,
    scopes: tuple[str, ...] = MONEY_OUT_SCOPES,
) -> Key:
    with db.transaction() as session:
        token = issue_api_key(
            session, settings.secret_key.get_secret_value().encode(), merchant_id, scopes
        )
    return Key(token)


def request_refund(
    api: Client, key: Key, payment_id: str, *, amount: int | None = None, reason: str = "returned"
) -> requests.Response:
    body: dict[str, Any] = {"reason": reason}
    if amount is not None:
        body["amount"] = amount
    return api.post(
        f"/v1/payments/{payment_id}/refunds", json=body, headers=key.headers(str(uuid.uuid4()))
    )


def request_payout(
    api: Client,
    key: Key,
    *,
    amount: int,
    phone: str = "254712345678",
    currency: str = "KES",
    reason: str = "seller settlement",
    idempotency_key: str | None = None,
    **extra: Any,
) -> requests.Response:
    body = {"amount": amount, "currency": currency, "phone": phone, "reason": reason, **extra}
    return api.post(
        "/v1/payouts", json=body, headers=key.headers(idempotency_key or str(uuid.uuid4()))
    )


def set_payout_rules(db: Database, merchant_id: uuid.UUID, **rules: Any) -> None:
    """The merchant's payout rules (``approval_above``, ``notify_recipient``), replaced."""
    with db.transaction() as session:
        row = session.get(Merchant, merchant_id)
        assert row is not None
        row.payouts = rules


def transfer_row(db: Database, transfer_id: str) -> Transfer:
    with db.transaction() as session:
        row = session.get(Transfer, uuid.UUID(transfer_id))
    assert row is not None
    return row


def final_transfer(
    api: Client, key: Key, kind: str, transfer_id: str, timeout_s: float = 40
) -> dict[str, Any]:
    """The refund's or payout's view once it is succeeded, failed or rejected."""

    def finished() -> dict[str, Any] | None:
        response = api.get(f"/v1/{kind}s/{transfer_id}", headers=key.headers())
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        return view if view["status"] in ("succeeded", "failed", "rejected") else None

    return wait_until(finished, timeout_s=timeout_s, what=f"{kind} {transfer_id} to finish")


def balance_of(db: Database, merchant_id: uuid.UUID, currency: str) -> tuple[int, int]:
    """(available, held) minor units."""
    with db.transaction() as session:
        row = session.get(Balance, (merchant_id, currency))
    return (row.available_minor, row.held_minor) if row is not None else (0, 0)


def ledger_sum(db: Database, merchant_id: uuid.UUID, kind: str | None = None) -> int:
    with db.transaction() as session:
        query = select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0)).where(
            LedgerEntry.merchant_id == merchant_id
        )
        if kind is not None:
            query = query.where(LedgerEntry.kind == kind)
        return int(session.scalar(query) or 0)


def audit_actions(db: Database, transfer_id: str) -> list[str]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(AuditRecord.action)
                .where(AuditRecord.subject_id == transfer_id)
                .order_by(AuditRecord.id)
            )
        )
