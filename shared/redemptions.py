"""Invoice use-once verification: a succeeded payment can pay for one order, once.

The redemption is the merchant's record of using a payment; the payment itself
is not changed. One row per payment (primary key) makes it safe under any
concurrency: of two redeems racing for different orders, exactly one inserts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.db.models import PaymentAttempt, PaymentIntent, Redemption
from shared.domain import errors
from shared.domain.errors import MalipoError
from shared.domain.states import PaymentStatus


@dataclass(frozen=True)
class RedemptionRules:
    window_s: int
    tolerance_minor: int


class AlreadyRedeemed(MalipoError):
    """Used for another order; carries that order's id."""

    def __init__(self, order_id: str) -> None:
        super().__init__(errors.ALREADY_REDEEMED, f"already redeemed for order {order_id}")
        self.order_id = order_id


def payment_for_gateway_reference(
    session: Session, merchant_id: uuid.UUID, gateway: str, reference: str
) -> uuid.UUID:
    """The merchant's payment that the gateway knows by ``reference`` (e.g. an IntaSend
    invoice id the customer typed), or ``not_found``."""
    found = session.scalars(
        select(PaymentAttempt.intent_id)
        .join(PaymentIntent, PaymentIntent.id == PaymentAttempt.intent_id)
        .where(
            PaymentAttempt.gateway == gateway,
            PaymentAttempt.gateway_ref == reference,
            PaymentIntent.merchant_id == merchant_id,
        )
    ).first()
    if found is None:
        raise MalipoError(errors.NOT_FOUND, f"no {gateway} payment with that reference")
    return found


def redeem(
    session: Session,
    merchant_id: uuid.UUID,
    payment_id: uuid.UUID,
    order_id: str,
    expected_amount_minor: int,
    rules: RedemptionRules,
    now: datetime,
) -> Redemption:
    """Redeem once; the same order again is answered with the same redemption."""
    intent = session.get(PaymentIntent, payment_id)
    if intent is None or intent.merchant_id != merchant_id:
        raise MalipoError(errors.NOT_FOUND)
    existing = session.get(Redemption, payment_id)
    if existing is None:
        _check_redeemable(intent, expected_amount_minor, rules, now)
        session.execute(
            insert(Redemption)
            .values(
                payment_id=payment_id,
                merchant_id=merchant_id,
                order_id=order_id,
                expected_amount_minor=expected_amount_minor,
            )
            .on_conflict_do_nothing(index_elements=["payment_id"])
        )
        existing = session.get(Redemption, payment_id, populate_existing=True)
    assert existing is not None  # inserted now, or by the redeem that won the race
    if existing.order_id != order_id:
        raise AlreadyRedeemed(existing.order_id)
    return existing


def _check_redeemable(
    intent: PaymentIntent, expected: int, rules: RedemptionRules, now: datetime
) -> None:
    if intent.status != PaymentStatus.SUCCEEDED or intent.finished_at is None:
        raise MalipoError(errors.PAYMENT_NOT_REDEEMABLE, f"the payment is {intent.status}")
    if now > intent.finished_at + timedelta(seconds=rules.window_s):
        raise MalipoError(errors.REDEMPTION_EXPIRED)
    if abs(intent.amount_minor - expected) > rules.tolerance_minor:
        raise MalipoError(
            errors.AMOUNT_MISMATCH,
            f"the payment is {intent.amount_minor} {intent.currency}, {expected} was expected",
        )
