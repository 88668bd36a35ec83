"""``notify_customer``: tell a customer by SMS or e-mail that their payment did not complete.

Contract:

* **Idempotent.** A notice already ``sent`` or ``failed`` is left alone. The row
  is locked (``FOR UPDATE SKIP LOCKED``) for the length of one provider call, so
  two copies of the message never send it at the same time; a copy that finds it
  locked is dropped (the holder sends it, or retries). A crash after the provider
  took the message but before the commit sends it again on redelivery: no SMS or
  SMTP provider offers an idempotency key, and a rare duplicate beats a lost notice.
* **Never touches the payment.** The intent and merchant are read; only the
  ``customer_notifications`` row is written. A failed notice changes nothing else.
* **Retries.** A transient channel error (network, 5xx, Africa's Talking 500/501/502,
  SMTP 4xx) raises :class:`ChannelUnavailable` for the retry policy; on the last try
  the notice is recorded ``failed`` instead. A refusal, or a channel that is not
  configured, records ``failed`` at once (with a warning, never an exception).
* **Privacy.** Logs and ``last_error`` carry masked phones and addresses only.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

import dramatiq
import structlog
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from shared.db.models import CustomerNotification, Merchant, PaymentIntent, Transfer
from shared.domain.errors import PermanentError
from shared.domain.money import Money
from shared.domain.phone import mask_phone_numbers
from shared.domain.states import PaymentStatus
from shared.messages import NOTIFY_CUSTOMER, NotifyCustomer
from shared.notify import ChannelUnavailable, Delivery, Notice, Notifier, notifiers_from_settings
from shared.notify.base import mask_emails, mask_recipient
from shared.notify.templates import SMS_LENGTH, NoticeFacts, effective_template, render
from shared.settings import Settings
from workers.broker import POLICIES
from workers.runtime import Runtime, runtime

log = structlog.stdlib.get_logger(__name__)
POLICY = POLICIES[NOTIFY_CUSTOMER.actor_name]
NOT_CONFIGURED = "channel not configured"


@dramatiq.actor(
    actor_name=NOTIFY_CUSTOMER.actor_name,
    queue_name=NOTIFY_CUSTOMER.queue_name,
    **POLICY.actor_options(),
)
def notify_customer(**fields: object) -> None:
    message = NotifyCustomer.from_kwargs(fields)
    rt = runtime()
    deliver(rt, channels(rt.settings), message.notification_id, last_try=POLICY.is_last_try())


@functools.lru_cache(maxsize=2)
def channels(settings: Settings) -> dict[str, Notifier]:
    """This process's notifiers, built once per settings object."""
    return notifiers_from_settings(settings)


def deliver(
    rt: Runtime, notifiers: dict[str, Notifier], notification_id: int, *, last_try: bool
) -> None:
    """Send one pending notice and record the outcome; raises ChannelUnavailable to retry."""
    with rt.db.transaction() as session:
        row = _claim(session, notification_id)
        if row is None:
            return
        structlog.contextvars.bind_contextvars(
            **(
                {"transfer_id": str(row.transfer_id)}
                if row.transfer_id
                else {"payment_id": str(row.payment_id)}
            )
        )
        if row.status != "pending":
            log.info("customer notice already handled", notice=row.id, status=row.status)
            return
        unavailable = _attempt(session, row, notifiers.get(row.channel), last_try=last_try)
    if unavailable is not None:
        raise unavailable


def _claim(session: Session, notification_id: int) -> CustomerNotification | None:
    """The row, locked; None when another delivery holds it. A missing row is permanent."""
    row = session.get(
        CustomerNotification,
        notification_id,
        with_for_update={"skip_locked": True},
        populate_existing=True,
    )
    if row is not None:
        return row
    if session.scalar(select(exists().where(CustomerNotification.id == notification_id))):
        log.info("customer notice is being sent by another delivery", notice=notification_id)
        return None
    raise PermanentError(f"no customer notification {notification_id}")


