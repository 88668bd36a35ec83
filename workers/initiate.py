"""``initiate_payment``: create the intent idempotently and send the push, at most once.

Three short transactions around one gateway call:

1. lock or create the intent (unique on merchant + idempotency key; a second
   live payment for the same reference is ``duplicate_payment``), then record
   an attempt *before* calling the gateway;
2. call the gateway (no transaction open);
3. record the answer and move the intent.

If a delivery finds an attempt still ``sending`` or ``unknown`` — a worker died
mid-call, or the answer was lost — the push may be with the customer: it is
never re-sent. The payment is treated as submitted; the callback (matched by
the attempt reference in its URL) or the poll finishes it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq
import structlog
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.db.models import PaymentAttempt, PaymentIntent
from shared.domain import errors
from shared.domain.money import Money
from shared.domain.states import PaymentStatus, can_retry
from shared.gateways.base import (
    Capability,
    CustomerDetails,
    GatewayOutcomeUnknown,
    GatewayUnavailable,
    InitiateResult,
    PaymentRequest,
    ReturnUrls,
)
from shared.merchants import MerchantGateway, load_gateway_config
from shared.messages import (
    INITIATE_PAYMENT,
    RETRY_PAYMENT,
    InitiatePayment,
    PollPayment,
    RetryPayment,
)
from shared.paypage import PayLinks
from shared.preflight import payment_refusal
from workers.broker import POLICIES
from workers.outbox import record_payment_change
from workers.outcomes import audit_payment, fail, lock_intent, mark_submitted
from workers.runtime import Runtime, runtime

log = structlog.stdlib.get_logger(__name__)
POLICY = POLICIES[INITIATE_PAYMENT.actor_name]

LIVE_REFERENCE_INDEX = "uq_payment_intents_live_reference"
# Request fields a hosted page needs, kept with the intent (``checkout``).
CHECKOUT_KEYS = ("customer_first_name", "customer_last_name", "city", "success_url", "failure_url")


@dramatiq.actor(
    actor_name=INITIATE_PAYMENT.actor_name,
    queue_name=INITIATE_PAYMENT.queue_name,
    **POLICY.actor_options(),
)
def initiate_payment(**fields: object) -> None:
    PaymentInitiation(runtime(), InitiatePayment.from_kwargs(fields)).run()


class PaymentInitiation:
    def __init__(self, rt: Runtime, command: InitiatePayment) -> None:
        self.rt = rt
        self.command = command
        self.payment_id = uuid.UUID(command.payment_id)

    def run(self) -> None:
        structlog.contextvars.bind_contextvars(payment_id=self.command.payment_id)
        prepared = self._prepare()
        if prepared is None:
            return
        attempt_id, config = prepared
        if config is None:  # an earlier push's outcome is unknown: wait, do not re-send
            self._schedule_poll()
            return
        self._send(attempt_id, config)

    # -- step 1 ----------------------------------------------------------------------------

    def _prepare(self) -> tuple[uuid.UUID, MerchantGateway | None] | None:
        """Lock/create the intent and record an attempt; None when there is nothing to send."""
        now = datetime.now(UTC)
        with self.rt.db.transaction() as session:
            intent = lock_intent(session, self.payment_id) or self._create(session, now)
            if intent.request_hash != self.command.request_hash:
                self._conflict(session, intent)
                return None
            if intent.status != PaymentStatus.CREATED:
                log.info("payment already past creation", status=intent.status)
                return None
            accepted_at = datetime.fromisoformat(self.command.accepted_at)
            if now - accepted_at > timedelta(seconds=self.rt.settings.initiation_window_s):
                fail(
                    session,
                    intent,
                    errors.GATEWAY_UNAVAILABLE,
                    "not sent within the initiation window",
                    now,
                )
                return None
            last = self._last_attempt(session)
            if (
                last is not None
                and last.cycle == intent.cycle
                and last.status in ("sending", "unknown")
            ):
                log.warning(
                    "earlier push has no known outcome; not re-sending", attempt=str(last.id)
                )
                last.status = "unknown"
                mark_submitted(intent, None, now, self.rt.settings)
                return last.id, None
            refusal = payment_refusal(session, intent.merchant_id, intent.gateway, intent.phone)
            refusal = refusal or self._phone_limit(session, intent.merchant_id, intent.phone, now)
            if refusal is not None:
                fail(session, intent, refusal, refusal.message, now)
                return None
            config = load_gateway_config(
                session, self.rt.cipher, intent.merchant_id, intent.gateway
            )
            assert config is not None  # payment_refusal said the gateway is configured and enabled
            attempt = PaymentAttempt(
                id=uuid.uuid4(),
                intent_id=intent.id,
                number=(last.number + 1) if last else 1,
                cycle=intent.cycle,
                gateway=intent.gateway,
                status="sending",
            )
            session.add(attempt)
            return attempt.id, config

    def _create(self, session: Session, now: datetime) -> PaymentIntent:
        request = self.command.request
        values = {
            "id": self.payment_id,
            "merchant_id": uuid.UUID(self.command.merchant_id),
            "idempotency_key": self.command.idempotency_key,
            "request_hash": self.command.request_hash,
            "gateway": request["gateway"],
            "amount_minor": request["amount"],
            "currency": request["currency"],
            "phone": request["phone"],
            "reference": request["reference"],
            "description": request.get("description"),
            "customer_email": request.get("customer_email"),
            "flow": request.get("flow") or Capability.PUSH.value,
            "checkout": {k: request[k] for k in CHECKOUT_KEYS if request.get(k)},
            "accepted_at": datetime.fromisoformat(self.command.accepted_at),
        }
        try:
            with session.begin_nested():
                intent = PaymentIntent(**values, status=PaymentStatus.CREATED)
                session.add(intent)
        except IntegrityError as exc:
            constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
            if constraint != LIVE_REFERENCE_INDEX:
                # The same message being processed twice at once: the other delivery created it.
                existing = lock_intent(session, self.payment_id)
                if existing is None:
                    raise
                return existing
            intent = PaymentIntent(
                **values,
                status=PaymentStatus.FAILED,
                failure_code=errors.DUPLICATE_PAYMENT.code,
                failure_message=errors.DUPLICATE_PAYMENT.message,
                finished_at=now,
            )
            session.add(intent)
            session.flush()
            record_payment_change(session, intent, now)
            log.info("duplicate payment refused", reference=request["reference"])
        audit_payment(
            session,
            self.payment_id,
            "payment.created",
            {
                "status": intent.status,
                "amount": intent.amount_minor,
                "currency": intent.currency,
            },
        )
        return intent

    def _conflict(self, session: Session, intent: PaymentIntent) -> None:
        """Same idempotency key, different request: the first stands, this one is refused."""
        audit_payment(
            session,
            intent.id,
            "payment.idempotency_conflict",
            {
                "code": errors.IDEMPOTENCY_CONFLICT.code,
                "refused_request_hash": self.command.request_hash,
            },
        )
        log.warning("idempotency conflict: request refused", code=errors.IDEMPOTENCY_CONFLICT.code)

    def _phone_limit(
        self, session: Session, merchant_id: uuid.UUID, phone: str, now: datetime
    ) -> errors.ErrorCode | None:
        """``rate_limited`` when this merchant prompted this phone too often lately, or all
        merchants together did (a higher ceiling: one merchant cannot lock a customer out
        of every other).

        Serialised per phone with a transaction-scoped advisory lock, so that two
        workers pushing to the same phone at once count each other.
        """
        settings = self.rt.settings
        session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"phone:{phone}"))))
        since = now - timedelta(seconds=settings.phone_push_window_s)
        mine = PaymentIntent.merchant_id == merchant_id
        here, everywhere = session.execute(
            select(func.count().filter(mine), func.count())
            .select_from(PaymentAttempt)
            .join(PaymentIntent, PaymentIntent.id == PaymentAttempt.intent_id)
            .where(
                PaymentIntent.phone == phone,
                PaymentAttempt.requested_at >= since,
                PaymentAttempt.status.in_(("sending", "accepted", "unknown")),
            )
        ).one()
        if here >= settings.phone_push_limit or everywhere >= settings.phone_push_global_limit:
            return errors.RATE_LIMITED
        return None

    def _last_attempt(self, session: Session) -> PaymentAttempt | None:
        return session.scalars(
            select(PaymentAttempt)
            .where(PaymentAttempt.intent_id == self.payment_id)
            .order_by(PaymentAttempt.number.desc())
            .limit(1)
        ).first()

    # -- steps 2 and 3 ---------------------------------------------------------------------

    def _send(self, attempt_id: uuid.UUID, config: MerchantGateway) -> None:
        request = self.command.request
        gateway = str(request["gateway"])
        credentials = self.rt.gateways.get(gateway).credentials(config.credentials)
        payment_request = PaymentRequest(
            payment_id=self.command.payment_id,
            attempt_ref=str(attempt_id),
            amount=Money(int(request["amount"]), str(request["currency"])),
            phone=str(request["phone"]),
            reference=str(request["reference"]),
            description=request.get("description"),
            callback_url=self.rt.settings.callback_url(
                gateway, config.callback_secret, str(attempt_id)
            ),
            customer=CustomerDetails(
                first_name=request.get("customer_first_name"),
                last_name=request.get("customer_last_name"),
                email=request.get("customer_email"),
                city=request.get("city"),
            ),
            return_urls=self._return_urls(gateway, request),
        )
        try:
            if request.get("flow") == Capability.HOSTED.value:
                result = self.rt.gateways.hosted(gateway).start_hosted(credentials, payment_request)
            else:
                result = self.rt.gateways.pusher(gateway).push(credentials, payment_request)
        except GatewayUnavailable as exc:
            self._not_sent(attempt_id, exc)
            return
        except GatewayOutcomeUnknown as exc:
            log.warning("push outcome unknown; will not re-send", error=str(exc))
            self._record(attempt_id, status="unknown", error=str(exc))
            self._schedule_poll()
            return
        self._record(
            attempt_id, status="accepted" if result.accepted else "rejected", result=result
        )
        if result.accepted:
            self._schedule_poll()

    def _return_urls(self, gateway: str, request: dict[str, Any]) -> ReturnUrls | None:
        """Where the gateway's page sends the customer back.

        Through malipo's pay page, both lead to its return page, which shows the real
        state and then hands over to the merchant's URLs; otherwise to the merchant's own.
        """
        if self.rt.gateways.describe(gateway).pay_page:
            accepted_at = datetime.fromisoformat(self.command.accepted_at)
            back = PayLinks.from_settings(self.rt.settings).return_url(self.payment_id, accepted_at)
            return ReturnUrls(back, back)
        if request.get("success_url") and request.get("failure_url"):
            return ReturnUrls(str(request["success_url"]), str(request["failure_url"]))
        return None

    def _not_sent(self, attempt_id: uuid.UUID, exc: GatewayUnavailable) -> None:
        """The gateway did not act: retry the message (new attempt), or give up on the last try."""
        last_try = POLICY.is_last_try()
        now = datetime.now(UTC)
        with self.rt.db.transaction() as session:
            intent = lock_intent(session, self.payment_id)
            attempt = session.get(PaymentAttempt, attempt_id)
            if intent is None or attempt is None:
                raise errors.PermanentError("intent or attempt vanished")
            attempt.status, attempt.error_message, attempt.responded_at = (
                "not_sent",
                str(exc)[:300],
                now,
            )
            if last_try:
                fail(session, intent, errors.GATEWAY_UNAVAILABLE, str(exc), now)
        if last_try:
            return
        log.info("gateway unavailable; push will be retried", error=str(exc))
        if exc.retry_after_s is not None:
            raise dramatiq.Retry(str(exc), delay=int(exc.retry_after_s * 1000)) from exc
        raise exc

    def _record(
        self,
        attempt_id: uuid.UUID,
        *,
        status: str,
        result: InitiateResult | None = None,
        error: str | None = None,
    ) -> None:
        now = datetime.now(UTC)
        with self.rt.db.transaction() as session:
            intent = lock_intent(session, self.payment_id)
            attempt = session.get(PaymentAttempt, attempt_id)
            if intent is None or attempt is None:
                raise errors.PermanentError("intent or attempt vanished")
            if attempt.status in ("sending", "unknown"):
                attempt.status = status
            attempt.responded_at = now
            attempt.error_message = error or (result.message if result else None) or None
            if result is not None and result.accepted:
                attempt.gateway_ref = attempt.gateway_ref or result.gateway_ref
                attempt.secondary_ref = result.secondary_ref
                if result.next_action is not None:
                    intent.next_action = result.next_action.to_json()
                mark_submitted(intent, result.gateway_ref, now, self.rt.settings)
                log.info("push accepted", gateway_ref=result.gateway_ref, flow=intent.flow)
            elif result is not None:
                attempt.error_code = result.failure_code
                code = errors.lookup(result.failure_code or errors.GATEWAY_REJECTED.code)
                fail(session, intent, code, result.message or code.message, now)
            else:
                mark_submitted(intent, None, now, self.rt.settings)

    def _schedule_poll(self) -> None:
        """Poll after the callback's usual delay; the scheduler's sweep covers a lost enqueue."""
        delay_ms = int(self.rt.settings.poll_delay_s * 1000)
        try:
            self.rt.publisher.send(
                PollPayment(payment_id=self.command.payment_id), delay_ms=delay_ms
            )
        except errors.TransientError as exc:
            log.warning(
                "could not schedule the poll; the sweep will find it",
                error=str(exc),
                outage="rabbitmq",
            )


@dramatiq.actor(
    actor_name=RETRY_PAYMENT.actor_name,
    queue_name=RETRY_PAYMENT.queue_name,
    **POLICIES[RETRY_PAYMENT.actor_name].actor_options(),
)
def retry_payment(**fields: object) -> None:
    """A customer's retry: a new cycle of the same payment (same id and reference), new push."""
    message = RetryPayment.from_kwargs(fields)
    structlog.contextvars.bind_contextvars(payment_id=message.payment_id)
    command = start_new_cycle(runtime(), message)
    if command is not None:
        PaymentInitiation(runtime(), command).run()


