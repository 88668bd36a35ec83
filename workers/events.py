"""``stream_events``: publish committed outbox events on the ``malipo.events`` exchange.

The outbox rows the merchant webhooks are sent from (``webhook_events``) are also
published, in id order, to the topic exchange services subscribe to (see
:mod:`shared.bus`). One streamer at a time (a transaction-scoped advisory lock), so
the exchange sees the rows in id order; the rows of one payment are written under
its row lock, so their ids follow their commits: per payment, events arrive in the
order the changes committed.

Each batch is published with confirms, then marked ``streamed_at`` in the same
transaction: a crash between the two publishes the batch again (at least once;
subscribers dedupe on ``message_id``). A change enqueues ``stream_events`` after its
commit; the scheduler enqueues it every ``event_stream_interval_s`` as a backstop for
a lost message or a streamer that was busy when a row committed.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dramatiq
import structlog
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from shared.bus import OUTBOX_COLUMNS, EventStream, outbound
from shared.db.models import WebhookEvent
from shared.db.session import after_commit
from shared.messages import STREAM_EVENTS, StreamEvents
from workers.broker import POLICIES
from workers.runtime import Runtime, runtime

log = structlog.stdlib.get_logger(__name__)
STREAM_BATCH = 500
STREAM_MAX_BATCHES = 20
# pg_advisory lock key of the one streamer ("malipo.events" as a number).
STREAM_LOCK = 0x6D616C69706F6576
_UNSTREAMED = (
    select(*OUTBOX_COLUMNS)
    .where(WebhookEvent.streamed_at.is_(None))
    .order_by(WebhookEvent.id)
    .limit(STREAM_BATCH)
)


@dramatiq.actor(
    actor_name=STREAM_EVENTS.actor_name,
    queue_name=STREAM_EVENTS.queue_name,
    **POLICIES[STREAM_EVENTS.actor_name].actor_options(),
)
def stream_events(**fields: object) -> None:
    StreamEvents.from_kwargs(fields)
    stream(runtime(), event_stream())


_stream: EventStream | None = None


def event_stream() -> EventStream:
    """This process's publisher to ``malipo.events`` (one connection per thread)."""
    global _stream
    if _stream is None:
        _stream = EventStream(runtime().settings.broker_url.get_secret_value())
    return _stream


def stream(rt: Runtime, events: EventStream, max_batches: int = STREAM_MAX_BATCHES) -> int:
    """Publish unstreamed events, oldest first; 0 at once when another streamer runs.

    At most ``max_batches`` batches per run, so a backlog (after an outage) is worked
    off in runs well inside the actor's time limit; the next run goes on from there.
    """
    total = 0
    for _ in range(max_batches):
        with rt.db.transaction() as session:
            if not session.scalar(select(func.pg_try_advisory_xact_lock(STREAM_LOCK))):
                return total
            rows = session.execute(_UNSTREAMED).all()
            if not rows:
                return total
            events.publish(outbound(rows))
            session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id.in_([r.id for r in rows]))
                .values(streamed_at=datetime.now(UTC))
            )
        total += len(rows)
        log.debug("events streamed", events=len(rows))
    rt.publisher.send(StreamEvents())  # a backlog is left: the next run goes on at once
    return total


def stream_after_commit(rt: Runtime, session: Session) -> None:
    """Ask for the stream to run once this change has committed."""

    def publish() -> None:
        rt.publisher.send(StreamEvents())

    after_commit(session, publish)
