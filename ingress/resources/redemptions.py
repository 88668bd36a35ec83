"""``POST /v1/payments/{id}/redeem`` and ``POST /v1/redemptions``: use a succeeded payment
for one order, once — named by its id, or by the reference its gateway gave it (the
IntaSend invoice id a customer types at checkout)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import falcon
from sqlalchemy.orm import Session

from ingress.auth import Authenticator
from ingress.validation import field_names, read_json_object
from shared.db.session import Database
from shared.domain import errors
from shared.domain.errors import MalipoError
from shared.gateways.base import Capability
from shared.gateways.registry import GatewayRegistry
from shared.redemptions import (
    AlreadyRedeemed,
    RedemptionRules,
    payment_for_gateway_reference,
    redeem,
)

ORDER_ID_MAX = 100


class RedeemResource:
    def __init__(self, db: Database, auth: Authenticator, rules: RedemptionRules) -> None:
        self.db = db
        self.auth = auth
        self.rules = rules

    def on_post(self, req: falcon.Request, resp: falcon.Response, payment_id: str) -> None:
        merchant_id = self.auth.require_merchant(req, "payments:write")
        order_id, expected = _parse(read_json_object(req, 4096))
        try:
            wanted = uuid.UUID(payment_id)
        except ValueError:
            raise MalipoError(errors.NOT_FOUND) from None
        self.redeem(resp, merchant_id, order_id, expected, lambda _: wanted)

    def redeem(
        self,
        resp: falcon.Response,
        merchant_id: uuid.UUID,
        order_id: str,
        expected: int,
        payment: Callable[[Session], uuid.UUID],
    ) -> None:
        """Redeem the payment ``payment`` finds (in the redemption's transaction) for an order."""
        try:
            with self.db.transaction() as session:
                wanted = payment(session)
                redemption = redeem(
                    session, merchant_id, wanted, order_id, expected, self.rules, datetime.now(UTC)
                )
                view = {
                    "payment_id": str(redemption.payment_id),
                    "order_id": redemption.order_id,
                    "redeemed_at": redemption.redeemed_at.isoformat(),
                }
        except AlreadyRedeemed as exc:
            resp.status = falcon.HTTP_409
            resp.media = {
                "error": {"code": exc.code, "message": exc.detail, "order_id": exc.order_id}
            }
            return
        resp.media = view


class RedemptionsResource:
    """``POST /v1/redemptions {gateway, reference, order_id, expected_amount}``."""

    def __init__(self, redeemer: RedeemResource, gateways: GatewayRegistry) -> None:
        self.redeemer = redeemer
        self.gateways = gateways

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        merchant_id = self.redeemer.auth.require_merchant(req, "payments:write")
        document = read_json_object(req, 4096)
        gateway, reference = document.pop("gateway", None), document.pop("reference", None)
        order_id, expected = _parse(document)
        if not isinstance(gateway, str):
            raise MalipoError(errors.INVALID_REQUEST, "gateway is required")
        if not isinstance(reference, str) or not 1 <= len(reference) <= 100:
            raise MalipoError(errors.INVALID_REQUEST, "reference must be 1-100 characters")
        name = self.gateways.describe(gateway).name
        self.gateways.require(name, Capability.CUSTOMER_REFERENCE)
        self.redeemer.redeem(
            resp,
            merchant_id,
            order_id,
            expected,
            lambda session: payment_for_gateway_reference(session, merchant_id, name, reference),
        )


def _parse(document: dict[str, Any]) -> tuple[str, int]:
    unknown = sorted(set(document) - {"order_id", "expected_amount"})
    if unknown:
        raise MalipoError(errors.INVALID_REQUEST, f"unknown field(s): {field_names(unknown)}")
    order_id, expected = document.get("order_id"), document.get("expected_amount")
    if (
        not isinstance(order_id, str)
        or not 1 <= len(order_id) <= ORDER_ID_MAX
        or not order_id.isprintable()
    ):
        raise MalipoError(
            errors.INVALID_REQUEST, f"order_id must be 1-{ORDER_ID_MAX} printable characters"
        )
    if isinstance(expected, bool) or not isinstance(expected, int) or expected <= 0:
        raise MalipoError(
            errors.INVALID_AMOUNT, "expected_amount must be a positive integer of minor units"
        )
    return order_id, expected
