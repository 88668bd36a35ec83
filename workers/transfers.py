"""Money out: send each refund or payout at most once, and find out how it ended.

``send_transfer`` claims a ``pending`` transfer by moving it to ``sending`` and
committing *before* the gateway call. So a worker killed mid-call leaves
``sending`` behind, and the redelivered message finds it: the call may have
reached the gateway, so the transfer becomes ``unknown`` and is only ever
queried from then on. The gateway's answer moves it on:

* accepted, result to follow → ``submitted`` (the result URL or a status query
  finishes it; the sweep queries it when the result is overdue);
* a synchronous gateway's final word → ``succeeded`` / ``failed`` at once;
* refused → ``failed`` (hold released);
* certainly not acted on (``GatewayUnavailable``) → back to ``pending``, retried;
* may have been acted on (``GatewayOutcomeUnknown``) → ``unknown``, queried.

A status answer of "no such transfer" for an ``unknown`` transfer means it was
never made: it goes back to ``pending`` and is sent (where the gateway takes our
``request_ref``, a duplicate would be refused by the gateway anyway).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq
import structlog
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.db.models import CustomerNotification, GatewayEvent, Merchant, PaymentIntent, Transfer
from shared.db.session import after_commit
from shared.domain import errors
from shared.domain.money import Money
from shared.domain.states import TransferStatus
from shared.gateways.base import GatewayOutcomeUnknown, GatewayUnavailable
from shared.gateways.transfers import (
    RESULT_TAIL,
    TIMEOUT_TAIL,
    TransferEvent,
    TransferKind,
    TransferRequest,
    TransferState,
    TransferSubmission,
    TransferVerdict,
)
from shared.merchants import MerchantGateway, load_gateway_config
from shared.messages import (
    CHECK_TRANSFER,
    SEND_TRANSFER,
    SWEEP_TRANSFERS,
    CheckTransfer,
    MessageContract,
    NotifyCustomer,
    NotifyMerchant,
    SendTransfer,
    SweepTransfers,
)
from shared.transfers import finish, lock_transfer, move
from workers.broker import POLICIES
from workers.events import stream_after_commit
from workers.runtime import Runtime, runtime

log = structlog.stdlib.get_logger(__name__)
SEND_POLICY = POLICIES[SEND_TRANSFER.actor_name]
ACTOR = "worker"
SWEEP_BATCH = 500
CALL_MARGIN_S = 5.0
# A send is at most this many HTTP calls (a token, the request, an approval).
CALLS_PER_SEND = 3
# Every this many checks of an undecided transfer, an error line for the on-call.
STILL_OPEN_ALERT_EVERY = 20
_INSERT_EVENT = (
    insert(GatewayEvent)
    .on_conflict_do_nothing()  # the event key, per gateway and merchant
    .returning(GatewayEvent.id)
)


@dramatiq.actor(
    actor_name=SEND_TRANSFER.actor_name,
    queue_name=SEND_TRANSFER.queue_name,
    **SEND_POLICY.actor_options(),
)
def send_transfer(**fields: object) -> None:
    message = SendTransfer.from_kwargs(fields)
    TransferWork(runtime(), uuid.UUID(message.transfer_id)).send()


@dramatiq.actor(
    actor_name=CHECK_TRANSFER.actor_name,
    queue_name=CHECK_TRANSFER.queue_name,
    **POLICIES[CHECK_TRANSFER.actor_name].actor_options(),
)
def check_transfer(**fields: object) -> None:
    message = CheckTransfer.from_kwargs(fields)
    TransferWork(runtime(), uuid.UUID(message.transfer_id)).check()


@dramatiq.actor(
    actor_name=SWEEP_TRANSFERS.actor_name,
    queue_name=SWEEP_TRANSFERS.queue_name,
    **POLICIES[SWEEP_TRANSFERS.actor_name].actor_options(),
)
def sweep_transfers(**fields: object) -> None:
    SweepTransfers.from_kwargs(fields)
    sweep(runtime())


def _publish(rt: Runtime, message: MessageContract) -> Callable[[], None]:
    def publish() -> None:
        rt.publisher.send(message)

    return publish


def notify_after_commit(rt: Runtime, session: Session, event_id: int | None) -> None:
    if event_id is not None:
        after_commit(session, _publish(rt, NotifyMerchant(event_id=event_id)))
        stream_after_commit(rt, session)


class TransferWork:
    """One transfer's send, check, or result.

    Each send is a *claim*: ``sends`` counts them, and the count travels with the call
    (and, in the result URL's tail, with the gateway's asynchronous answers). An answer
    that belongs to an older claim may still finish the transfer with a final word (the
    money did or did not move), but it never rewinds it, re-sends it, or marks it unknown:
    only the current claim's answers do that.
    """

    def __init__(self, rt: Runtime, transfer_id: uuid.UUID) -> None:
        self.rt = rt
        self.transfer_id = transfer_id
        structlog.contextvars.bind_contextvars(transfer_id=str(transfer_id))

    # -- sending ----------------------------------------------------------------------------

    def send(self) -> None:
        with self.rt.db.transaction() as session:
            transfer = lock_transfer(session, self.transfer_id)
            now = datetime.now(UTC)
            if transfer is None:
                log.warning("transfer to send not found")
                return
            status = TransferStatus(transfer.status)
            if status == TransferStatus.SENDING:
                self._interrupted(session, transfer, now)
                return
            if status != TransferStatus.PENDING:
                return  # already sent, finished, or waiting for approval: a replay
            if self._waits_its_turn(
                session, transfer, now, TransferStatus.SENDING, TransferStatus.UNKNOWN
            ):
                return
            config = self._config(session, transfer)
            if config is None:
                event_id = finish(
                    session,
                    transfer,
                    TransferStatus.FAILED,
                    ACTOR,
                    now,
                    failure_code=errors.GATEWAY_NOT_CONFIGURED.code,
                )
                notify_after_commit(self.rt, session, event_id)
                return
            move(session, transfer, TransferStatus.SENDING, ACTOR)
            transfer.sends += 1
            claim = transfer.sends
            transfer.sent_at = now
            # No call to the gateway outlives this: after it, ``sending`` means interrupted.
            transfer.next_check_at = self._call_deadline(transfer)
            request = self._request(session, transfer, config)
            kind, gateway = TransferKind(transfer.kind), transfer.gateway
        # Committed: from here on a crash leaves ``sending``, which is never sent again.
        try:
            submission = self._call(kind, gateway, config, request)
        except GatewayUnavailable as exc:
            self._not_sent(exc, claim)
            return
        except GatewayOutcomeUnknown as exc:
            with self.rt.db.transaction() as session:
                transfer = lock_transfer(session, self.transfer_id)
                if transfer is not None and self._current(transfer, claim, TransferStatus.SENDING):
                    self._unknown(session, transfer, datetime.now(UTC), str(exc))
            log.warning("transfer outcome unknown; will query, never re-send", error=str(exc))
            return
        self._answered(submission, claim)

    def _waits_its_turn(
        self, session: Session, transfer: Transfer, now: datetime, *busy: TransferStatus
    ) -> bool:
        """A refund on a gateway that settles lost answers by the order's refunded total
        (Ameriabank, ArCa) is sent (or asked about) only while no other refund of its
        payment is ``busy`` at the bank: otherwise one refund's money could be counted as
        another's. Sending waits for every undecided one, so at most one is ever unknown."""
        if (
            transfer.payment_id is None
            or not self.rt.gateways.describe(transfer.gateway).serial_refunds
        ):
            return False
        session.execute(
            select(PaymentIntent.id)
            .where(PaymentIntent.id == transfer.payment_id)
            .with_for_update()
        )
        busy = session.scalar(
            select(Transfer.id)
            .where(
                Transfer.payment_id == transfer.payment_id,
                Transfer.id != transfer.id,
                Transfer.status.in_([state.value for state in busy]),
            )
            .limit(1)
        )
        if busy is None:
            return False
        transfer.next_check_at = now + timedelta(seconds=self.rt.settings.transfer_check_s)
        transfer.dispatched_at = None  # the sweep sends it when its turn comes
        log.info("refund waits for another refund of its payment to be decided")
        return True

    def _next_in_turn(self, session: Session, transfer: Transfer) -> None:
        """Hand over to the refunds of the same payment that waited for this one's turn."""
        if (
            transfer.payment_id is None
            or not self.rt.gateways.describe(transfer.gateway).serial_refunds
        ):
            return
        waiting = session.scalars(
            select(Transfer.id).where(
                Transfer.payment_id == transfer.payment_id,
                Transfer.status == TransferStatus.PENDING.value,
            )
        )
        for transfer_id in waiting:
            after_commit(session, _publish(self.rt, SendTransfer(transfer_id=str(transfer_id))))

    def _call(
        self,
        kind: TransferKind,
        gateway: str,
        config: MerchantGateway,
        request: TransferRequest,
    ) -> TransferSubmission:
        credentials = self.rt.gateways.get(gateway).credentials(config.credentials)
        if kind == TransferKind.REFUND:
            return self.rt.gateways.refunder(gateway).refund(credentials, request)
        return self.rt.gateways.payer(gateway).payout(credentials, request)

    @staticmethod
    def _current(transfer: Transfer, claim: int | None, *statuses: TransferStatus) -> bool:
        """Whether an answer of send ``claim`` may still steer the transfer."""
        return (claim is None or transfer.sends == claim) and transfer.status in statuses

    def _answered(self, submission: TransferSubmission, claim: int) -> None:
        now = datetime.now(UTC)
        with self.rt.db.transaction() as session:
            transfer = lock_transfer(session, self.transfer_id)
            if transfer is None:
                return
            final = submission.verdict is not None and submission.verdict.state in (
                TransferState.SUCCEEDED,
                TransferState.FAILED,
            )
            if not self._current(transfer, claim, TransferStatus.SENDING, TransferStatus.UNKNOWN):
                if final and submission.verdict is not None:
                    self._settle(session, transfer, submission.verdict, now)
                else:
                    log.info("answer of an earlier send; the transfer moved on", claim=claim)
                return
            if submission.gateway_ref and not transfer.gateway_ref:
                transfer.gateway_ref = submission.gateway_ref[:100]
            if submission.failure_code == errors.DUPLICATE_TRANSFER.code:
                self._duplicate(session, transfer, now)
                return
            if not submission.accepted:
                log.info("transfer refused by the gateway", failure=submission.failure_code)
                event_id = finish(
                    session,
                    transfer,
                    TransferStatus.FAILED,
                    ACTOR,
                    now,
                    failure_code=submission.failure_code or errors.TRANSFER_REFUSED.code,
                    message=submission.message or None,
                )
                notify_after_commit(self.rt, session, event_id)
                return
            if final and submission.verdict is not None:
                self._settle(session, transfer, submission.verdict, now)
                return
            if move(session, transfer, TransferStatus.SUBMITTED, ACTOR):
                transfer.next_check_at = now + timedelta(
                    seconds=self.rt.settings.transfer_result_wait_s
                )
                log.info("transfer submitted", gateway_ref=transfer.gateway_ref)

    def _duplicate(self, session: Session, transfer: Transfer, now: datetime) -> None:
        """The gateway says it has this transfer's id already: an earlier send reached it.

        Never failed (the money may have moved) and never sent again (the gateway would
        say the same): it is only asked about, and marked so that even a later "no such
        transfer" does not send it; it waits for the gateway's word or an operator.
        """
        transfer.failure_code = errors.DUPLICATE_TRANSFER.code
        transfer.failure_message = "the gateway reported a transfer with this id already"
        self._unknown(session, transfer, now, "the gateway has this id already")
        log.warning("gateway says the transfer exists already; asking, never re-sending")

    def _not_sent(self, exc: GatewayUnavailable, claim: int) -> None:
        """The gateway did not act: back to pending; retried now, or later by the sweep."""
        with self.rt.db.transaction() as session:
            transfer = lock_transfer(session, self.transfer_id)
            if transfer is None or not self._current(transfer, claim, TransferStatus.SENDING):
                return  # the transfer moved on (its deadline passed and it was asked about)
            move(session, transfer, TransferStatus.PENDING, ACTOR, error=str(exc)[:200])
            transfer.next_check_at = datetime.now(UTC) + timedelta(
                seconds=self.rt.settings.transfer_result_wait_s
            )
        log.info("gateway unavailable; the transfer stays pending", error=str(exc))
        if SEND_POLICY.is_last_try():
            return  # the sweep sends it once the gateway is back
        if exc.retry_after_s is not None:
            raise dramatiq.Retry(str(exc), delay=int(exc.retry_after_s * 1000)) from exc
        raise exc

    def _interrupted(self, session: Session, transfer: Transfer, now: datetime) -> None:
        """A transfer found ``sending``: another worker may be mid-call, or one died mid-call.

        Until the call's deadline passes nothing is done (a duplicate message must not
        disturb a live call); after it, the call may have reached the gateway: never send
        it again, ask.
        """
        if now < self._call_deadline(transfer):
            log.info("transfer is being sent by another delivery; leaving it")
            return
        self._unknown(session, transfer, now, "interrupted while sending")
        log.warning("transfer send was interrupted; checking, not re-sending")

    def _call_deadline(self, transfer: Transfer) -> datetime:
        """When the send that claimed ``transfer`` has certainly ended, one way or another.

        One send may be several HTTP calls (a token, the request, an approval), each
        bounded by the gateway's connect and read timeouts.
        """
        settings = self.rt.settings.gateway_settings(transfer.gateway)
        sent_at = transfer.sent_at or datetime.now(UTC)
        per_call = settings.connect_timeout_s + settings.read_timeout_s
        return sent_at + timedelta(seconds=CALLS_PER_SEND * per_call + CALL_MARGIN_S)

    def _unknown(self, session: Session, transfer: Transfer, now: datetime, why: str) -> None:
        if move(session, transfer, TransferStatus.UNKNOWN, ACTOR, why=why[:200]):
            transfer.next_check_at = now + timedelta(seconds=self.rt.settings.transfer_check_s)
            after_commit(session, _publish(self.rt, CheckTransfer(transfer_id=str(transfer.id))))

    # -- checking ---------------------------------------------------------------------------

    def check(self) -> None:
        with self.rt.db.transaction() as session:
            transfer = lock_transfer(session, self.transfer_id)
            now = datetime.now(UTC)
            if transfer is None:
                return
            status = TransferStatus(transfer.status)
            if status == TransferStatus.SENDING:
                self._interrupted(session, transfer, now)
                return
            if status not in (TransferStatus.SUBMITTED, TransferStatus.UNKNOWN):
                return
            config = self._config(session, transfer)
            if config is None:
                return
            if status == TransferStatus.UNKNOWN and self._waits_its_turn(
                session, transfer, now, TransferStatus.SENDING
            ):
                return
            request = self._request(session, transfer, config)
            transfer.checks += 1
            transfer.next_check_at = now + timedelta(
                seconds=min(
                    self.rt.settings.transfer_check_s * 2 ** min(transfer.checks, 6),
                    self.rt.settings.transfer_check_max_s,
                )
            )
            if transfer.checks % STILL_OPEN_ALERT_EVERY == 0:
                log.error(
                    "transfer still not decided: an operator should look",
                    status=transfer.status,
                    checks=transfer.checks,
                    failure=transfer.failure_code,
                )
            claim = transfer.sends
            kind, gateway, gateway_ref = (
                TransferKind(transfer.kind),
                transfer.gateway,
                transfer.gateway_ref,
            )
        credentials = self.rt.gateways.get(gateway).credentials(config.credentials)
        if kind == TransferKind.REFUND:
            verdict = self.rt.gateways.refunder(gateway).refund_status(
                credentials, request, gateway_ref
            )
        else:
            verdict = self.rt.gateways.payer(gateway).payout_status(
                credentials, request, gateway_ref
            )
        log.info("transfer checked", state=verdict.state.value, result_code=verdict.result_code)
        with self.rt.db.transaction() as session:
            transfer = lock_transfer(session, self.transfer_id)
            if transfer is not None:
                self.apply(session, transfer, verdict, datetime.now(UTC), claim)

    # -- applying a gateway's word -----------------------------------------------------------

    def apply(
        self,
        session: Session,
        transfer: Transfer,
        verdict: TransferVerdict,
        now: datetime,
        claim: int | None,
    ) -> str:
        """Apply a status answer or a result about send ``claim`` (None: not known which);
        the event outcome to record."""
        status = TransferStatus(transfer.status)
        if status.is_final:
            if _agrees(status, verdict):
                return "same"
            # The gateway contradicts a final state: money may be where the ledger says it
            # is not. Recorded (``transfer_conflict`` events are listed in /ops/events).
            log.error(
                "gateway contradicts a finished transfer: review it",
                status=transfer.status,
                result_code=verdict.result_code,
                said=verdict.state.value,
            )
            return "conflict"
        if verdict.state == TransferState.FAILED and (
            verdict.failure_code == errors.DUPLICATE_TRANSFER.code
        ):
            if self._current(
                transfer,
                claim,
                TransferStatus.SENDING,
                TransferStatus.SUBMITTED,
                TransferStatus.UNKNOWN,
            ):
                self._duplicate(session, transfer, now)
            return "duplicate"
        if verdict.state == TransferState.PENDING:
            if verdict.result_code == "queue_timeout" and self._current(
                transfer, claim, TransferStatus.SUBMITTED
            ):
                self._unknown(session, transfer, now, "the gateway's queue timed out")
            return "pending"
        if verdict.state == TransferState.NOT_FOUND:
            if not self._current(transfer, claim, TransferStatus.UNKNOWN):
                return "pending"  # submitted (its record may lag), or about an older send
            if transfer.failure_code == errors.DUPLICATE_TRANSFER.code:
                log.error("gateway reported a duplicate, then no such transfer: review it")
                return "pending"
            move(session, transfer, TransferStatus.PENDING, ACTOR, why="gateway has no record")
            transfer.next_check_at, transfer.dispatched_at = None, now
            after_commit(session, _publish(self.rt, SendTransfer(transfer_id=str(transfer.id))))
            log.info("transfer never reached the gateway; sending it")
            return "not_found"
        return "applied" if self._settle(session, transfer, verdict, now) else "stale"

    def _settle(
        self, session: Session, transfer: Transfer, verdict: TransferVerdict, now: datetime
    ) -> bool:
        """Finish with the gateway's final word; False when the transfer could not move."""
        succeeded = verdict.state == TransferState.SUCCEEDED
        event_id = finish(
            session,
            transfer,
            TransferStatus.SUCCEEDED if succeeded else TransferStatus.FAILED,
            ACTOR,
            now,
            receipt=verdict.receipt,
            failure_code=None if succeeded else (verdict.failure_code or "transfer_refused"),
            message=None if succeeded else (verdict.message or None),
            result_code=verdict.result_code,
        )
        if event_id is None:
            return False
        notify_after_commit(self.rt, session, event_id)
        self._next_in_turn(session, transfer)
        if succeeded and transfer.kind == TransferKind.PAYOUT:
            self._tell_recipient(session, transfer, now)
        log.info(
            "transfer finished",
            status=transfer.status,
            result_code=verdict.result_code,
            receipt=verdict.receipt,
        )
        return True

    def _tell_recipient(self, session: Session, transfer: Transfer, now: datetime) -> None:
        """An SMS to the phone a payout paid, where the merchant asks for it (outbox row)."""
        merchant = session.get(Merchant, transfer.merchant_id)
        if merchant is None or not (merchant.payouts or {}).get("notify_recipient"):
            return
        notification_id = session.execute(
            insert(CustomerNotification)
            .values(
                transfer_id=transfer.id,
                merchant_id=transfer.merchant_id,
                channel="sms",
                event="payout_received",
                published_at=now,
            )
            .on_conflict_do_nothing(index_elements=["transfer_id", "channel", "event"])
            .returning(CustomerNotification.id)
        ).scalar_one_or_none()
        if notification_id is not None:
            after_commit(
                session, _publish(self.rt, NotifyCustomer(notification_id=notification_id))
            )

    # -- what the gateway needs ---------------------------------------------------------------

    def _config(self, session: Session, transfer: Transfer) -> MerchantGateway | None:
        config = load_gateway_config(
            session, self.rt.cipher, transfer.merchant_id, transfer.gateway
        )
        if config is None:
            log.warning("merchant has no enabled credentials for the transfer's gateway")
        return config

    def _request(
        self, session: Session, transfer: Transfer, config: MerchantGateway
    ) -> TransferRequest:
        base = self.rt.settings.merchant_callback_url(transfer.gateway, config.callback_secret)
        fields: dict[str, Any] = {}
        if transfer.payment_id is not None:
            intent = session.get(PaymentIntent, transfer.payment_id)
            assert intent is not None  # a refund's payment is a foreign key
            fields = {
                "payment_gateway_ref": intent.settled_ref or intent.gateway_ref,
                "payment_receipt": intent.receipt,
                "payment_amount": Money(intent.amount_minor, intent.currency),
                "payment_refunded": Money(intent.refunded_minor, intent.currency),
            }
        return TransferRequest(
            kind=TransferKind(transfer.kind),
            transfer_id=str(transfer.id),
            request_ref=transfer.request_ref,
            amount=Money(transfer.amount_minor, transfer.currency),
            phone=transfer.phone,
            reason=transfer.reason,
            # The tail names the transfer and the send the answer is about.
            result_url=f"{base}/{RESULT_TAIL}{transfer.request_ref}.{transfer.sends}",
            timeout_url=f"{base}/{TIMEOUT_TAIL}{transfer.request_ref}.{transfer.sends}",
            **fields,
        )