def start_new_cycle(rt: Runtime, message: RetryPayment) -> InitiatePayment | None:
    """Move a failed, cancelled or expired payment back to ``created``; the command to push it.

    None when there is nothing to retry: the payment moved on (a duplicate retry request
    finds it created or submitted), or its reference has another live payment meanwhile.
    """
    with rt.db.transaction() as session:
        intent = lock_intent(session, uuid.UUID(message.payment_id))
        if intent is None or str(intent.merchant_id) != message.merchant_id:
            return None
        requested_at = datetime.fromisoformat(message.requested_at)
        if intent.status == PaymentStatus.CREATED and intent.accepted_at == requested_at:
            return command_for(intent, message)  # this retry's own cycle, redelivered: go on
        if message.cycle is not None and message.cycle != intent.cycle:
            log.info(
                "retry ignored: it is about an earlier cycle",
                retried_cycle=message.cycle,
                cycle=intent.cycle,
            )
            return None
        if not can_retry(PaymentStatus(intent.status)):
            log.info("retry ignored: payment is not retryable now", status=intent.status)
            return None
        previous = intent.status
        try:
            with session.begin_nested():
                reopen(intent, requested_at)
                session.flush()
        except IntegrityError:
            audit_payment(
                session, intent.id, "payment.retry_refused", {"code": "duplicate_payment"}
            )
            log.warning("retry refused: the reference has another live payment")
            return None
        audit_payment(
            session, intent.id, "payment.retried", {"from": previous, "cycle": intent.cycle}
        )
        return command_for(intent, message)


