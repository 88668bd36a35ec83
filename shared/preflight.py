"""Refusals a payment can be given before anything is sent: the same rules at the ingress
(answered synchronously) and in the worker (recorded as the payment's failure code, for
what changed between acceptance and sending)."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from shared.db.models import Customer, Merchant
from shared.domain import errors
from shared.domain.errors import ErrorCode
from shared.merchants import gateway_credential


def payment_refusal(
    session: Session, merchant_id: uuid.UUID, gateway: str, phone: str
) -> ErrorCode | None:
    """The catalogue code a payment from ``phone`` through ``gateway`` is refused with, or None."""
    credential = gateway_credential(session, merchant_id, gateway)
    if credential is None:
        return errors.GATEWAY_NOT_CONFIGURED
    if not credential.enabled:
        return errors.GATEWAY_DISABLED
    customer = session.get(Customer, (merchant_id, phone))
    if customer is not None and customer.kyc_required:
        return errors.KYC_REQUIRED
    if customer is None:
        merchant = session.get(Merchant, merchant_id)
        if merchant is not None and merchant.require_registered_customers:
            return errors.ACCOUNT_MISSING
    return None