def _attempt(
    session: Session, row: CustomerNotification, notifier: Notifier | None, *, last_try: bool
) -> ChannelUnavailable | None:
    """One try; returns the transient error to retry with, or None when the row is final."""
    row.attempts += 1
    if notifier is None:
        log.warning("customer notice not sent: channel not configured", channel=row.channel)
        _fail(row, NOT_CONFIGURED)
        return None
    notice, reason = _compose(session, row)
    if notice is None:
        _fail(row, reason)
        log.info("customer notice not sent", channel=row.channel, reason=reason)
        return None
    try:
        delivery = notifier.send(notice)
    except ChannelUnavailable as exc:
        return _unavailable(row, notice, exc, last_try=last_try)
    _record(row, notice, delivery)
    return None


def _compose(session: Session, row: CustomerNotification) -> tuple[Notice | None, str]:
    """The notice to send, or None and why there is nothing to send."""
    if row.transfer_id is not None:
        return _compose_payout(session, row)
    intent = session.get(PaymentIntent, row.payment_id)
    merchant = session.get(Merchant, row.merchant_id)
    if intent is None or merchant is None:
        return None, "payment or merchant not found"
    if intent.status == PaymentStatus.SUCCEEDED:
        # A late success after an expiry: "timed out" would now mislead the customer.
        return None, "not sent: the payment succeeded since"
    recipient = intent.phone if row.channel == "sms" else intent.customer_email
    if not recipient:
        return None, "no recipient for this channel"
    facts = NoticeFacts(
        amount=Money(intent.amount_minor, intent.currency),
        reference=intent.reference,
        merchant=merchant.name,
        status=row.event,
        failure_code=intent.failure_code,
        description=intent.description,
        payment_id=str(intent.id),
    )
    rendered = render(effective_template(session, row.merchant_id, row.channel, row.event), facts)
    if row.channel == "sms" and len(rendered.body) > SMS_LENGTH:
        log.info("customer SMS longer than one page", length=len(rendered.body))
    return Notice(recipient=recipient, body=rendered.body, subject=rendered.subject), ""


def _compose_payout(session: Session, row: CustomerNotification) -> tuple[Notice | None, str]:
    """A payout's notice to the phone it paid (SMS only: a payout has no e-mail address)."""
    transfer = session.get(Transfer, row.transfer_id)
    merchant = session.get(Merchant, row.merchant_id)
    if transfer is None or merchant is None:
        return None, "payout or merchant not found"
    if row.channel != "sms":
        return None, "no recipient for this channel"
    facts = NoticeFacts(
        amount=Money(transfer.amount_minor, transfer.currency),
        reference=transfer.reason,
        merchant=merchant.name,
        status=row.event,
        payment_id=str(transfer.id),
    )
    rendered = render(effective_template(session, row.merchant_id, row.channel, row.event), facts)
    return Notice(recipient=transfer.phone, body=rendered.body, subject=rendered.subject), ""


def _unavailable(
    row: CustomerNotification, notice: Notice, exc: ChannelUnavailable, *, last_try: bool
) -> ChannelUnavailable | None:
    row.last_error = _safe(str(exc))
    to = mask_recipient(row.channel, notice.recipient)
    if last_try:
        row.status = "failed"
        log.warning("customer notice failed after retries", channel=row.channel, to=to)
        return None
    log.info("customer notice will be retried", channel=row.channel, to=to, error=row.last_error)
    return exc


def _record(row: CustomerNotification, notice: Notice, delivery: Delivery) -> None:
    to = mask_recipient(row.channel, notice.recipient)
    if not delivery.accepted:
        _fail(row, delivery.error or "refused by the provider")
        log.warning("customer notice refused", channel=row.channel, to=to, error=row.last_error)
        return
    row.status, row.sent_at, row.last_error = "sent", datetime.now(UTC), None
    row.provider_ref = delivery.provider_ref
    log.info("customer notice sent", channel=row.channel, notice_event=row.event, to=to)


def _fail(row: CustomerNotification, error: str) -> None:
    row.status, row.last_error = "failed", _safe(error)


def _safe(text: str) -> str:
    """Error text fit to store and log: phones and addresses masked, bounded."""
    return mask_phone_numbers(mask_emails(text))[:300]
