"""``poll_payment`` and ``sweep_pending_payments``: finish payments whose callback never came.

A submitted payment is queried at growing intervals (``poll_min_interval_s``
doubling up to ``poll_max_interval_s``) until the gateway gives a final answer
or the payment window closes; then it expires locally. "Not yet known" answers
and an unreachable gateway are re-checked later without counting as errors.
Every answer goes through the same apply path as a callback.

The sweep is the safety net for a poll whose enqueue was lost: it polls every
submitted payment whose ``next_poll_at`` is overdue.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import dramatiq
import structlog
from sqlalchemy import select

from shared.db.models import PaymentIntent
from shared.domain import errors
from shared.domain.states import PaymentStatus
from shared.gateways.base import (
    Capability,
    GatewayUnavailable,
    GatewayVerdict,
    Outcome,
    StatusResult,
)
from shared.merchants import MerchantGateway, load_gateway_config
from shared.messages import POLL_PAYMENT, SWEEP_PENDING, PollPayment, SweepPendingPayments
from shared.ratelimit import forget_before
from workers.broker import POLICIES
from workers.outcomes import GatewayWord, apply_word, lock_intent, query_word
from workers.runtime import Runtime, runtime

log = structlog.stdlib.get_logger(__name__)
SWEEP_BATCH = 500


@dramatiq.actor(
    actor_name=POLL_PAYMENT.actor_name,
    queue_name=POLL_PAYMENT.queue_name,
    **POLICIES[POLL_PAYMENT.actor_name].actor_options(),
)
def poll_payment(**fields: object) -> None:
    message = PollPayment.from_kwargs(fields)
    structlog.contextvars.bind_contextvars(payment_id=message.payment_id)
    poll(runtime(), uuid.UUID(message.payment_id), message.round, once=message.once)


@dramatiq.actor(
    actor_name=SWEEP_PENDING.actor_name,
    queue_name=SWEEP_PENDING.queue_name,
    **POLICIES[SWEEP_PENDING.actor_name].actor_options(),
)
def sweep_pending_payments(**fields: object) -> None:
    SweepPendingPayments.from_kwargs(fields)
    sweep(runtime())


def poll(rt: Runtime, payment_id: uuid.UUID, round_: int, *, once: bool = False) -> None:
    with rt.db.transaction() as session:
        intent = session.get(PaymentIntent, payment_id)
        if intent is None or intent.status != PaymentStatus.SUBMITTED:
            return
        gateway, gateway_ref, expires_at = intent.gateway, intent.gateway_ref, intent.expires_at
        cycle = intent.cycle
        config = load_gateway_config(session, rt.cipher, intent.merchant_id, gateway)

    answer = _query(rt, gateway, gateway_ref, config)
    now = datetime.now(UTC)
    if answer is not None and answer.verdict.outcome != Outcome.PENDING:
        _apply(rt, payment_id, query_word(gateway, answer, now))
        return
    if expires_at is not None and now >= expires_at:
        _apply(rt, payment_id, expiry_word(gateway, payment_id, gateway_ref, now, cycle))
        return
    if once:
        return  # the scheduled polls go on as they were
    _poll_again(rt, payment_id, round_, now, expires_at)


def _query(
    rt: Runtime, gateway: str, gateway_ref: str | None, config: MerchantGateway | None
) -> StatusResult | None:
    """The gateway's answer, or None when there is nothing to ask or it cannot answer now."""
    if gateway_ref is None or config is None:
        return None  # the push's answer was lost: only its callback can tell
    if not rt.gateways.describe(gateway).has(Capability.STATUS):
        return None  # no status API: the callback or the payment window decides
    try:
        return rt.gateways.query_status(gateway, config.credentials, gateway_ref)
    except GatewayUnavailable as exc:
        log.info("status query unavailable; will ask again", error=str(exc))
        return None


def expiry_word(
    gateway: str, payment_id: uuid.UUID, gateway_ref: str | None, now: datetime, cycle: int = 1
) -> GatewayWord:
    code = errors.EXPIRED if gateway_ref else errors.OUTCOME_UNKNOWN
    verdict = GatewayVerdict(Outcome.EXPIRED, "local_expiry", code.code, code.message)
    return GatewayWord(
        gateway=gateway,
        event_key=f"expiry:{payment_id}:{cycle}",
        source="local",
        gateway_ref=gateway_ref,
        verdict=verdict,
        received_at=now,
        cycle=cycle,
    )


def _apply(rt: Runtime, payment_id: uuid.UUID, word: GatewayWord) -> None:
    with rt.db.transaction() as session:
        intent = lock_intent(session, payment_id)
        if intent is None:
            return
        apply_word(session, intent, word, datetime.now(UTC))


def _poll_again(
    rt: Runtime, payment_id: uuid.UUID, round_: int, now: datetime, expires_at: datetime | None
) -> None:
    settings = rt.settings
    delay_s = min(settings.poll_min_interval_s * 2**round_, settings.poll_max_interval_s)
    if expires_at is not None:
        delay_s = max(0.5, min(delay_s, (expires_at - now).total_seconds()))
    with rt.db.transaction() as session:
        intent = session.get(PaymentIntent, payment_id)
        if intent is None or intent.status != PaymentStatus.SUBMITTED:
            return
        intent.next_poll_at = now + timedelta(seconds=delay_s)
    rt.publisher.send(PollPayment(str(payment_id), round_ + 1), delay_ms=int(delay_s * 1000))


def sweep(rt: Runtime) -> int:
    """Poll every submitted payment whose next poll is overdue; returns how many."""
    now = datetime.now(UTC)
    overdue_before = now - timedelta(seconds=rt.settings.poll_max_interval_s)
    with rt.db.transaction() as session:
        intents = session.scalars(
            select(PaymentIntent)
            .where(
                PaymentIntent.status == PaymentStatus.SUBMITTED,
                PaymentIntent.next_poll_at < overdue_before,
            )
            .order_by(PaymentIntent.next_poll_at)
            .limit(SWEEP_BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        for intent in intents:
            intent.next_poll_at = now + timedelta(seconds=rt.settings.poll_max_interval_s)
        ids = [str(intent.id) for intent in intents]
    with rt.db.transaction() as session:
        forget_before(session, now - timedelta(days=1))
    for payment_id in ids:
        rt.publisher.send(PollPayment(payment_id))
    if ids:
        log.info("overdue payments sent to polling", count=len(ids))
    return len(ids)