def _agrees(status: TransferStatus, verdict: TransferVerdict) -> bool:
    if verdict.state in (TransferState.PENDING, TransferState.NOT_FOUND):
        return True
    succeeded = verdict.state == TransferState.SUCCEEDED
    return succeeded == (status == TransferStatus.SUCCEEDED)


# -- results that arrive as callbacks ---------------------------------------------------------


def ref_from_tail(tail: str | None) -> tuple[str | None, int | None]:
    """(request_ref, send) of a result URL's tail ``xr-<ref>.<send>``; (None, None) else."""
    for prefix in (RESULT_TAIL, TIMEOUT_TAIL):
        if tail and tail.startswith(prefix):
            ref, _, send = tail[len(prefix) :].partition(".")
            return ref or None, int(send) if send.isdigit() else None
    return None, None


def gateway_tail(tail: str | None) -> str | None:
    """The tail as the gateway's reader knows it (``xr-<ref>``: without the send number)."""
    for prefix in (RESULT_TAIL, TIMEOUT_TAIL):
        if tail and tail.startswith(prefix):
            return prefix + tail[len(prefix) :].partition(".")[0]
    return tail


def apply_transfer_event(
    rt: Runtime,
    gateway: str,
    merchant_id: uuid.UUID,
    event: TransferEvent,
    tail: str | None,
    received_at: datetime,
    remote_addr: str | None,
) -> None:
    """Record a transfer result once (by its event key) and apply it to its transfer."""
    tail_ref, claim = ref_from_tail(tail)
    request_ref = tail_ref or (event.request_ref or "").partition(".")[0] or None
    with rt.db.transaction() as session:
        transfer = _find(session, gateway, merchant_id, request_ref, event.gateway_ref)
        event_id = session.execute(
            _INSERT_EVENT,
            {
                "gateway": gateway,
                "event_key": event.event_key[:200],
                "source": "callback",
                "merchant_id": merchant_id,
                "intent_id": transfer.payment_id if transfer is not None else None,
                "gateway_ref": (event.gateway_ref or request_ref or "")[:100] or None,
                "result_code": event.verdict.result_code[:40],
                "outcome": "transfer_orphan" if transfer is None else "transfer_received",
                "detail": f"{transfer.kind} {transfer.id}" if transfer is not None else None,
                "headers": {},
                "body_masked": event.masked_body,
                "remote_addr": remote_addr,
                "received_at": received_at,
            },
        ).scalar_one_or_none()
        if event_id is None:
            # The same result delivered again: nothing more happens.
            log.info("transfer result already applied", event_key=event.event_key)
            return
        if transfer is None:
            log.warning("transfer result for no transfer of ours kept as an orphan")
            return
        structlog.contextvars.bind_contextvars(transfer_id=str(transfer.id))
        outcome = TransferWork(rt, transfer.id).apply(
            session, transfer, event.verdict, datetime.now(UTC), claim
        )
        session.execute(
            update(GatewayEvent)
            .where(GatewayEvent.id == event_id)
            .values(outcome=f"transfer_{outcome}"[:32])
        )
    log.info("transfer result applied", outcome=outcome, result_code=event.verdict.result_code)


