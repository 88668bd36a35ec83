"""``POST /v1/payments`` and ``GET /v1/payments/{id}``."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import falcon
import structlog

from ingress.auth import Authenticator
from ingress.validation import idempotency_key, payment_command, read_json_object
from shared.crypto import payment_id_for, request_hash
from shared.db.models import PaymentIntent
from shared.db.session import Database
from shared.domain import errors
from shared.domain.errors import MalipoError
from shared.domain.phone import mask_msisdn
from shared.domain.states import PaymentStatus
from shared.gateways.registry import GatewayRegistry
from shared.merchants import gateway_enabled
from shared.messages import BrokerUnavailable, InitiatePayment, Publisher

log = structlog.stdlib.get_logger(__name__)
WAIT_STEP_S = 0.2


class PaymentsResource:
    """Accept a payment command: authenticate, check its shape, enqueue, answer 202."""

    def __init__(
        self,
        db: Database,
        auth: Authenticator,
        publisher: Publisher,
        gateways: GatewayRegistry,
        max_body_bytes: int,
    ) -> None:
        self.db = db
        self.auth = auth
        self.publisher = publisher
        self.gateways = gateways
        self.max_body_bytes = max_body_bytes

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        merchant_id = self.auth.require_merchant(req, "payments:write")
        key = idempotency_key(req)
        command = payment_command(read_json_object(req, self.max_body_bytes), self.gateways)
        fingerprint = request_hash(command)
        payment_id = payment_id_for(merchant_id, key)
        structlog.contextvars.bind_contextvars(payment_id=str(payment_id))

        with self.db.transaction() as session:
            existing = session.get(PaymentIntent, payment_id)
            configured = gateway_enabled(session, merchant_id, command["gateway"])
        if existing is not None and existing.request_hash != fingerprint:
            raise MalipoError(errors.IDEMPOTENCY_CONFLICT)
        if existing is None:
            if not configured:
                raise MalipoError(errors.GATEWAY_NOT_CONFIGURED)
            message = InitiatePayment(
                payment_id=str(payment_id),
                merchant_id=str(merchant_id),
                idempotency_key=key,
                request=command,
                request_hash=fingerprint,
                accepted_at=datetime.now(UTC).isoformat(),
            )
            try:
                self.publisher.send(message)
            except BrokerUnavailable as exc:
                log.warning("payment not accepted: broker unavailable", error=str(exc))
                raise MalipoError(errors.SERVICE_UNAVAILABLE) from exc
            log.info("payment accepted", amount=command["amount"], gateway=command["gateway"])
        resp.status = falcon.HTTP_202
        resp.location = f"/v1/payments/{payment_id}"
        resp.media = {"id": str(payment_id), "status": "accepted"}


class PaymentResource:
    """A merchant's view of one of its payments.

    ``?wait=N`` (seconds, at most ``max_wait_s``) holds the answer until the status
    differs from what it was when the request arrived — or, with ``&until=final``,
    until the payment is finished — so front ends need not poll.
    """

    def __init__(self, db: Database, auth: Authenticator, max_wait_s: int) -> None:
        self.db = db
        self.auth = auth
        self.max_wait_s = max_wait_s

    def on_get(self, req: falcon.Request, resp: falcon.Response, payment_id: str) -> None:
        merchant_id = self.auth.require_merchant(req, "payments:read")
        wait_s, until_final = self._wait(req)
        try:
            wanted = uuid.UUID(payment_id)
        except ValueError:
            raise MalipoError(errors.NOT_FOUND) from None
        deadline = time.monotonic() + wait_s
        view = self._load(wanted, merchant_id)
        first_status = view["status"] if view else None
        while time.monotonic() < deadline and not self._done(view, first_status, until_final):
            time.sleep(WAIT_STEP_S)
            view = self._load(wanted, merchant_id)
        if view is None:
            raise MalipoError(errors.NOT_FOUND, "no such payment (yet): it may still be queued")
        resp.media = view

    def _wait(self, req: falcon.Request) -> tuple[float, bool]:
        raw, until = req.get_param("wait"), req.get_param("until") or "change"
        if until not in ("change", "final"):
            raise MalipoError(errors.INVALID_REQUEST, "until must be 'change' or 'final'")
        if raw is None:
            return 0.0, False
        if not raw.isdigit() or int(raw) > self.max_wait_s:
            raise MalipoError(errors.INVALID_REQUEST, f"wait must be 0-{self.max_wait_s} seconds")
        return float(raw), until == "final"

    @staticmethod
    def _done(view: dict[str, Any] | None, first_status: str | None, until_final: bool) -> bool:
        if view is None:
            return False
        if PaymentStatus(view["status"]).is_final:
            return True
        return not until_final and view["status"] != first_status

    def _load(self, payment_id: uuid.UUID, merchant_id: uuid.UUID) -> dict[str, Any] | None:
        with self.db.transaction() as session:
            intent = session.get(PaymentIntent, payment_id)
            if intent is None or intent.merchant_id != merchant_id:
                return None
            return payment_view(intent)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def payment_view(intent: PaymentIntent) -> dict[str, Any]:
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
        "failure": failure,
        "receipt": intent.receipt,
        "flags": list(intent.flags),
        "created_at": _iso(intent.created_at),
        "submitted_at": _iso(intent.submitted_at),
        "finished_at": _iso(intent.finished_at),
        "expires_at": _iso(intent.expires_at),
    }
