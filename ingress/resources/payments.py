"""``POST /v1/payments`` and ``GET /v1/payments/{id}``."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import falcon
import structlog
from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert

from ingress.auth import Authenticator
from ingress.validation import fit_gateway, idempotency_key, payment_command, read_json_object
from ingress.waiting import ChangeWatcher, WaitSlots
from shared.crypto import payment_id_for, request_hash
from shared.db.models import AcceptedCommand, PaymentIntent
from shared.db.session import Database
from shared.domain import errors
from shared.domain.errors import MalipoError, RateLimited
from shared.domain.states import LIVE_STATES, PaymentStatus, can_retry
from shared.gateways.registry import GatewayRegistry
from shared.messages import BrokerUnavailable, InitiatePayment, Publisher, RetryPayment
from shared.payments import payment_view
from shared.paypage import PayLinks
from shared.preflight import payment_refusal, routed_gateway
from shared.ratelimit import RateDecision, consume
from shared.settings import Settings
from shared.transfers import refunds_of

log = structlog.stdlib.get_logger(__name__)
# A command already accepted under this id (a retried request): what it asked, where it went.
_ACCEPTED = select(
    AcceptedCommand.request_hash, AcceptedCommand.gateway, AcceptedCommand.accepted_at
).where(AcceptedCommand.payment_id == bindparam("id"))
# Payments accepted before accepted_commands existed are known by their stored intent.
_STORED = select(
    PaymentIntent.request_hash, PaymentIntent.gateway, PaymentIntent.accepted_at
).where(PaymentIntent.id == bindparam("id"))
_RECORD_ACCEPTED = (
    insert(AcceptedCommand)
    .on_conflict_do_nothing(index_elements=["payment_id"])
    .returning(AcceptedCommand.payment_id)
)


@dataclass(frozen=True)
class CommandLimits:
    """How much a merchant command may be: body, nesting, rates."""

    max_body_bytes: int
    max_json_depth: int
    merchant_commands_per_minute: int
    phone_push_limit: int
    phone_push_global_limit: int
    phone_push_window_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> CommandLimits:
        return cls(
            max_body_bytes=settings.max_body_bytes,
            max_json_depth=settings.max_json_depth,
            merchant_commands_per_minute=settings.merchant_commands_per_minute,
            phone_push_limit=settings.phone_push_limit,
            phone_push_global_limit=settings.phone_push_global_limit,
            phone_push_window_s=settings.phone_push_window_s,
        )


def count_prompt(
    session: Any, limits: CommandLimits, merchant_id: uuid.UUID, phone: str, now: datetime
) -> None:
    """Count one prompt to ``phone``: per merchant, and under a ceiling for all merchants."""
    within(
        consume(
            session,
            f"pushes:{merchant_id}:{phone}",
            limits.phone_push_limit,
            limits.phone_push_window_s,
            now,
        ),
        "too many payment prompts to this phone",
    )
    within(
        consume(
            session,
            f"pushes:{phone}",
            limits.phone_push_global_limit,
            limits.phone_push_window_s,
            now,
        ),
        "too many payment prompts to this phone",
    )


def within(decision: RateDecision, what: str) -> None:
    if not decision.allowed:
        raise RateLimited(decision.retry_after_s, f"{what}: retry in {decision.retry_after_s} s")


class PaymentDesk:
    """What a payment command does, whoever sent it: the HTTP API or the command bus.

    Each method answers the body the HTTP API answers with ``202`` (the same for the
    same idempotency key), or raises the catalogue's :class:`MalipoError`.
    """

    def __init__(
        self,
        db: Database,
        publisher: Publisher,
        gateways: GatewayRegistry,
        limits: CommandLimits,
        links: PayLinks,
    ) -> None:
        self.db = db
        self.publisher = publisher
        self.gateways = gateways
        self.limits = limits
        self.links = links

    def create(self, merchant_id: uuid.UUID, key: str, document: dict[str, Any]) -> dict[str, Any]:
        """``payment.create``: accept (or find the first answer for ``key``)."""
        command = payment_command(document, self.gateways)
        fingerprint = request_hash(command)
        payment_id = payment_id_for(merchant_id, key)
        structlog.contextvars.bind_contextvars(payment_id=str(payment_id))
        # A key already accepted gets its first answer before any limit is consulted.
        with self.db.transaction() as session:
            prior = _prior(session, payment_id, fingerprint)
        if prior is None:
            prior = self._accept(merchant_id, payment_id, key, fingerprint, command)
        gateway, accepted_at = prior
        answer = {"id": str(payment_id), "status": "accepted"}
        if self.gateways.describe(gateway).pay_page:
            answer["pay_url"] = self.links.pay_url(payment_id, accepted_at)
        return answer

    def retry(self, merchant_id: uuid.UUID, payment_id: uuid.UUID) -> dict[str, Any]:
        """``payment.retry``: the customer tries again under the same payment."""
        request_retry(self.db, self.publisher, self.limits, merchant_id, payment_id)
        return {"id": str(payment_id), "status": "retrying"}

    def _accept(
        self,
        merchant_id: uuid.UUID,
        payment_id: uuid.UUID,
        key: str,
        fingerprint: str,
        command: dict[str, Any],
    ) -> tuple[str, datetime]:
        """Accept a new command: (gateway, accepted at); a racing copy's, when it won.

        Refuses a currency with no route, what the gateway cannot take, pre-flight rules
        and rates. The acceptance row, the per-phone count and the publish happen in one
        transaction: a copy of the same key arriving meanwhile waits on the row and then
        gets this answer; a publish that fails leaves nothing behind (503, retry).

        Every command of a merchant counts on one row: it is counted by a statement
        that commits on its own, so the row's lock is held for that statement only.
        """
        now, limits = datetime.now(UTC), self.limits
        with self.db.autocommit() as conn:
            merchant_rate = consume(
                conn, f"commands:{merchant_id}", limits.merchant_commands_per_minute, 60, now
            )
        within(merchant_rate, "too many commands for this merchant")
        with self.db.transaction() as session:
            gateway = command["gateway"] or routed_gateway(
                session, merchant_id, command["currency"]
            )
            command = fit_gateway(self.gateways, self.gateways.describe(gateway), command)
            refusal = payment_refusal(session, merchant_id, command["gateway"], command["phone"])
            if refusal is not None:
                raise MalipoError(refusal)
            recorded = session.execute(
                _RECORD_ACCEPTED,
                {
                    "payment_id": payment_id,
                    "merchant_id": merchant_id,
                    "request_hash": fingerprint,
                    "gateway": command["gateway"],
                    "accepted_at": now,
                },
            ).scalar_one_or_none()
            if recorded is None:  # a copy of this key was accepted while this one was checked
                prior = _prior(session, payment_id, fingerprint)
                assert prior is not None  # the conflicting row is committed
                return prior
            count_prompt(session, limits, merchant_id, command["phone"], now)
            self._enqueue(merchant_id, payment_id, key, command, fingerprint, now)
        return command["gateway"], now

    def _enqueue(
        self,
        merchant_id: uuid.UUID,
        payment_id: uuid.UUID,
        key: str,
        command: dict[str, Any],
        fingerprint: str,
        accepted_at: datetime,
    ) -> None:
        message = InitiatePayment(
            payment_id=str(payment_id),
            merchant_id=str(merchant_id),
            idempotency_key=key,
            request=command,
            request_hash=fingerprint,
            accepted_at=accepted_at.isoformat(),
        )
        try:
            self.publisher.send(message)
        except BrokerUnavailable as exc:
            log.warning(
                "payment not accepted: broker unavailable", error=str(exc), outage="rabbitmq"
            )
            raise MalipoError(errors.SERVICE_UNAVAILABLE) from exc
        log.info("payment accepted", amount=command["amount"], gateway=command["gateway"])


class PaymentsResource:
    """``POST /v1/payments``: authenticate, check its shape, enqueue, answer 202."""

    def __init__(self, desk: PaymentDesk, auth: Authenticator) -> None:
        self.desk = desk
        self.auth = auth

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        merchant_id = self.auth.require_merchant(req, "payments:write")
        key = idempotency_key(req)
        limits = self.desk.limits
        document = read_json_object(req, limits.max_body_bytes, limits.max_json_depth)
        resp.media = self.desk.create(merchant_id, key, document)
        resp.status = falcon.HTTP_202
        resp.location = f"/v1/payments/{resp.media['id']}"


class PaymentResource:
    """A merchant's view of one of its payments.

    ``?wait=N`` (seconds, at most ``max_wait_s``) holds the answer until the status
    differs from what it was when the request arrived — or, with ``&until=final``,
    until the payment is finished, or with ``&until=action`` until its next action
    (where to send the customer) is known — so front ends need not poll. Waits are
    bounded per process and per key (:class:`~ingress.waiting.WaitSlots`); one over the
    bound is answered at once with ``Retry-After``. A waiter is woken by the database's
    change notification, not by polling it (:class:`~ingress.waiting.ChangeWatcher`).
    """

    def __init__(
        self,
        db: Database,
        auth: Authenticator,
        max_wait_s: int,
        gateways: GatewayRegistry,
        links: PayLinks,
        slots: WaitSlots,
        watcher: ChangeWatcher,
    ) -> None:
        self.db = db
        self.auth = auth
        self.max_wait_s = max_wait_s
        self.gateways = gateways
        self.links = links
        self.slots = slots
        self.watcher = watcher

    def on_get(self, req: falcon.Request, resp: falcon.Response, payment_id: str) -> None:
        principal = self.auth.require(req, "payments:read")
        if principal.merchant_id is None:
            raise MalipoError(errors.FORBIDDEN, "an operator key cannot act for a merchant")
        merchant_id = principal.merchant_id
        wait_s, until = self._wait(req)
        try:
            wanted = uuid.UUID(payment_id)
        except ValueError:
            raise MalipoError(errors.NOT_FOUND) from None
        view = self._load(wanted, merchant_id)
        # Nothing to wait for when it is already final (or has the action asked for).
        if wait_s > 0 and not self._done(view, view["status"] if view else "", until):
            with self.slots.slot(principal.api_key_id) as granted:
                if granted:
                    view = self._held(wanted, merchant_id, view, wait_s, until)
                else:
                    resp.set_header("Retry-After", "1")  # too many waits: answered now
        if view is None:
            raise MalipoError(errors.NOT_FOUND, "no such payment (yet): it may still be queued")
        resp.media = view

    def _held(
        self,
        payment_id: uuid.UUID,
        merchant_id: uuid.UUID,
        view: dict[str, Any] | None,
        wait_s: float,
        until: str,
    ) -> dict[str, Any] | None:
        """The view once it is done (or at the deadline), re-read only when woken."""
        deadline = time.monotonic() + wait_s
        first_status = view["status"] if view else None
        while not self._done(view, first_status, until):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.watcher.wait(payment_id, left)
            view = self._load(payment_id, merchant_id)
        return view

    def _wait(self, req: falcon.Request) -> tuple[float, str]:
        raw, until = req.get_param("wait"), req.get_param("until") or "change"
        if until not in ("change", "final", "action"):
            raise MalipoError(errors.INVALID_REQUEST, "until must be 'change', 'final' or 'action'")
        if raw is None:
            return 0.0, until
        # ASCII digits only: str.isdigit() also says yes to '²', which int() refuses.
        if not raw.isascii() or not raw.isdigit() or int(raw) > self.max_wait_s:
            raise MalipoError(errors.INVALID_REQUEST, f"wait must be 0-{self.max_wait_s} seconds")
        return float(raw), until

    @staticmethod
    def _done(view: dict[str, Any] | None, first_status: str | None, until: str) -> bool:
        if view is None:
            return False
        if PaymentStatus(view["status"]).is_final:
            return True
        if until == "action":
            return view["next_action"] is not None
        return until == "change" and view["status"] != first_status

    def _load(self, payment_id: uuid.UUID, merchant_id: uuid.UUID) -> dict[str, Any] | None:
        with self.db.transaction() as session:
            intent = session.get(PaymentIntent, payment_id)
            if intent is None or intent.merchant_id != merchant_id:
                return None
            view = payment_view(intent)
            view["refunds"] = refunds_of(session, intent.id)
            if intent.flow == "hosted" and self.gateways.describe(intent.gateway).pay_page:
                view["pay_url"] = self.links.pay_url(intent.id, intent.accepted_at)
            return view


class RetryResource:
    """``POST /v1/payments/{id}/retry``: the customer tries again, under the same payment.

    Checks what it can now (the payment is the merchant's and failed, cancelled or
    expired; its reference has no other live payment; pre-flight rules; the
    per-phone prompt limit) and enqueues the retry; the worker starts the new
    cycle and sends a new push.
    """

    def __init__(self, desk: PaymentDesk, auth: Authenticator) -> None:
        self.desk = desk
        self.auth = auth

    def on_post(self, req: falcon.Request, resp: falcon.Response, payment_id: str) -> None:
        merchant_id = self.auth.require_merchant(req, "payments:write")
        try:
            wanted = uuid.UUID(payment_id)
        except ValueError:
            raise MalipoError(errors.NOT_FOUND) from None
        resp.media = self.desk.retry(merchant_id, wanted)
        resp.status = falcon.HTTP_202
        resp.location = f"/v1/payments/{wanted}"


def request_retry(
    db: Database,
    publisher: Publisher,
    limits: CommandLimits,
    merchant_id: uuid.UUID,
    payment_id: uuid.UUID,
) -> None:
    """Check a customer's retry of ``payment_id`` and enqueue it; refusals are MalipoErrors."""
    now = datetime.now(UTC)
    with db.transaction() as session:
        intent = session.get(PaymentIntent, payment_id)
        if intent is None or intent.merchant_id != merchant_id:
            raise MalipoError(errors.NOT_FOUND)
        cycle = intent.cycle
        if not can_retry(PaymentStatus(intent.status)):
            raise MalipoError(errors.PAYMENT_NOT_RETRYABLE, f"the payment is {intent.status}")
        if live_payment_for_reference(session, merchant_id, intent.reference, payment_id):
            raise MalipoError(errors.DUPLICATE_PAYMENT)
        refusal = payment_refusal(session, merchant_id, intent.gateway, intent.phone)
        if refusal is not None:
            raise MalipoError(refusal)
        count_prompt(session, limits, merchant_id, intent.phone, now)
    message = RetryPayment(
        payment_id=str(payment_id),
        merchant_id=str(merchant_id),
        requested_at=now.isoformat(),
        cycle=cycle,
    )
    try:
        publisher.send(message)
    except BrokerUnavailable as exc:
        raise MalipoError(errors.SERVICE_UNAVAILABLE) from exc


def _prior(session: Any, payment_id: uuid.UUID, fingerprint: str) -> tuple[str, datetime] | None:
    """(gateway, accepted at) of a command accepted under this payment id, or None;
    ``idempotency_conflict`` when that command asked for something else."""
    params = {"id": payment_id}
    row = session.execute(_ACCEPTED, params).one_or_none()
    if row is None:
        row = session.execute(_STORED, params).one_or_none()
    if row is None:
        return None
    if row.request_hash != fingerprint:
        raise MalipoError(errors.IDEMPOTENCY_CONFLICT)
    return str(row.gateway), row.accepted_at


def live_payment_for_reference(
    session: Any, merchant_id: uuid.UUID, reference: str, other_than: uuid.UUID
) -> bool:
    return (
        session.scalar(
            select(PaymentIntent.id).where(
                PaymentIntent.merchant_id == merchant_id,
                PaymentIntent.reference == reference,
                PaymentIntent.id != other_than,
                PaymentIntent.status.in_([str(s) for s in LIVE_STATES]),
            )
        )
        is not None
    )
