"""Refunds and payouts ("transfers"): accepting them, holding their money, finishing them.

Everything that changes a transfer's money is here, in the caller's transaction:

* **Accepting** (the ingress, in the request's transaction): a refund reserves its
  amount on the payment (``refund_reserved_minor``, never above the amount: the
  payment row is locked and a CHECK constraint backs it), and both kinds **hold**
  the amount on the merchant's balance (available → held, never below zero: a
  conditional UPDATE and a CHECK constraint). The same idempotency key always
  answers with the same transfer.
* **Finishing** (workers, the CLI, ``/ops``): a success settles the hold (held goes
  down, one negative ledger entry per transfer); a failure or rejection releases it
  (back to available) and gives the refund's reservation back. Each change writes
  its audit row and, for a final state, the merchant's webhook (outbox row).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared import audit
from shared.crypto import request_hash
from shared.db.models import (
    Balance,
    GatewayCredential,
    LedgerEntry,
    Merchant,
    PaymentIntent,
    Transfer,
    WebhookEvent,
)
from shared.domain import errors
from shared.domain.errors import MalipoError
from shared.domain.money import Money
from shared.domain.phone import mask_msisdn, mask_phone_numbers, normalise_phone
from shared.domain.states import PaymentStatus, TransferStatus, transfer_may_move
from shared.gateways import catalogue
from shared.gateways.base import Capability
from shared.gateways.transfers import TransferKind
from shared.merchants import route_for

_NAMESPACE = uuid.UUID("0b6a8a52-52a4-4c4b-9a0e-3d1d8f1f6a10")
REFUND_FIELDS = frozenset({"amount", "reason"})
PAYOUT_FIELDS = frozenset({"amount", "currency", "phone", "gateway", "reason"})


def transfer_id_for(merchant_id: uuid.UUID, kind: TransferKind, key: str) -> uuid.UUID:
    """The transfer's id: the same for the same merchant, kind and idempotency key."""
    return uuid.uuid5(_NAMESPACE, f"{merchant_id}:{kind.value}:{key}")


@dataclass(frozen=True)
class Requester:
    """Who asks: the merchant and the API key (four eyes compare keys)."""

    merchant_id: uuid.UUID
    key_id: uuid.UUID | None
    actor: str  # for the audit log: ``key:<id>``, ``operator:<name>``


# -- commands (validation of what the merchant sent) -----------------------------------------


def _reason(document: dict[str, Any]) -> str:
    reason = document.get("reason")
    if not isinstance(reason, str) or not 1 <= len(reason.strip()) <= 100:
        raise MalipoError(errors.INVALID_REQUEST, "reason must be 1-100 characters")
    if not reason.isprintable():
        raise MalipoError(errors.INVALID_REQUEST, "reason must be printable text")
    return reason.strip()


