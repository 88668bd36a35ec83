"""The one apply path for a gateway's word on a payment (callback, query, local expiry).

In one transaction, with the intent locked (``SELECT … FOR UPDATE``): look the
gateway's event key up (a duplicate stops here, before any effect), cross-check
amount and phone, let the state machine decide, write the ledger credit and the
audit row, then record the event once, with the outcome it was given (its unique
key is the last guard). Callers commit; nothing here enqueues.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared import audit
from shared.db.models import GatewayEvent, PaymentAttempt, PaymentIntent
from shared.domain import errors
from shared.domain.errors import TransientError
from shared.domain.phone import mask_msisdn, phones_agree
from shared.domain.states import LIVE_STATES, PaymentStatus, Verdict, decide
from shared.gateways.base import GatewayVerdict, Outcome, StatusResult
from shared.settings import Settings
from workers.ledger import credit_collection
from workers.outbox import record_payment_change

log = structlog.stdlib.get_logger(__name__)

ACTOR = "worker"


@dataclass(frozen=True)
class GatewayWord:
    """One thing a gateway said (or our clock decided), ready to be recorded and applied."""

    gateway: str
    event_key: str
    source: str  # callback | query | local
    gateway_ref: str | None
    verdict: GatewayVerdict
    received_at: datetime
    body_masked: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    remote_addr: str | None = None
    merchant_id: uuid.UUID | None = None
    # The payment cycle the word is about, when the caller knows it (local expiry);
    # otherwise the cycle of the attempt that carries ``gateway_ref``.
    cycle: int | None = None


def query_word(gateway: str, answer: StatusResult, now: datetime) -> GatewayWord:
    """A status query's answer, as an event for the apply path."""
    return GatewayWord(
        gateway=gateway,
        event_key=f"query:{answer.gateway_ref}:{answer.verdict.result_code}",
        source="query",
        gateway_ref=answer.gateway_ref,
        verdict=answer.verdict,
        received_at=now,
    )


def lock_intent(session: Session, intent_id: uuid.UUID) -> PaymentIntent | None:
    return session.get(PaymentIntent, intent_id, with_for_update=True, populate_existing=True)


# Built once: these run for every gateway word, and building a statement costs more CPU
# than sending it.
_INSERT_EVENT = (
    insert(GatewayEvent)
    .on_conflict_do_nothing()  # the event key, per gateway and merchant
    .returning(GatewayEvent.id)
)
# Whether the gateway's event key is already recorded, in the unique index's own terms
# (uq_gateway_events_merchant_event_key), so that the lookup is that index's.
NO_MERCHANT_ID = uuid.UUID(int=0)
_EVENT_SEEN = text(
    "SELECT 1 FROM gateway_events WHERE gateway = :gateway"
    " AND coalesce(merchant_id, '00000000-0000-0000-0000-000000000000'::uuid) = :merchant"
    " AND event_key = :event_key"
)


class EventRecordedMeanwhile(TransientError):
    """The event key was recorded by another transaction after this one looked: roll this
    one back (nothing it settled may stand) and try again, when it will be a duplicate."""


def record_event(
    session: Session,
    word: GatewayWord,
    *,
    outcome: str,
    intent_id: uuid.UUID | None,
    detail: str | None = None,
    body_sha256: str | None = None,
) -> int | None:
    """Store the event once; None when the gateway's event key was already recorded."""
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    row = {
        "gateway": word.gateway,
        "event_key": word.event_key[:200],
        "source": word.source,
        "merchant_id": word.merchant_id,
        "intent_id": intent_id,
        "gateway_ref": word.gateway_ref,
        "result_code": word.verdict.result_code[:40],
        "outcome": outcome,
        "detail": detail[:300] if detail else None,
        "headers": word.headers,
        "body_masked": word.body_masked,
        "body_sha256": body_sha256,
        "remote_addr": word.remote_addr,
        "request_id": str(request_id) if request_id else None,
        "received_at": word.received_at,
    }
    event_id = session.connection().execute(_INSERT_EVENT, row).scalar_one_or_none()
    return int(event_id) if event_id is not None else None


def apply_word(
    session: Session, intent: PaymentIntent, word: GatewayWord, now: datetime
) -> str | None:
    """Record and apply (the caller holds the intent's lock).

    Returns the event's outcome, or None when the event is a duplicate.

    The duplicate check comes first and the event row last, written once with the
    outcome the state machine gave it: a row inserted as ``received`` and updated
    afterwards left a dead tuple and four index entries per callback (``outcome`` is
    indexed, so the update could never be HOT). Words about this payment are applied
    one at a time under its row lock; an event with the same key recorded meanwhile
    without that lock (an orphan) makes the insert find a conflict, and the whole
    transaction is retried.
    """
    if _event_seen(session, word):
        log.info(
            "duplicate gateway event ignored", event_key=word.event_key, payment_id=str(intent.id)
        )
        return None
    outcome, detail = settle(
        session,
        intent,
        word.verdict,
        now,
        gateway_ref=word.gateway_ref,
        word_cycle=cycle_of(session, intent, word),
    )
    if record_event(session, word, outcome=outcome, intent_id=intent.id, detail=detail) is None:
        raise EventRecordedMeanwhile(f"event {word.event_key[:200]} was recorded meanwhile")
    log.info(
        "gateway event applied",
        payment_id=str(intent.id),
        source=word.source,
        result_code=word.verdict.result_code,
        outcome=outcome,
        status=intent.status,
    )
    return outcome


