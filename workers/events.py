"""``stream_events``: publish committed outbox events on the ``malipo.events`` exchange.

The outbox rows the merchant webhooks are sent from (``webhook_events``) are also
published, in id order, to the topic exchange services subscribe to (see
:mod:`shared.bus`). One streamer at a time (a transaction-scoped advisory lock), so
the exchange sees the rows in id order; the rows of one payment are written under
its row lock, so their ids follow their commits: per payment, events arrive in the
order the changes committed.

Each batch is published with confirms, then marked ``streamed_at`` in the same
transaction: a crash between the two publishes the batch again (at least once;
subscribers dedupe on ``message_id``). A change asks for ``stream_events`` after its
commit, coalesced per process (:class:`Coalescer`: at most one request per
``STREAM_NUDGE_INTERVAL_S``, always one after the last change); the scheduler enqueues
it every ``event_stream_interval_s`` as a backstop for a lost message or a streamer
that was busy when a row committed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import dramatiq
import structlog
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from shared.bus import OUTBOX_COLUMNS, EventStream, outbound
from shared.db.models import WebhookEvent
from shared.db.session import after_commit
from shared.messages import STREAM_EVENTS, Publisher, StreamEvents
from workers.broker import POLICIES
from workers.runtime import Runtime, runtime

log = structlog.stdlib.get_logger(__name__)
STREAM_BATCH = 500
STREAM_MAX_BATCHES = 20
# At most one after-commit request for a stream run per process per this many seconds.
STREAM_NUDGE_INTERVAL_S = 0.1
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


class Coalescer:
    """Turns many "run it now" requests into at most one ``send`` per ``interval_s``,
    and always one *after* the last request.

    A request when nothing was sent for ``interval_s`` sends at once, in the caller's
    thread. A request within the interval marks a send as due; one long-lived thread
    of the coalescer makes it at the interval's end (later requests find it due and
    return). So every request is followed by a send that starts no earlier than the
    request and about ``interval_s`` after it at most; a burst of thousands of
    requests costs a handful of sends. The sending thread lives as long as the
    process: a publisher keeps one broker connection per thread, so a thread per
    send would open a connection per send. A send that fails is logged: what it
    asked for is done by the next one, or by the scheduler's backstop.
    """

    def __init__(self, send: Callable[[], None], interval_s: float) -> None:
        self._send = send
        self._interval_s = interval_s
        self._cond = threading.Condition()
        self._last = float("-inf")
        self._due = False
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        with self._cond:
            if self._due:
                return  # a send is due after this request already
            now = time.monotonic()
            if now - self._last >= self._interval_s:
                self._last = now
            else:
                self._due = True
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="stream-nudge", daemon=True
                    )
                    self._thread.start()
                self._cond.notify()
                return
        self._safe_send()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due:
                    self._cond.wait()
                delay = self._last + self._interval_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            with self._cond:
                self._due = False
                self._last = time.monotonic()
            self._safe_send()

    def _safe_send(self) -> None:
        try:
            self._send()
        except Exception:  # the next send, or the scheduler's backstop, catches up
            log.warning("could not ask for the event stream to run", exc_info=True)


_nudge: tuple[Publisher, Coalescer] | None = None
_nudge_lock = threading.Lock()


def stream_nudge(rt: Runtime) -> Coalescer:
    """This process's coalescer of ``stream_events`` requests (one per publisher)."""
    global _nudge
    with _nudge_lock:
        if _nudge is None or _nudge[0] is not rt.publisher:
            publisher = rt.publisher

            def send() -> None:
                publisher.send(StreamEvents())

            _nudge = (publisher, Coalescer(send, STREAM_NUDGE_INTERVAL_S))
        return _nudge[1]


def stream_after_commit(rt: Runtime, session: Session) -> None:
    """Ask for the stream to run once this change has committed.

    Coalesced per process: under a burst, one ``stream_events`` message per
    ``STREAM_NUDGE_INTERVAL_S`` instead of one per change (each run publishes every
    committed row it finds, up to ``STREAM_BATCH`` per batch).
    """
    after_commit(session, stream_nudge(rt).request)
