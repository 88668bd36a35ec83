"""How a payment is shown outside malipo: the API's view, and the data of webhook events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.models import PaymentAttempt, PaymentIntent
from shared.domain.money import Money
from shared.domain.phone import mask_msisdn
from shared.domain.states import PaymentStatus


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def refund_status(intent: PaymentIntent) -> str:
    """none / partial / full, by what succeeded refunds gave back."""
    refunded = intent.refunded_minor or 0
    if refunded <= 0:
        return "none"
    return "full" if refunded >= intent.amount_minor else "partial"


def payment_view(intent: PaymentIntent) -> dict[str, Any]:
    """The payment as its merchant sees it (phone masked)."""
    failure = (
        {"code": intent.failure_code, "message": intent.failure_message}
        if intent.failure_code
        else None
    )
    return {
        "id": str(intent.id),
        "status": intent.status,
        "amount": intent.amount_minor,
        "currency": intent.currency,
        "phone": mask_msisdn(intent.phone),
        "reference": intent.reference,
        "description": intent.description,
        "gateway": intent.gateway,
        "flow": intent.flow,
        "next_action": intent.next_action,
        "failure": failure,
        "receipt": intent.receipt,
        "gateway_reference": intent.settled_ref or intent.gateway_ref,
        # Gross, what the gateway kept, and what the merchant nets (once it succeeded).
        "fee": intent.fee_minor,
        "net": (
            intent.amount_minor - (intent.fee_minor or 0) if intent.status == "succeeded" else None
        ),
        "flags": list(intent.flags),
        "refund_status": refund_status(intent),
        "refunded": intent.refunded_minor or 0,
        "created_at": _iso(intent.created_at),
        "submitted_at": _iso(intent.submitted_at),
        "finished_at": _iso(intent.finished_at),
        "expires_at": _iso(intent.expires_at),
    }


def bill_is_payable(
    session: Session,
    merchant_id: uuid.UUID,
    gateway: str,
    gateway_ref: str,
    amount: Money,
    now: datetime,
) -> bool:
    """Whether a gateway may take the customer's money for this bill (a precheck's question).

    Yes only for the merchant's own payment, submitted to this gateway under this
    reference in its current cycle, still within its window, for exactly this amount.
    """
    intent = session.scalar(
        select(PaymentIntent)
        .join(PaymentAttempt, PaymentAttempt.intent_id == PaymentIntent.id)
        .where(
            PaymentAttempt.gateway == gateway,
            PaymentAttempt.gateway_ref == gateway_ref,
            PaymentAttempt.cycle == PaymentIntent.cycle,
        )
    )
    return (
        intent is not None
        and intent.merchant_id == merchant_id
        and intent.status == PaymentStatus.SUBMITTED
        and (intent.expires_at is None or now < intent.expires_at)
        and intent.currency == amount.currency
        and intent.amount_minor == amount.amount_minor
    )