def _event_seen(session: Session, word: GatewayWord) -> bool:
    found = session.connection().execute(
        _EVENT_SEEN,
        {
            "gateway": word.gateway,
            "merchant": word.merchant_id or NO_MERCHANT_ID,
            "event_key": word.event_key[:200],
        },
    )
    return found.first() is not None


def cycle_of(session: Session, intent: PaymentIntent, word: GatewayWord) -> int:
    """Which cycle of the payment the word is about (the current one when it cannot tell)."""
    if word.cycle is not None:
        return word.cycle
    if word.gateway_ref is not None:
        attempt = attempt_for_gateway_ref(session, word.gateway, word.gateway_ref)
        if attempt is not None and attempt.intent_id == intent.id:
            return attempt.cycle
    return intent.cycle


_TARGETS = {
    Outcome.SUCCEEDED: PaymentStatus.SUCCEEDED,
    Outcome.FAILED: PaymentStatus.FAILED,
    Outcome.CANCELLED: PaymentStatus.CANCELLED,
    Outcome.EXPIRED: PaymentStatus.EXPIRED,
}


def settle(
    session: Session,
    intent: PaymentIntent,
    verdict: GatewayVerdict,
    now: datetime,
    *,
    gateway_ref: str | None = None,
    word_cycle: int | None = None,
) -> tuple[str, str | None]:
    """Move the intent as the verdict and the state machine allow; (event outcome, detail).

    ``word_cycle``: the cycle whose push the word is about (default: the current one).
    """
    if verdict.outcome == Outcome.PENDING:
        return "pending", None
    mismatch = cross_check(intent, verdict)
    if mismatch:
        flag_for_review(session, intent, mismatch, result_code=verdict.result_code)
        return "mismatch", mismatch

    earlier_cycle = word_cycle is not None and word_cycle < intent.cycle
    decision = decide(
        PaymentStatus(intent.status), _TARGETS[verdict.outcome], earlier_cycle=earlier_cycle
    )
    if decision.verdict == Verdict.CONFLICT:
        flag_for_review(session, intent, "conflicting_result", result_code=verdict.result_code)
        return "conflict", f"gateway said {verdict.result_code} after {intent.status}"
    if not decision.moves:
        if _paid_again(intent, verdict, gateway_ref):
            # Two pushes (a customer's retry) both paid: one credit, and a refund to review.
            flag_for_review(session, intent, "duplicate_collection", gateway_ref=str(gateway_ref))
            return "duplicate_collection", f"{gateway_ref} succeeded after {intent.settled_ref}"
        if earlier_cycle and decision.verdict == Verdict.STALE:
            return "stale", f"about cycle {word_cycle}; the payment is in cycle {intent.cycle}"
        _learn_receipt(session, intent, verdict)
        return decision.verdict.value, f"payment already {intent.status}"

    if decision.verdict == Verdict.LATE_SUCCESS:
        holder = _live_payment_with_reference(session, intent)
        if holder is not None:
            # The merchant started another payment for this order after this one ended: it
            # cannot be live again beside it. The money is real: an operator decides.
            flag_for_review(
                session,
                intent,
                "paid_after_reference_reused",
                holder=str(holder),
                receipt=str(verdict.receipt),
            )
            return "reference_taken", f"paid after payment {holder} took reference"

    previous = intent.status
    intent.status = decision.target
    intent.finished_at = now
    intent.next_poll_at = None
    if decision.target == PaymentStatus.SUCCEEDED:
        intent.failure_code = intent.failure_message = None
        intent.receipt = verdict.receipt or intent.receipt
        intent.settled_ref = gateway_ref or intent.gateway_ref
        if verdict.fee is not None and 0 <= verdict.fee.amount_minor <= intent.amount_minor:
            intent.fee_minor = verdict.fee.amount_minor
        if decision.verdict == Verdict.LATE_SUCCESS:
            flag_for_review(session, intent, "late_success", result_code=verdict.result_code)
        elif earlier_cycle:
            # The new cycle's push may still be with the customer, and is no longer polled.
            flag_for_review(
                session, intent, "earlier_cycle_success", result_code=verdict.result_code
            )
        credit_collection(session, intent, verdict.receipt)
    else:
        failure = verdict.failure_code or errors.GATEWAY_ERROR.code
        intent.failure_code = failure
        intent.failure_message = verdict.message or errors.lookup(failure).message
    audit_payment(
        session,
        intent.id,
        f"payment.{intent.status}",
        {
            "from": previous,
            "result_code": verdict.result_code,
            "receipt": verdict.receipt,
            "late": decision.verdict == Verdict.LATE_SUCCESS,
            "cycle": word_cycle if word_cycle is not None else intent.cycle,
        },
    )
    record_payment_change(session, intent, now)
    return decision.verdict.value if decision.verdict == Verdict.LATE_SUCCESS else "applied", None