def command_for(intent: PaymentIntent, message: RetryPayment) -> InitiatePayment:
    return InitiatePayment(
        payment_id=str(intent.id),
        merchant_id=str(intent.merchant_id),
        idempotency_key=intent.idempotency_key,
        request=request_of(intent),
        request_hash=intent.request_hash,
        accepted_at=message.requested_at,
    )


def reopen(intent: PaymentIntent, requested_at: datetime) -> None:
    """Start the next cycle: the payment is as if just accepted, under the same id and reference."""
    intent.cycle += 1
    intent.status = PaymentStatus.CREATED
    intent.failure_code = intent.failure_message = None
    intent.gateway_ref = None
    intent.next_action = None  # the new cycle's order gets its own
    intent.finished_at = intent.submitted_at = intent.expires_at = intent.next_poll_at = None
    intent.accepted_at = requested_at


def request_of(intent: PaymentIntent) -> dict[str, Any]:
    """The normalised request a payment was made from (what its request hash covers)."""
    return {
        "amount": intent.amount_minor,
        "currency": intent.currency,
        "phone": intent.phone,
        "reference": intent.reference,
        "description": intent.description,
        "gateway": intent.gateway,
        "flow": intent.flow,
        "customer_email": intent.customer_email,
        **{key: intent.checkout[key] for key in CHECKOUT_KEYS if intent.checkout.get(key)},
    }
