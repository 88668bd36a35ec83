"""Money out: ``/v1/payments/{id}/refunds``, ``/v1/refunds/{id}``, ``/v1/payouts[/{id}]``.

Unlike a payment command, a refund or payout is accepted in the request's own
database transaction: that is where its money is held (and a refund's amount
reserved on its payment), so ``insufficient_balance`` and ``refund_exceeds_payment``
are answered at once and two racing requests can never both take the same
shillings. The transfer is then enqueued for the worker; if RabbitMQ is down it is
still accepted (it is in PostgreSQL) and the transfer sweep sends it later.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import falcon
import structlog
from sqlalchemy.orm import Session

from ingress.auth import Authenticator
from ingress.validation import idempotency_key, read_json_object
from shared.db.models import Transfer
from shared.db.session import Database
from shared.domain import errors
from shared.domain.errors import MalipoError
from shared.domain.states import TransferStatus
from shared.gateways.transfers import TransferKind
from shared.merchants import Principal
from shared.messages import (
    BrokerUnavailable,
    NotifyMerchant,
    Publisher,
    SendTransfer,
    StreamEvents,
)
from shared.transfers import (
    Requester,
    accept_payout,
    accept_refund,
    complete_by_operator,
    decide_payout,
    lock_transfer,
    payout_command,
    refund_command,
    transfer_view,
)

log = structlog.stdlib.get_logger(__name__)


def _uuid(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise MalipoError(errors.NOT_FOUND) from None


def requester(principal: Principal) -> Requester:
    if principal.merchant_id is None:
        raise MalipoError(errors.FORBIDDEN, "an operator key cannot act for a merchant")
    return Requester(principal.merchant_id, principal.api_key_id, f"key:{principal.api_key_id}")


def accepted(resp: falcon.Response, view: dict[str, object]) -> None:
    resp.status = falcon.HTTP_202
    resp.location = f"/v1/{view['object']}s/{view['id']}"
    resp.media = view


class TransferCommands:
    """What the money-out resources share: the database, keys, limits and the publisher."""

    def __init__(
        self, db: Database, auth: Authenticator, publisher: Publisher, max_body_bytes: int
    ) -> None:
        self.db = db
        self.auth = auth
        self.publisher = publisher
        self.max_body_bytes = max_body_bytes

    def dispatch(self, transfer_id: uuid.UUID) -> None:
        """Enqueue the send; a lost publish is made good by the transfer sweep."""
        try:
            self.publisher.send(SendTransfer(transfer_id=str(transfer_id)))
        except BrokerUnavailable as exc:
            log.warning(
                "transfer accepted; enqueue deferred to the sweep: broker unavailable",
                error=str(exc),
                outage="rabbitmq",
            )

    def notify(self, event_id: int | None) -> None:
        if event_id is None:
            return
        try:
            self.publisher.send(NotifyMerchant(event_id=event_id))
            self.publisher.send(StreamEvents())
        except BrokerUnavailable:
            log.warning("webhook left to the outbox relay: broker unavailable", outage="rabbitmq")

    def accept(self, accept: Callable[[Session], tuple[Transfer, bool]]) -> dict[str, object]:
        """Accept a refund or payout in one transaction, then enqueue it: the view the
        HTTP API answers with ``202`` (the same for the same idempotency key)."""
        with self.db.transaction() as session:
            transfer, created = accept(session)
            if created:
                transfer.dispatched_at = datetime.now(UTC)
            structlog.contextvars.bind_contextvars(transfer_id=str(transfer.id))
            view = transfer_view(transfer)
        if created:
            log.info(
                f"{transfer.kind} accepted", amount=transfer.amount_minor, status=view["status"]
            )
            if transfer.status == TransferStatus.PENDING:
                self.dispatch(transfer.id)
        return view

    def refund(
        self, who: Requester, payment_id: uuid.UUID, key: str, document: dict[str, Any]
    ) -> dict[str, object]:
        """``refund.create``: ``{amount?, reason}`` of a succeeded payment."""
        command = refund_command(document)
        return self.accept(lambda session: accept_refund(session, who, payment_id, key, command))

    def payout(self, who: Requester, key: str, document: dict[str, Any]) -> dict[str, object]:
        """``payout.create``: ``{amount, currency, phone, gateway?, reason}``."""
        command = payout_command(document)
        return self.accept(lambda session: accept_payout(session, who, key, command))

    def load(self, req: falcon.Request, transfer_id: str, kind: TransferKind) -> dict[str, object]:
        principal = self.auth.require(req, "payments:read")
        wanted = _uuid(transfer_id)
        with self.db.transaction() as session:
            transfer = session.get(Transfer, wanted)
            if (
                transfer is None
                or transfer.kind != kind
                or transfer.merchant_id != principal.merchant_id
            ):
                raise MalipoError(errors.NOT_FOUND)
            return transfer_view(transfer)


class RefundsResource:
    """``POST /v1/payments/{id}/refunds`` (``refunds:write``): ``{amount?, reason}``."""

    def __init__(self, commands: TransferCommands) -> None:
        self.commands = commands

    def on_post(self, req: falcon.Request, resp: falcon.Response, payment_id: str) -> None:
        who = requester(self.commands.auth.require(req, "refunds:write"))
        key = idempotency_key(req)
        document = read_json_object(req, self.commands.max_body_bytes)
        accepted(resp, self.commands.refund(who, _uuid(payment_id), key, document))


class RefundResource:
    """``GET /v1/refunds/{id}``."""

    def __init__(self, commands: TransferCommands) -> None:
        self.commands = commands

    def on_get(self, req: falcon.Request, resp: falcon.Response, refund_id: str) -> None:
        resp.media = self.commands.load(req, refund_id, TransferKind.REFUND)


class PayoutsResource:
    """``POST /v1/payouts`` (``payouts:write``): ``{amount, currency, phone, gateway?, reason}``."""

    def __init__(self, commands: TransferCommands) -> None:
        self.commands = commands

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        who = requester(self.commands.auth.require(req, "payouts:write"))
        key = idempotency_key(req)
        document = read_json_object(req, self.commands.max_body_bytes)
        accepted(resp, self.commands.payout(who, key, document))


class PayoutResource:
    """``GET /v1/payouts/{id}``; ``POST …/approve`` and ``…/reject`` (``payouts:approve``)."""

    def __init__(self, commands: TransferCommands) -> None:
        self.commands = commands

    def on_get(self, req: falcon.Request, resp: falcon.Response, payout_id: str) -> None:
        resp.media = self.commands.load(req, payout_id, TransferKind.PAYOUT)

    def on_post_approve(self, req: falcon.Request, resp: falcon.Response, payout_id: str) -> None:
        self._decide(req, resp, payout_id, approve=True)

    def on_post_reject(self, req: falcon.Request, resp: falcon.Response, payout_id: str) -> None:
        self._decide(req, resp, payout_id, approve=False)

    def _decide(
        self, req: falcon.Request, resp: falcon.Response, payout_id: str, *, approve: bool
    ) -> None:
        who = requester(self.commands.auth.require(req, "payouts:approve"))
        now = datetime.now(UTC)
        with self.commands.db.transaction() as session:
            transfer, event_id = decide_payout(session, who, _uuid(payout_id), approve, now)
            if approve:
                transfer.dispatched_at = now
            view = transfer_view(transfer)
        log.info("payout decided", transfer_id=payout_id, approved=approve)
        if approve:
            self.commands.dispatch(transfer.id)
        else:
            self.commands.notify(event_id)
        resp.media = view


class OpsTransferResource:
    """``POST /ops/refunds/{id}/complete`` and ``/ops/payouts/{id}/complete`` (``ops:write``):
    ``{evidence, paid?}``.

    Records how a ``requires_action`` refund (a gateway without a refund API) was paid
    back, or how a transfer the gateway left ``unknown`` ended; with ``paid: false``,
    that the money did not move (the hold is released). Audited with the key and time.
    """

    def __init__(self, commands: TransferCommands, kind: TransferKind) -> None:
        self.commands = commands
        self.kind = kind

    def on_post_complete(
        self, req: falcon.Request, resp: falcon.Response, transfer_id: str
    ) -> None:
        principal = self.commands.auth.require(req, "ops:write")
        document = read_json_object(req, self.commands.max_body_bytes)
        evidence, paid = document.get("evidence"), document.get("paid", True)
        if not isinstance(evidence, str) or not isinstance(paid, bool):
            raise MalipoError(errors.INVALID_REQUEST, "evidence (text) is required; paid: bool")
        with self.commands.db.transaction() as session:
            transfer = lock_transfer(session, _uuid(transfer_id))
            if transfer is None or (
                principal.merchant_id is not None and transfer.merchant_id != principal.merchant_id
            ):
                raise MalipoError(errors.NOT_FOUND)
            transfer, event_id = complete_by_operator(
                session,
                transfer.id,
                evidence,
                f"key:{principal.api_key_id}",
                paid=paid,
                kind=self.kind,
            )
            view = transfer_view(transfer)
        self.commands.notify(event_id)
        resp.media = view
