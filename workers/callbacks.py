"""``apply_callback``: apply a gateway's callback to the ledger exactly once.

The callback is matched to its intent by the gateway's transaction id or, when
the push's answer was never stored (it raced the callback, or was lost), by the
attempt reference carried in the callback URL. A callback whose intent cannot be
found is re-checked a few times (it may have overtaken its own push answer),
then kept as an orphan: recorded, surfaced, never credited.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import NamedTuple

import dramatiq
import structlog
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from shared.crypto import sha256_hex
from shared.db.models import GatewayCredential, PaymentAttempt, PaymentIntent
from shared.domain.errors import PermanentError
from shared.domain.phone import mask_phone_numbers
from shared.gateways.base import (
    CallbackEvent,
    CallbackMalformed,
    Capability,
    GatewayUnavailable,
    GatewayVerdict,
    InboundCallback,
    Outcome,
    SignedCallbacks,
    StatusResult,
)
from shared.merchants import MerchantGateway, load_gateway_config
from shared.messages import (
    APPLY_CALLBACK,
    COUNT_REFUSED_CALLBACKS,
    RECORD_REFUSED_CALLBACK,
    ApplyCallback,
    CountRefusedCallbacks,
    MalformedMessage,
    RecordRefusedCallback,
    current_message_retries,
)
from shared.refused_callbacks import add_counts
from workers.broker import POLICIES
from workers.outcomes import (
    GatewayWord,
    apply_word,
    flag_for_review,
    lock_intent,
    query_word,
    record_event,
)
from workers.runtime import Runtime, runtime
from workers.transfers import apply_transfer_event, gateway_tail

log = structlog.stdlib.get_logger(__name__)
POLICY = POLICIES[APPLY_CALLBACK.actor_name]

# Whether the merchant wants the gateway to confirm a success before it is credited.
_CONFIRM_BEFORE_CREDIT = select(GatewayCredential.confirm_before_credit).where(
    GatewayCredential.merchant_id == bindparam("merchant_id"),
    GatewayCredential.gateway == bindparam("gateway"),
)

# The attempt a gateway's id names, its intent (locked) and the merchant's
# confirm-before-credit flag, in one round trip (the common case: the push's answer
# stored the id before the callback came).
_LOCKED_INTENT_BY_GATEWAY_REF = (
    select(
        PaymentIntent,
        PaymentAttempt,
        select(GatewayCredential.confirm_before_credit)
        .where(
            GatewayCredential.merchant_id == PaymentIntent.merchant_id,
            GatewayCredential.gateway == PaymentAttempt.gateway,
        )
        .scalar_subquery(),
    )
    .join(PaymentAttempt, PaymentAttempt.intent_id == PaymentIntent.id)
    .where(
        PaymentAttempt.gateway == bindparam("gateway"),
        PaymentAttempt.gateway_ref == bindparam("gateway_ref"),
    )
    .with_for_update(of=PaymentIntent)
    .execution_options(populate_existing=True)
)


class Match(NamedTuple):
    """The locked intent a callback is about and the attempt it answers; the merchant's
    confirm-before-credit flag when the match read it (None: ask separately)."""

    intent: PaymentIntent
    attempt: PaymentAttempt
    confirm_before_credit: bool | None = None


@dramatiq.actor(
    actor_name=APPLY_CALLBACK.actor_name,
    queue_name=APPLY_CALLBACK.queue_name,
    **POLICY.actor_options(),
)
def apply_callback(**fields: object) -> None:
    CallbackApplication(runtime(), ApplyCallback.from_kwargs(fields)).run()


class CallbackApplication:
    def __init__(self, rt: Runtime, message: ApplyCallback) -> None:
        self.rt = rt
        self.message = message
        self.merchant_id = uuid.UUID(message.merchant_id)
        try:
            self.body = base64.b64decode(message.body_b64, validate=True)
        except binascii.Error:
            raise PermanentError("callback body is not base64") from None

    def run(self) -> None:
        reader = self.rt.gateways.reader(self.message.gateway)
        inbound = InboundCallback(
            method=self.message.method,
            query_string=self.message.query_string,
            body=self.body,
            headers={k.lower(): v for k, v in self.message.headers.items()},
            remote_addr=self.message.remote_addr,
            path_secret="",
        )
        if self._transfer_result(inbound):
            return
        try:
            event = reader.parse_callback(inbound)
        except CallbackMalformed as exc:
            self._record_unparsed(str(exc))
            return
        structlog.contextvars.bind_contextvars(gateway_ref=event.gateway_ref)
        signed = self.rt.gateways.signed_callbacks(self.message.gateway)
        if signed is not None and not self._signature_holds(signed, inbound):
            return
        word = self._word(event)
        with self.rt.db.transaction() as session:
            matched = self._match(session, event)
            if matched is None:
                self._orphan(session, word)
                return
            intent, attempt = matched.intent, matched.attempt
            structlog.contextvars.bind_contextvars(payment_id=str(intent.id))
            word = replace(word, cycle=attempt.cycle)
            confirm_first = event.verdict.outcome == Outcome.SUCCEEDED and (
                self._confirmation_required(session, matched)
            )
            if not confirm_first:
                apply_word(session, intent, word, datetime.now(UTC))
                return
        # The gateway must confirm first: asked outside any transaction, then applied.
        self._apply_confirmed(event, word)

    def _transfer_result(self, inbound: InboundCallback) -> bool:
        """Apply the refund or payout result this callback carries; False when it is none."""
        results = self.rt.gateways.transfer_results(self.message.gateway)
        if results is None:
            return False
        try:
            event = results.transfer_result(inbound, gateway_tail(self.message.attempt_ref))
        except CallbackMalformed as exc:
            self._record_unparsed(str(exc))
            return True
        if event is None:
            return False
        apply_transfer_event(
            self.rt,
            self.message.gateway,
            self.merchant_id,
            event,
            self.message.attempt_ref,
            datetime.fromisoformat(self.message.received_at),
            self.message.remote_addr,
        )
        return True

    # -- signatures only the merchant's credentials can check ------------------------------

    def _signature_holds(self, reader: SignedCallbacks, inbound: InboundCallback) -> bool:
        """Check a merchant-keyed signature (Idram's, Telcell's checksum); record a refusal.

        A refused callback is kept under a key of its own body, never under the
        gateway's event key: a forgery naming a real transaction must not make the
        genuine callback look like a duplicate.
        """
        with self.rt.db.transaction() as session:
            config = load_gateway_config(
                session, self.rt.cipher, self.merchant_id, self.message.gateway
            )
        reason = (
            "gateway_not_configured"
            if config is None
            else reader.verify_callback(
                self.rt.gateways.get(self.message.gateway).credentials(config.credentials),
                inbound,
            )
        )
        if reason is None:
            return True
        word = GatewayWord(
            gateway=self.message.gateway,
            event_key=f"refused:{sha256_hex(self.body)}:{sha256_hex(inbound.query_string)}",
            source="callback",
            gateway_ref=None,
            verdict=GatewayVerdict(Outcome.PENDING, result_code=""),
            received_at=datetime.fromisoformat(self.message.received_at),
            remote_addr=self.message.remote_addr,
            merchant_id=self.merchant_id,
        )
        with self.rt.db.transaction() as session:
            record_event(
                session,
                word,
                outcome="refused",
                intent_id=None,
                detail=reason,
                body_sha256=sha256_hex(self.body),
            )
        log.warning("callback signature refused; nothing applied", reason=reason)
        return False

    # -- confirm before credit -------------------------------------------------------------

    def _confirmation_required(self, session: Session, matched: Match) -> bool:
        if not self.rt.gateways.describe(self.message.gateway).has(Capability.STATUS):
            return False  # nothing to ask: the callback is the gateway's only word
        if matched.confirm_before_credit is not None:
            return matched.confirm_before_credit  # read with the match
        required = session.connection().execute(
            _CONFIRM_BEFORE_CREDIT,
            {"merchant_id": self.merchant_id, "gateway": self.message.gateway},
        )
        return bool(required.scalar_one_or_none())

    def _apply_confirmed(self, event: CallbackEvent, word: GatewayWord) -> None:
        """Credit a success callback only as far as the gateway's status API confirms it."""
        with self.rt.db.transaction() as session:
            matched = self._match(session, event)
            if matched is None:
                self._orphan(session, word)
                return
            payment_id = matched.intent.id
            config = load_gateway_config(
                session, self.rt.cipher, self.merchant_id, self.message.gateway
            )
        structlog.contextvars.bind_contextvars(payment_id=str(payment_id))
        answer = self._ask_gateway(config, event.gateway_ref)
        with self.rt.db.transaction() as session:
            intent = lock_intent(session, payment_id)
            if intent is None:
                return
            if answer is None:
                record_event(
                    session,
                    word,
                    outcome="unconfirmed",
                    intent_id=payment_id,
                    detail="the status query could not confirm it; polling continues",
                )
            elif answer.verdict.outcome == Outcome.SUCCEEDED:
                apply_word(session, intent, word, datetime.now(UTC))
            else:
                self._contradicted(session, intent, word, answer)

    def _contradicted(
        self, session: Session, intent: PaymentIntent, word: GatewayWord, answer: StatusResult
    ) -> None:
        """The gateway denies what the callback claims: keep it as suspicious, apply the gateway."""
        said = answer.verdict.result_code
        detail = f"status query says {said}"
        if (
            record_event(session, word, outcome="suspicious", intent_id=intent.id, detail=detail)
            is None
        ):
            return  # this callback was already judged
        flag_for_review(session, intent, "callback_contradicted", result_code=said)
        now = datetime.now(UTC)
        apply_word(session, intent, query_word(self.message.gateway, answer, now), now)

    def _ask_gateway(self, config: MerchantGateway | None, gateway_ref: str) -> StatusResult | None:
        """The gateway's final word; re-checks later while it has none; None when it never did."""
        answer = None
        if config is not None:
            try:
                answer = self.rt.gateways.query_status(
                    self.message.gateway, config.credentials, gateway_ref
                )
            except GatewayUnavailable as exc:
                log.info("confirmation query unavailable", error=str(exc))
        if answer is not None and answer.verdict.outcome != Outcome.PENDING:
            return answer
        retries = current_message_retries()
        if retries < self.rt.settings.confirm_rechecks:
            raise dramatiq.Retry("no confirmation yet", delay=min(2000 * 2**retries, 30_000))
        return None

    def _word(self, event: CallbackEvent) -> GatewayWord:
        description = self.rt.gateways.describe(self.message.gateway)
        return GatewayWord(
            gateway=self.message.gateway,
            event_key=event.event_key,
            source="callback",
            gateway_ref=event.gateway_ref,
            verdict=event.verdict,
            received_at=datetime.fromisoformat(self.message.received_at),
            body_masked=event.masked_body,
            headers=description.keep_headers(self.message.headers),
            remote_addr=self.message.remote_addr,
            merchant_id=self.merchant_id,
        )

    def _match(self, session: Session, event: CallbackEvent) -> Match | None:
        """The locked intent this callback is about and the attempt it answers, or None."""
        found = session.execute(
            _LOCKED_INTENT_BY_GATEWAY_REF,
            {"gateway": self.message.gateway, "gateway_ref": event.gateway_ref},
        ).one_or_none()
        matched = (
            Match(found[0], found[1], bool(found[2]))
            if found is not None
            else self._adopted(session, event)
        )
        if matched is None:
            return None
        if matched.intent.merchant_id != self.merchant_id:
            log.warning("callback names another merchant's payment", gateway_ref=event.gateway_ref)
            return None
        return matched

    def _adopted(self, session: Session, event: CallbackEvent) -> Match | None:
        """The push's answer was lost or is not stored yet: the attempt reference in the
        callback URL names the attempt, and the callback tells it the gateway's id."""
        attempt = self._adoptable_attempt(session, event) if self.message.attempt_ref else None
        if attempt is None:
            return None
        intent = lock_intent(session, attempt.intent_id)
        if intent is None:
            return None
        if intent.merchant_id != self.merchant_id:
            return Match(intent, attempt)  # another merchant's: the caller refuses it, unchanged
        if attempt.gateway_ref is None:
            attempt.gateway_ref = event.gateway_ref
            if attempt.status in ("sending", "unknown"):
                attempt.status = "accepted"  # the gateway's callback proves it took the push
            intent.gateway_ref = intent.gateway_ref or event.gateway_ref
            log.info("callback adopted by its attempt reference", attempt=str(attempt.id))
        return Match(intent, attempt)

    def _adoptable_attempt(self, session: Session, event: CallbackEvent) -> PaymentAttempt | None:
        try:
            attempt_id = uuid.UUID(str(self.message.attempt_ref))
        except ValueError:
            return None
        attempt = session.get(PaymentAttempt, attempt_id, with_for_update=True)
        if attempt is None or attempt.gateway != self.message.gateway:
            return None
        if attempt.gateway_ref not in (None, event.gateway_ref):
            return None
        return attempt

    def _orphan(self, session: Session, word: GatewayWord) -> None:
        retries = current_message_retries()
        if retries < self.rt.settings.orphan_rechecks:
            raise dramatiq.Retry("no payment matches this callback yet", delay=1000 * 2**retries)
        recorded = record_event(
            session,
            word,
            outcome="orphan",
            intent_id=None,
            detail="no payment matches this callback",
        )
        if recorded is not None:
            log.warning("orphan callback kept for review", event_key=word.event_key)

    def _record_unparsed(self, reason: str) -> None:
        word = GatewayWord(
            gateway=self.message.gateway,
            event_key=f"malformed:{sha256_hex(self.body)}",
            source="callback",
            gateway_ref=None,
            verdict=GatewayVerdict(Outcome.PENDING, result_code=""),
            received_at=datetime.fromisoformat(self.message.received_at),
            body_masked=mask_phone_numbers(self.body.decode("utf-8", errors="replace"))[:65536],
            remote_addr=self.message.remote_addr,
            merchant_id=self.merchant_id,
        )
        with self.rt.db.transaction() as session:
            record_event(session, word, outcome="malformed", intent_id=None, detail=reason)
        log.warning("malformed callback kept for review", reason=reason)