def _unknown_fields(document: dict[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(set(document) - known)
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown[:5])
        raise MalipoError(errors.INVALID_REQUEST, f"unknown field(s): {shown}")


def refund_command(document: dict[str, Any]) -> dict[str, Any]:
    """``{amount?, reason}``: no amount means what is left of the payment."""
    _unknown_fields(document, REFUND_FIELDS)
    amount = document.get("amount")
    if amount is not None and (
        isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0
    ):
        raise MalipoError(errors.INVALID_AMOUNT)
    return {"amount": amount, "reason": _reason(document)}


def payout_command(document: dict[str, Any]) -> dict[str, Any]:
    """``{amount, currency, phone, gateway?, reason}``, the phone in E.164 digits."""
    _unknown_fields(document, PAYOUT_FIELDS)
    for name in ("amount", "currency", "phone"):
        if name not in document:
            raise MalipoError(errors.INVALID_REQUEST, f"{name} is required")
    currency = document["currency"]
    if not isinstance(currency, str) or currency.upper() not in catalogue.currencies():
        raise MalipoError(errors.INVALID_CURRENCY, "no gateway takes this currency")
    amount = Money.from_minor(document["amount"], currency.upper())
    gateway = document.get("gateway")
    if gateway is not None:
        if not isinstance(gateway, str):
            raise MalipoError(errors.UNSUPPORTED_GATEWAY)
        gateway = catalogue.describe(gateway).name
    regions = tuple(
        dict.fromkeys(r for d in catalogue.for_currency(amount.currency) for r in d.phone_regions)
    )
    return {
        "amount": amount.amount_minor,
        "currency": amount.currency,
        "phone": normalise_phone(document["phone"], regions),
        "gateway": gateway,
        "reason": _reason(document),
    }


# -- holds --------------------------------------------------------------------------------------

_HOLD = (
    update(Balance)
    .where(
        Balance.merchant_id == bindparam("m"),
        Balance.currency == bindparam("c"),
        Balance.available_minor >= bindparam("a"),
    )
    .values(
        available_minor=Balance.available_minor - bindparam("a"),
        held_minor=Balance.held_minor + bindparam("a"),
    )
    .returning(Balance.available_minor)
)
_SETTLE = (
    update(Balance)
    .where(Balance.merchant_id == bindparam("m"), Balance.currency == bindparam("c"))
    .values(held_minor=Balance.held_minor - bindparam("a"))
)
_RELEASE = (
    update(Balance)
    .where(Balance.merchant_id == bindparam("m"), Balance.currency == bindparam("c"))
    .values(
        held_minor=Balance.held_minor - bindparam("a"),
        available_minor=Balance.available_minor + bindparam("a"),
    )
)
_AVAILABLE = select(Balance.available_minor).where(
    Balance.merchant_id == bindparam("m"), Balance.currency == bindparam("c")
)


def hold(session: Session, merchant_id: uuid.UUID, currency: str, amount: int) -> None:
    """Move ``amount`` from available to held, or refuse ``insufficient_balance``."""
    params = {"m": merchant_id, "c": currency, "a": amount}
    if session.execute(_HOLD, params).scalar_one_or_none() is not None:
        return
    available = session.execute(_AVAILABLE, params).scalar_one_or_none() or 0
    raise MalipoError(
        errors.INSUFFICIENT_BALANCE,
        f"the available {currency} balance is {available} minor units",
        available=available,
        currency=currency,
    )


# -- accepting --------------------------------------------------------------------------------


def _existing(
    session: Session, transfer_id: uuid.UUID, fingerprint: str, merchant_id: uuid.UUID
) -> Transfer | None:
    found = session.get(Transfer, transfer_id)
    if found is None:
        return None
    if found.merchant_id != merchant_id or found.request_hash != fingerprint:
        raise MalipoError(errors.IDEMPOTENCY_CONFLICT)
    return found


def _lock_intent(session: Session, payment_id: uuid.UUID) -> PaymentIntent | None:
    return session.scalars(
        select(PaymentIntent).where(PaymentIntent.id == payment_id).with_for_update()
    ).one_or_none()


def accept_refund(
    session: Session,
    who: Requester,
    payment_id: uuid.UUID,
    key: str,
    command: dict[str, Any],
) -> tuple[Transfer, bool]:
    """The refund for this key (True when this call created it), or a refusal."""
    transfer_id = transfer_id_for(who.merchant_id, TransferKind.REFUND, key)
    fingerprint = request_hash({"payment_id": str(payment_id), **command})
    intent = _lock_intent(session, payment_id)  # one refund of a payment at a time
    if intent is None or intent.merchant_id != who.merchant_id:
        raise MalipoError(errors.NOT_FOUND)
    existing = _existing(session, transfer_id, fingerprint, who.merchant_id)
    if existing is not None:
        return existing, False
    if intent.status != PaymentStatus.SUCCEEDED:
        raise MalipoError(errors.PAYMENT_NOT_REFUNDABLE, f"the payment is {intent.status}")
    description = catalogue.describe(intent.gateway)
    if not (description.has(Capability.REFUND) or description.manual_refunds):
        raise MalipoError(
            errors.CAPABILITY_NOT_SUPPORTED, f"{description.name} has no way to refund"
        )
    left = intent.amount_minor - intent.refund_reserved_minor
    amount = command["amount"] if command["amount"] is not None else left
    if amount <= 0 or amount > left:
        raise MalipoError(
            errors.REFUND_EXCEEDS_PAYMENT,
            f"{left} minor units of the payment are left to refund",
            refundable=left,
        )
    intent.refund_reserved_minor += amount
    session.flush()  # the CHECK constraint backs the lock
    hold(session, who.merchant_id, intent.currency, amount)
    status = (
        TransferStatus.PENDING
        if description.has(Capability.REFUND)
        else TransferStatus.REQUIRES_ACTION
    )
    transfer = _record_new(
        session,
        who,
        Transfer(
            id=transfer_id,
            kind=TransferKind.REFUND.value,
            payment_id=intent.id,
            idempotency_key=key,
            request_hash=fingerprint,
            gateway=intent.gateway,
            amount_minor=amount,
            currency=intent.currency,
            phone=intent.phone,
            reason=command["reason"],
            status=status.value,
        ),
    )
    return transfer, True


def _record_new(session: Session, who: Requester, transfer: Transfer) -> Transfer:
    """Store a new transfer as ``who`` asked for it, with its audit row."""
    transfer.merchant_id = who.merchant_id
    transfer.requested_by = who.key_id
    transfer.request_ref = transfer.id.hex
    try:
        with session.begin_nested():
            session.add(transfer)
            session.flush()
    except IntegrityError:
        # The same key, at the same moment, for another payment or currency (each request
        # locked its own row, so neither saw the other): one of them is a conflict.
        raise MalipoError(errors.IDEMPOTENCY_CONFLICT) from None
    _audit(session, transfer, who.actor, f"{transfer.kind}.requested", to=transfer.status)
    return transfer


def payout_gateway(session: Session, merchant_id: uuid.UUID, command: dict[str, Any]) -> str:
    """The named gateway, or the first of the merchant's route for the currency that pays out."""
    if command["gateway"] is not None:
        candidates = [command["gateway"]]
    else:
        candidates = route_for(session, merchant_id, command["currency"])
    for name in candidates:
        description = catalogue.describe(name)
        if command["currency"] in description.currencies and description.has(Capability.PAYOUT):
            return description.name
    if command["gateway"] is not None:
        raise MalipoError(errors.CAPABILITY_NOT_SUPPORTED, f"{command['gateway']} cannot pay out")
    raise MalipoError(
        errors.CAPABILITY_NOT_SUPPORTED,
        f"no gateway routed for {command['currency']} can pay out",
    )


_CREDENTIAL = select(GatewayCredential.enabled).where(
    GatewayCredential.merchant_id == bindparam("m"), GatewayCredential.gateway == bindparam("g")
)
_LOCK_BALANCE = (
    select(Balance.available_minor)
    .where(Balance.merchant_id == bindparam("m"), Balance.currency == bindparam("c"))
    .with_for_update()
)


def approval_threshold(merchant: Merchant, currency: str) -> int | None:
    """Payouts above this many minor units wait for a second key (None: never)."""
    limits = (merchant.payouts or {}).get("approval_above") or {}
    value = limits.get(currency)
    return int(value) if value is not None else None


def accept_payout(
    session: Session, who: Requester, key: str, command: dict[str, Any]
) -> tuple[Transfer, bool]:
    """The payout for this key (True when this call created it), or a refusal."""
    transfer_id = transfer_id_for(who.merchant_id, TransferKind.PAYOUT, key)
    fingerprint = request_hash(command)
    params = {"m": who.merchant_id, "c": command["currency"]}
    # One payout of a merchant's currency at a time: the balance row is the lock.
    session.execute(_LOCK_BALANCE, params)
    existing = _existing(session, transfer_id, fingerprint, who.merchant_id)
    if existing is not None:
        return existing, False
    gateway = payout_gateway(session, who.merchant_id, command)
    enabled = session.execute(_CREDENTIAL, {"m": who.merchant_id, "g": gateway}).scalar()
    if enabled is None:
        raise MalipoError(errors.GATEWAY_NOT_CONFIGURED)
    if not enabled:
        raise MalipoError(errors.GATEWAY_DISABLED)
    description = catalogue.describe(gateway)
    phone = normalise_phone(command["phone"], description.phone_regions)
    hold(session, who.merchant_id, command["currency"], command["amount"])
    merchant = session.get(Merchant, who.merchant_id)
    assert merchant is not None  # the key speaks for it
    threshold = approval_threshold(merchant, command["currency"])
    status = (
        TransferStatus.AWAITING_APPROVAL
        if threshold is not None and command["amount"] > threshold
        else TransferStatus.PENDING
    )
    transfer = _record_new(
        session,
        who,
        Transfer(
            id=transfer_id,
            kind=TransferKind.PAYOUT.value,
            payment_id=None,
            idempotency_key=key,
            request_hash=fingerprint,
            gateway=gateway,
            amount_minor=command["amount"],
            currency=command["currency"],
            phone=phone,
            reason=command["reason"],
            status=status.value,
        ),
    )
    return transfer, True


def lock_transfer(session: Session, transfer_id: uuid.UUID) -> Transfer | None:
    """The transfer's row, locked and read afresh (never a copy the session held before)."""
    return session.scalars(
        select(Transfer)
        .where(Transfer.id == transfer_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


def decide_payout(
    session: Session, who: Requester, payout_id: uuid.UUID, approve: bool, now: datetime
) -> tuple[Transfer, int | None]:
    """A second key approves (→ pending) or rejects (→ rejected, hold released) a payout.

    Returns the payout and, for a rejection, the webhook event to publish after commit.
    """
    transfer = lock_transfer(session, payout_id)
    if (
        transfer is None
        or transfer.merchant_id != who.merchant_id
        or transfer.kind != TransferKind.PAYOUT
    ):
        raise MalipoError(errors.NOT_FOUND)
    if transfer.status != TransferStatus.AWAITING_APPROVAL:
        raise MalipoError(errors.TRANSFER_NOT_ACTIONABLE, f"the payout is {transfer.status}")
    if who.key_id is not None and who.key_id == transfer.requested_by:
        raise MalipoError(errors.SELF_APPROVAL)
    transfer.decided_by = who.key_id
    if approve:
        move(session, transfer, TransferStatus.PENDING, who.actor, action="payout.approved")
        return transfer, None
    event_id = finish(
        session,
        transfer,
        TransferStatus.REJECTED,
        who.actor,
        now,
        failure_code=errors.REJECTED_BY_APPROVER.code,
        action="payout.rejected",
    )
    return transfer, event_id


# -- moving and finishing ---------------------------------------------------------------------


def _audit(session: Session, transfer: Transfer, actor: str, action: str, **detail: Any) -> None:
    audit.record(
        session,
        actor=actor,
        action=action,
        subject_type=transfer.kind,
        subject_id=transfer.id,
        detail={"amount": transfer.amount_minor, "currency": transfer.currency, **detail},
    )


def move(
    session: Session,
    transfer: Transfer,
    target: TransferStatus,
    actor: str,
    *,
    action: str | None = None,
    **detail: Any,
) -> bool:
    """Move a non-final transfer forward (audited); False when the state machine says no."""
    current = TransferStatus(transfer.status)
    if not transfer_may_move(current, target):
        return False
    transfer.status = target.value
    _audit(
        session,
        transfer,
        actor,
        action or f"{transfer.kind}.{target.value}",
        **{"from": current.value, **detail},
    )
    return True


_INSERT_DEBIT = insert(LedgerEntry)
_INSERT_EVENT = insert(WebhookEvent).returning(WebhookEvent.id)
_ADD_REFUNDED = (
    update(PaymentIntent)
    .where(PaymentIntent.id == bindparam("p"))
    .values(refunded_minor=PaymentIntent.refunded_minor + bindparam("a"))
)
_UNRESERVE = (
    update(PaymentIntent)
    .where(PaymentIntent.id == bindparam("p"))
    .values(refund_reserved_minor=PaymentIntent.refund_reserved_minor - bindparam("a"))
)


def finish(
    session: Session,
    transfer: Transfer,
    target: TransferStatus,
    actor: str,
    now: datetime,
    *,
    receipt: str | None = None,
    failure_code: str | None = None,
    message: str | None = None,
    action: str | None = None,
    **detail: Any,
) -> int | None:
    """Finish a transfer: settle (success) or release (failure, rejection) its hold.

    Returns the merchant webhook event's id (publish it after commit), or None when the
    transfer could not move there (already final: a replay is a no-op).
    """
    assert target.is_final
    if not move(
        session,
        transfer,
        target,
        actor,
        action=action,
        receipt=receipt,
        failure_code=failure_code,
        **detail,
    ):
        return None
    transfer.finished_at = now
    transfer.next_check_at = None
    params = {"m": transfer.merchant_id, "c": transfer.currency, "a": transfer.amount_minor}
    # One lock order everywhere: transfer, then its payment, then the balance (last).
    if target == TransferStatus.SUCCEEDED:
        transfer.receipt = receipt or transfer.receipt
        transfer.failure_code = transfer.failure_message = None
        if transfer.payment_id is not None:
            session.execute(_ADD_REFUNDED, {"p": transfer.payment_id, "a": transfer.amount_minor})
        session.execute(_SETTLE, params)
        session.execute(
            _INSERT_DEBIT,
            {
                "merchant_id": transfer.merchant_id,
                "intent_id": None,
                "transfer_id": transfer.id,
                "kind": transfer.kind,
                "amount_minor": -transfer.amount_minor,
                "currency": transfer.currency,
                "gateway": transfer.gateway,
                "gateway_txn_id": transfer.receipt,
            },
        )
    else:
        code = failure_code or errors.GATEWAY_ERROR.code
        transfer.failure_code = code
        # A gateway's own words go to the merchant: never a phone number in full.
        transfer.failure_message = mask_phone_numbers(message or errors.lookup(code).message)[:300]
        if transfer.payment_id is not None:
            session.execute(_UNRESERVE, {"p": transfer.payment_id, "a": transfer.amount_minor})
        session.execute(_RELEASE, params)
    outcome = "succeeded" if target == TransferStatus.SUCCEEDED else "failed"
    event_type = f"{transfer.kind}.{outcome}"
    return int(
        session.execute(
            _INSERT_EVENT,
            {
                "webhook_id": f"msg_{uuid.uuid4().hex}",
                "merchant_id": transfer.merchant_id,
                "payment_id": transfer.payment_id,
                "transfer_id": transfer.id,
                "event_type": event_type,
                "payload": {
                    "type": event_type,
                    "timestamp": now.isoformat(),
                    "data": transfer_view(transfer),
                },
                # Published after commit by the caller, or by the outbox relay if that is lost.
                "published_at": now,
            },
        ).scalar_one()
    )


# What an operator may settle by hand: a refund no API can make, and a transfer the
# gateway left undecided (its answers contradict each other, or it went quiet).
OPERATOR_STATES = frozenset({TransferStatus.REQUIRES_ACTION, TransferStatus.UNKNOWN})


def complete_by_operator(
    session: Session,
    transfer_id: uuid.UUID,
    evidence: str,
    operator: str,
    *,
    paid: bool = True,
    kind: TransferKind = TransferKind.REFUND,
    now: datetime | None = None,
) -> tuple[Transfer, int | None]:
    """An operator records how a transfer ended: paid (settled) or not (released).

    For a ``requires_action`` refund (paid back some other way) or a transfer left
    ``unknown``. Returns the transfer and the webhook event to publish after commit.
    """
    evidence = evidence.strip()
    if not 3 <= len(evidence) <= 500:
        raise MalipoError(errors.INVALID_REQUEST, "evidence must be 3-500 characters")
    transfer = lock_transfer(session, transfer_id)
    if transfer is None or transfer.kind != kind:
        raise MalipoError(errors.NOT_FOUND)
    if transfer.status not in OPERATOR_STATES:
        raise MalipoError(errors.TRANSFER_NOT_ACTIONABLE, f"the {kind.value} is {transfer.status}")
    transfer.evidence = evidence
    transfer.completed_by = operator[:100]
    event_id = finish(
        session,
        transfer,
        TransferStatus.SUCCEEDED if paid else TransferStatus.FAILED,
        f"operator:{operator}",
        now or datetime.now(UTC),
        failure_code=None if paid else errors.TRANSFER_REFUSED.code,
        message=None if paid else "an operator recorded that the money did not move",
        action=f"{kind.value}.completed_by_operator"
        if paid
        else f"{kind.value}.abandoned_by_operator",
        evidence=evidence,
    )
    return transfer, event_id


# -- views ------------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def transfer_view(transfer: Transfer) -> dict[str, Any]:
    """A refund or payout as its merchant sees it (phone masked)."""
    failure = (
        {"code": transfer.failure_code, "message": transfer.failure_message}
        if transfer.failure_code
        else None
    )
    view: dict[str, Any] = {
        "id": str(transfer.id),
        "object": transfer.kind,
        "status": transfer.status,
        "amount": transfer.amount_minor,
        "currency": transfer.currency,
        "gateway": transfer.gateway,
        "phone": mask_msisdn(transfer.phone),
        "reason": transfer.reason,
        "receipt": transfer.receipt,
        "failure": failure,
        "created_at": _iso(transfer.created_at),
        "finished_at": _iso(transfer.finished_at),
    }
    if transfer.kind == TransferKind.REFUND:
        view["payment_id"] = str(transfer.payment_id)
        if transfer.evidence:
            view["evidence"] = transfer.evidence
    return view


def refunds_of(session: Session, payment_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(Transfer)
        .where(Transfer.payment_id == payment_id)
        .order_by(Transfer.created_at, Transfer.id)
    )
    return [transfer_view(row) for row in rows]
