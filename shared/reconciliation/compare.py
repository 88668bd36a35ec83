"""The comparison at the heart of reconciliation: our payments against the gateway's list.

Pure: no I/O, so the rules are tested as properties. One finding per transaction seen
on either side, keyed so that running the comparison again names the same findings:

* ``matched`` — both sides agree (both paid the same amount, or neither moved money);
* ``missing_at_gateway`` — we credited it, the gateway lists nothing;
* ``missing_here`` — the gateway lists money we have no payment for (an orphan);
* ``amount_mismatch`` — both paid, different amounts;
* ``status_mismatch`` — one side paid, the other did not (``credit`` says whether the
  gateway proves a success we had as unpaid, to be finished through the apply path);
* ``duplicate_receipt`` — one receipt credited to two payments, or listed twice;
* ``pending_verification`` — not final here and nothing from the gateway yet.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from shared.domain.states import FINAL_STATES, PaymentStatus
from shared.gateways.base import GatewayTransaction, Outcome

MATCHED = "matched"
MISSING_AT_GATEWAY = "missing_at_gateway"
MISSING_HERE = "missing_here"
AMOUNT_MISMATCH = "amount_mismatch"
STATUS_MISMATCH = "status_mismatch"
DUPLICATE_RECEIPT = "duplicate_receipt"
PENDING_VERIFICATION = "pending_verification"


@dataclass(frozen=True)
class OurPayment:
    """What the comparison needs of a payment of ours."""

    id: uuid.UUID
    merchant_id: uuid.UUID
    status: str
    amount_minor: int
    currency: str
    receipt: str | None
    # Every gateway id our attempts carry (a customer's retry adds one per cycle).
    gateway_refs: frozenset[str]
    # What the gateway shows as the bill or account reference for it.
    account_ref: str | None
    in_window: bool = True


@dataclass(frozen=True)
class Finding:
    key: str
    kind: str
    payment: OurPayment | None = None
    theirs: GatewayTransaction | None = None
    # The gateway proves a success we have as unpaid: finish it through the apply path.
    credit: bool = False
    # Every listed copy (duplicate receipts), as evidence.
    copies: tuple[GatewayTransaction, ...] = field(default_factory=tuple)
    payments: tuple[OurPayment, ...] = field(default_factory=tuple)


def row_key(row: GatewayTransaction) -> str:
    """A gateway row's name: its receipt, else its id, else a digest of what it says."""
    if row.receipt:
        return f"receipt:{row.receipt}"
    if row.gateway_ref:
        return f"ref:{row.gateway_ref}"
    digest = hashlib.sha256(json.dumps(dict(row.raw), sort_keys=True, default=str).encode())
    return f"row:{digest.hexdigest()[:32]}"