@dramatiq.actor(
    actor_name=COUNT_REFUSED_CALLBACKS.actor_name,
    queue_name=COUNT_REFUSED_CALLBACKS.queue_name,
    **POLICIES[COUNT_REFUSED_CALLBACKS.actor_name].actor_options(),
)
def count_refused_callbacks(**fields: object) -> None:
    """Add what an ingress process refused to the per-minute counts (never one row each)."""
    report = CountRefusedCallbacks.from_kwargs(fields)
    try:
        with runtime().db.transaction() as session:
            added = add_counts(session, report.buckets)
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedMessage(f"refused-callback report: {exc}") from None
    log.info("refused callbacks counted", buckets=added)


@dramatiq.actor(
    actor_name=RECORD_REFUSED_CALLBACK.actor_name,
    queue_name=RECORD_REFUSED_CALLBACK.queue_name,
    **POLICIES[RECORD_REFUSED_CALLBACK.actor_name].actor_options(),
)
def record_refused_callback(**fields: object) -> None:
    """One refusal reported by an ingress from before the counts: counted as one."""
    refused = RecordRefusedCallback.from_kwargs(fields)
    at = datetime.fromisoformat(refused.received_at)
    bucket = {
        "minute": at.replace(second=0, microsecond=0).isoformat(),
        "gateway": refused.gateway,
        "merchant_id": refused.merchant_id,
        "source": refused.remote_addr or "unknown",
        "reason": refused.reason,
        "count": 1,
        "first_at": refused.received_at,
        "last_at": refused.received_at,
        "sample_sha256": refused.body_sha256,
    }
    with runtime().db.transaction() as session:
        add_counts(session, [bucket])
