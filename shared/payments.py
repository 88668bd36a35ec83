"""How a payment is shown outside malipo: the API's view, and the data of webhook events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.db.models import PaymentIntent
from shared.domain.phone import mask_msisdn


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


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
        "created_at": _iso(intent.created_at),
        "submitted_at": _iso(intent.submitted_at),
        "finished_at": _iso(intent.finished_at),
        "expires_at": _iso(intent.expires_at),
    }
