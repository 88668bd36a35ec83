"""The outbox: what a payment's change must tell the world, written in the same transaction.

When a payment reaches a final state, the same transaction that moves it writes
a webhook event for the merchant and, for a failure, cancellation or expiry, a
notice per customer channel. After the commit those rows are published
(``notify_merchant`` / ``notify_customer``); a crash between the commit and the
publish loses nothing, because ``relay_outbox`` re-publishes every row that was
never picked up. Consumers are idempotent, so a row published twice is sent once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import dramatiq
import structlog
from sqlalchemy import bindparam, case, exists, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.db.models import CustomerNotification, PaymentIntent, WebhookEndpoint, WebhookEvent
from shared.db.session import after_commit
from shared.domain.states import PaymentStatus
from shared.messages import RELAY_OUTBOX, NotifyCustomer, NotifyMerchant, Publisher, RelayOutbox
from shared.payments import payment_view
from workers.broker import POLICIES
from workers.events import stream_after_commit
from workers.runtime import Runtime, runtime

log = structlog.stdlib.get_logger(__name__)
NOTIFIED_CUSTOMER_STATES = frozenset(
    {PaymentStatus.FAILED, PaymentStatus.CANCELLED, PaymentStatus.EXPIRED}
)
RELAY_BATCH = 1000
# A merchant with no enabled endpoint has its events held from the start (as
# ``notify_merchant`` would hold them): no message is published for an event nobody
# can be sent, and a replay sends it once there is an endpoint.
_ENDPOINT_ENABLED = exists().where(
    WebhookEndpoint.merchant_id == bindparam("endpoint_of"), WebhookEndpoint.enabled.is_(True)
)
_INSERT_WEBHOOK_EVENT = (
    insert(WebhookEvent)
    .values(status=case((_ENDPOINT_ENABLED, "pending"), else_="held"))
    .returning(WebhookEvent.id, WebhookEvent.status)
)


def record_payment_change(session: Session, intent: PaymentIntent, now: datetime) -> None:
    """Write the outbox rows for the payment's new (final) state; publish them after commit."""
    event_id, status = (
        session.connection()
        .execute(
            _INSERT_WEBHOOK_EVENT,
            {
                "endpoint_of": intent.merchant_id,
                "webhook_id": f"msg_{uuid.uuid4().hex}",
                "merchant_id": intent.merchant_id,
                "payment_id": intent.id,
                "event_type": f"payment.{intent.status}",
                "payload": {
                    "type": f"payment.{intent.status}",
                    "timestamp": now.isoformat(),
                    "data": payment_view(intent),
                },
                "published_at": now,
            },
        )
        .one()
    )
    rt = runtime()
    publisher = rt.publisher
    if status == "pending":
        after_commit(session, _publisher(publisher, NotifyMerchant(event_id=event_id)))
    stream_after_commit(rt, session)
    # Customers hear of failures only when they were prompted (not, say, a duplicate refused).
    if PaymentStatus(intent.status) not in NOTIFIED_CUSTOMER_STATES or intent.submitted_at is None:
        return
    for channel in customer_channels(intent):
        notification_id = session.execute(
            insert(CustomerNotification)
            .values(
                payment_id=intent.id,
                merchant_id=intent.merchant_id,
                channel=channel,
                event=intent.status,
                cycle=intent.cycle,
                published_at=now,
            )
            .on_conflict_do_nothing(index_elements=["payment_id", "cycle", "channel", "event"])
            .returning(CustomerNotification.id)
        ).scalar_one_or_none()
        if notification_id is not None:
            after_commit(
                session, _publisher(publisher, NotifyCustomer(notification_id=notification_id))
            )


def customer_channels(intent: PaymentIntent) -> list[str]:
    """SMS to the paying phone always; e-mail when the merchant gave the customer's address."""
    return ["sms", "email"] if intent.customer_email else ["sms"]


def _publisher(
    publisher: Publisher, message: NotifyMerchant | NotifyCustomer
) -> Callable[[], None]:
    def publish() -> None:
        publisher.send(message)

    return publish


@dramatiq.actor(
    actor_name=RELAY_OUTBOX.actor_name,
    queue_name=RELAY_OUTBOX.queue_name,
    **POLICIES[RELAY_OUTBOX.actor_name].actor_options(),
)
def relay_outbox(**fields: object) -> None:
    RelayOutbox.from_kwargs(fields)
    relay(runtime())


def relay(rt: Runtime) -> int:
    """Re-publish outbox rows that nobody picked up within ``outbox_relay_after_s``."""
    now = datetime.now(UTC)
    stale = now - timedelta(seconds=rt.settings.outbox_relay_after_s)
    with rt.db.transaction() as session:
        events = _claim_unpicked(session, WebhookEvent, stale, now)
        notices = _claim_unpicked(session, CustomerNotification, stale, now)
    for event_id in events:
        rt.publisher.send(NotifyMerchant(event_id=event_id))
    for notification_id in notices:
        rt.publisher.send(NotifyCustomer(notification_id=notification_id))
    if events or notices:
        log.info("outbox rows re-published", events=len(events), customer_notices=len(notices))
    return len(events) + len(notices)


def _claim_unpicked(
    session: Session,
    model: type[WebhookEvent] | type[CustomerNotification],
    stale: datetime,
    now: datetime,
) -> list[int]:
    """Pending rows never attempted and published before ``stale``: mark them published now."""
    unpicked = (
        select(model.id)
        .where(model.status == "pending", model.attempts == 0, model.published_at < stale)
        .limit(RELAY_BATCH)
        .with_for_update(skip_locked=True)
    )
    claimed = session.scalars(
        update(model).where(model.id.in_(unpicked)).values(published_at=now).returning(model.id)
    )
    return list(claimed)
