"""Refusals a payment can be given before anything is sent: the same rules at the ingress
(answered synchronously) and in the worker (recorded as the payment's failure code, for
what changed between acceptance and sending)."""

from __future__ import annotations

import uuid

from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import Session

from shared.db.models import Customer, GatewayCredential, Merchant
from shared.domain import errors
from shared.domain.errors import ErrorCode, MalipoError
from shared.merchants import route_for

# Everything the rules read, in one round trip (built once: it runs for every command).
_FACTS = (
    select(
        Merchant.require_registered_customers,
        GatewayCredential.id.is_not(None).label("configured"),
        GatewayCredential.enabled,
        Customer.phone.is_not(None).label("registered"),
        Customer.kyc_required,
    )
    .select_from(Merchant)
    .outerjoin(
        GatewayCredential,
        and_(
            GatewayCredential.merchant_id == Merchant.id,
            GatewayCredential.gateway == bindparam("gateway"),
        ),
    )
    .outerjoin(
        Customer,
        and_(Customer.merchant_id == Merchant.id, Customer.phone == bindparam("phone")),
    )
    .where(Merchant.id == bindparam("merchant_id"))
)


def payment_refusal(
    session: Session, merchant_id: uuid.UUID, gateway: str, phone: str
) -> ErrorCode | None:
    """The catalogue code a payment from ``phone`` through ``gateway`` is refused with, or None."""
    facts = (
        session.connection()
        .execute(_FACTS, {"merchant_id": merchant_id, "gateway": gateway, "phone": phone})
        .one_or_none()
    )
    if facts is None or not facts.configured:
        return errors.GATEWAY_NOT_CONFIGURED
    if not facts.enabled:
        return errors.GATEWAY_DISABLED
    if facts.registered and facts.kyc_required:
        return errors.KYC_REQUIRED
    if not facts.registered and facts.require_registered_customers:
        return errors.ACCOUNT_MISSING
    return None


_ENABLED_GATEWAYS = select(GatewayCredential.gateway).where(
    GatewayCredential.merchant_id == bindparam("merchant_id"),
    GatewayCredential.enabled.is_(True),
)


def routed_gateway(session: Session, merchant_id: uuid.UUID, currency: str) -> str:
    """The first enabled gateway of the merchant's route for ``currency``.

    ``currency_not_supported`` when the merchant routes nothing there;
    ``gateway_disabled`` when every gateway it routes there is disabled.
    """
    enabled = set(session.scalars(_ENABLED_GATEWAYS, {"merchant_id": merchant_id}))
    route = route_for(session, merchant_id, currency)
    for gateway in route:
        if gateway in enabled:
            return gateway
    if route:
        raise MalipoError(errors.GATEWAY_DISABLED, f"every gateway routed for {currency} is off")
    raise MalipoError(errors.CURRENCY_NOT_SUPPORTED, f"no gateway is routed for {currency}")