def compare(
    ours: Sequence[OurPayment],
    theirs: Iterable[GatewayTransaction],
    window: tuple[datetime, datetime],
) -> list[Finding]:
    """Every finding of the window, in a stable order (by key).

    ``theirs`` may reach past the window (a payment accepted just before the end may
    complete after it): such rows are matched to our payments, but a row outside the
    window that matches nothing of ours is not reported — the next window owns it.
    """
    findings: dict[str, Finding] = {}
    rows: list[GatewayTransaction] = []
    copies: dict[str, list[GatewayTransaction]] = defaultdict(list)
    for row in theirs:
        key = row_key(row)
        if key not in copies:
            rows.append(row)
        copies[key].append(row)

    # One receipt credited to two of our payments (or a listed receipt repeated).
    by_receipt: dict[str, list[OurPayment]] = defaultdict(list)
    for payment in ours:
        if payment.receipt and payment.status == PaymentStatus.SUCCEEDED:
            by_receipt[payment.receipt].append(payment)
    doubled = {receipt for receipt, paid in by_receipt.items() if len(paid) > 1}
    for receipt in sorted(doubled):
        paid = tuple(sorted(by_receipt[receipt], key=lambda p: str(p.id)))
        findings[f"receipt:{receipt}"] = Finding(
            f"receipt:{receipt}",
            DUPLICATE_RECEIPT,
            payment=paid[0],
            theirs=next(iter(copies.get(f"receipt:{receipt}", [])), None),
            payments=paid,
            copies=tuple(copies.get(f"receipt:{receipt}", [])),
        )
    for key, listed in copies.items():
        if len(listed) > 1 and key.startswith("receipt:") and key not in findings:
            findings[key] = Finding(key, DUPLICATE_RECEIPT, theirs=listed[0], copies=tuple(listed))

    claimed: set[str] = set()
    by_ref = _index(rows, lambda row: [row.receipt, row.gateway_ref])
    by_account = _index(rows, lambda row: [row.account_ref])
    for payment in sorted(ours, key=lambda p: str(p.id)):
        if payment.receipt in doubled:
            continue
        finding = _judge(payment, _claim(payment, by_ref, by_account, claimed))
        if payment.in_window or finding.kind != MATCHED:
            findings[finding.key] = finding

    start, end = window
    for row in rows:
        key = row_key(row)
        if key in claimed or row.outcome != Outcome.SUCCEEDED:
            continue
        if start <= row.completed_at < end and key not in findings:
            findings[f"gateway:{key}"] = Finding(f"gateway:{key}", MISSING_HERE, theirs=row)
    return [findings[key] for key in sorted(findings)]


def _index(
    rows: Sequence[GatewayTransaction],
    names: Callable[[GatewayTransaction], list[str | None]],
) -> dict[str, list[GatewayTransaction]]:
    index: dict[str, list[GatewayTransaction]] = defaultdict(list)
    for row in rows:
        for name in names(row):
            if name:
                index[name].append(row)
    return index


def _claim(
    payment: OurPayment,
    by_ref: dict[str, list[GatewayTransaction]],
    by_account: dict[str, list[GatewayTransaction]],
    claimed: set[str],
) -> GatewayTransaction | None:
    """The gateway's row for ``payment``: by receipt, by our gateway id, else by account.

    The account reference (what the customer saw) is not unique: it is used only for a
    payment without a receipt, and only when exactly one unclaimed row of the same amount
    carries it.
    """
    for name in (payment.receipt, *sorted(payment.gateway_refs)):
        for row in by_ref.get(name or "", []):
            if row_key(row) not in claimed:
                claimed.add(row_key(row))
                return row
    if payment.receipt is None and payment.account_ref:
        candidates = [
            row
            for row in by_account.get(payment.account_ref, [])
            if row_key(row) not in claimed
            and row.amount.amount_minor == payment.amount_minor
            and row.receipt
        ]
        if len(candidates) == 1:
            claimed.add(row_key(candidates[0]))
            return candidates[0]
    return None


def _judge(payment: OurPayment, row: GatewayTransaction | None) -> Finding:
    key = f"payment:{payment.id}"
    paid_here = payment.status == PaymentStatus.SUCCEEDED
    final_here = payment.status in FINAL_STATES
    paid_there = row is not None and row.outcome == Outcome.SUCCEEDED
    if paid_here and row is None:
        return Finding(key, MISSING_AT_GATEWAY, payment)
    if paid_here and paid_there:
        assert row is not None
        same = row.amount.amount_minor == payment.amount_minor
        return Finding(key, MATCHED if same else AMOUNT_MISMATCH, payment, row)
    if paid_here:
        return Finding(key, STATUS_MISMATCH, payment, row)  # we credited; it says not paid
    if paid_there:
        assert row is not None
        if row.amount.amount_minor != payment.amount_minor:
            return Finding(key, AMOUNT_MISMATCH, payment, row)
        return Finding(key, STATUS_MISMATCH, payment, row, credit=True)
    if not final_here:
        return Finding(key, PENDING_VERIFICATION, payment, row)
    return Finding(key, MATCHED, payment, row)  # neither side moved money