def _learn_receipt(session: Session, intent: PaymentIntent, verdict: GatewayVerdict) -> None:
    """Keep the receipt a later word brings for a success settled without one.

    A status query (Daraja's STK query) says "paid" without the M-Pesa receipt; the
    callback that follows carries it, and a refund (a Reversal) cannot be made without it.
    """
    if (
        verdict.outcome == Outcome.SUCCEEDED
        and intent.status == PaymentStatus.SUCCEEDED
        and intent.receipt is None
        and verdict.receipt
    ):
        intent.receipt = verdict.receipt
        audit_payment(session, intent.id, "payment.receipt_learned", {"receipt": verdict.receipt})


_LIVE_HOLDER = select(PaymentIntent.id).where(
    PaymentIntent.merchant_id == bindparam("merchant_id"),
    PaymentIntent.reference == bindparam("reference"),
    PaymentIntent.id != bindparam("id"),
    PaymentIntent.status.in_([str(status) for status in LIVE_STATES]),
)


def _live_payment_with_reference(session: Session, intent: PaymentIntent) -> uuid.UUID | None:
    """Another live payment of the merchant holding this payment's reference, if any."""
    return session.scalars(
        _LIVE_HOLDER,
        {"merchant_id": intent.merchant_id, "reference": intent.reference, "id": intent.id},
    ).first()


def _paid_again(intent: PaymentIntent, verdict: GatewayVerdict, gateway_ref: str | None) -> bool:
    return (
        verdict.outcome == Outcome.SUCCEEDED
        and intent.status == PaymentStatus.SUCCEEDED
        and gateway_ref is not None
        and intent.settled_ref is not None
        and gateway_ref != intent.settled_ref
    )


def cross_check(intent: PaymentIntent, verdict: GatewayVerdict) -> str | None:
    """A flag name when the gateway's word contradicts the intent (amount, phone), else None."""
    if verdict.amount is not None and (
        verdict.amount.amount_minor != intent.amount_minor
        or verdict.amount.currency != intent.currency
    ):
        return "amount_mismatch"
    if verdict.phone and not phones_agree(intent.phone, verdict.phone):
        return "phone_mismatch"
    return None


def flag_for_review(session: Session, intent: PaymentIntent, name: str, **detail: str) -> None:
    """Mark the payment for an operator's review, with an audit row and a warning."""
    if name not in intent.flags:
        intent.flags = [*intent.flags, name]
    audit_payment(
        session, intent.id, "payment.flagged", {"flag": name, "status": intent.status, **detail}
    )
    log.warning("payment flagged for review", payment_id=str(intent.id), flag=name, **detail)


def audit_payment(
    session: Session, payment_id: uuid.UUID, action: str, detail: dict[str, Any]
) -> None:
    """An audit row about a payment, written by a worker, in the caller's transaction."""
    audit.record(
        session,
        actor=ACTOR,
        action=action,
        subject_type="payment",
        subject_id=payment_id,
        detail=detail,
    )


def mark_submitted(
    intent: PaymentIntent, gateway_ref: str | None, now: datetime, settings: Settings
) -> None:
    """The push may be with the customer now: start the payment window and the poll clock."""
    if intent.gateway_ref is None and gateway_ref is not None:
        intent.gateway_ref = gateway_ref
    if intent.status != PaymentStatus.CREATED:
        return
    intent.status = PaymentStatus.SUBMITTED
    intent.submitted_at = now
    # A hosted page's window is its bill's validity: the customer types card or wallet details.
    window_s = (
        settings.hosted_payment_expiry_s if intent.flow == "hosted" else settings.payment_expiry_s
    )
    intent.expires_at = now + timedelta(seconds=window_s)
    intent.next_poll_at = now + timedelta(seconds=settings.poll_delay_s)


def fail(
    session: Session, intent: PaymentIntent, code: errors.ErrorCode, message: str, now: datetime
) -> None:
    """Fail an intent that has not been sent (or cannot be), with a catalogue code."""
    if PaymentStatus(intent.status).is_final:
        return
    previous = intent.status
    intent.status = PaymentStatus.FAILED
    intent.failure_code = code.code
    intent.failure_message = message[:300]
    intent.finished_at = now
    intent.next_poll_at = None
    audit_payment(session, intent.id, "payment.failed", {"from": previous, "code": code.code})
    record_payment_change(session, intent, now)
    log.info("payment failed", payment_id=str(intent.id), failure_code=code.code, reason=message)


_ATTEMPT_BY_GATEWAY_REF = select(PaymentAttempt).where(
    PaymentAttempt.gateway == bindparam("gateway"),
    PaymentAttempt.gateway_ref == bindparam("gateway_ref"),
)


def attempt_for_gateway_ref(
    session: Session, gateway: str, gateway_ref: str
) -> PaymentAttempt | None:
    return session.scalars(
        _ATTEMPT_BY_GATEWAY_REF, {"gateway": gateway, "gateway_ref": gateway_ref}
    ).one_or_none()


def masked_phone(intent: PaymentIntent) -> str:
    return mask_msisdn(intent.phone)