def _find(
    session: Session,
    gateway: str,
    merchant_id: uuid.UUID,
    request_ref: str | None,
    gateway_ref: str | None,
) -> Transfer | None:
    query = select(Transfer).where(Transfer.merchant_id == merchant_id)
    if request_ref:
        query = query.where(Transfer.request_ref == request_ref)
    elif gateway_ref:
        query = query.where(Transfer.gateway == gateway, Transfer.gateway_ref == gateway_ref)
    else:
        return None
    return session.scalars(query.with_for_update()).one_or_none()


# -- the sweep ---------------------------------------------------------------------------------


def sweep(rt: Runtime) -> tuple[int, int]:
    """Re-send pending transfers nobody picked up; check those whose answer is overdue."""
    now = datetime.now(UTC)
    stale = now - timedelta(seconds=rt.settings.transfer_dispatch_after_s)
    with rt.db.transaction() as session:
        to_send = list(
            session.scalars(
                update(Transfer)
                .where(
                    Transfer.id.in_(
                        select(Transfer.id)
                        .where(
                            Transfer.status == TransferStatus.PENDING.value,
                            (Transfer.dispatched_at.is_(None)) | (Transfer.dispatched_at < stale),
                            (Transfer.next_check_at.is_(None)) | (Transfer.next_check_at <= now),
                        )
                        .limit(SWEEP_BATCH)
                        .with_for_update(skip_locked=True)
                    )
                )
                .values(dispatched_at=now)
                .returning(Transfer.id)
            )
        )
        to_check = list(
            session.scalars(
                update(Transfer)
                .where(
                    Transfer.id.in_(
                        select(Transfer.id)
                        .where(
                            Transfer.status.in_(
                                [
                                    TransferStatus.SENDING.value,
                                    TransferStatus.SUBMITTED.value,
                                    TransferStatus.UNKNOWN.value,
                                ]
                            ),
                            Transfer.next_check_at <= now,
                        )
                        .limit(SWEEP_BATCH)
                        .with_for_update(skip_locked=True)
                    )
                )
                .values(next_check_at=now + timedelta(seconds=rt.settings.transfer_check_max_s))
                .returning(Transfer.id)
            )
        )
    for transfer_id in to_send:
        rt.publisher.send(SendTransfer(transfer_id=str(transfer_id)))
    for transfer_id in to_check:
        rt.publisher.send(CheckTransfer(transfer_id=str(transfer_id)))
    if to_send or to_check:
        log.info("transfers swept", sent=len(to_send), checked=len(to_check))
    return len(to_send), len(to_check)
