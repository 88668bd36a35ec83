"""Archiving dead letters: as workers reject them, and from RabbitMQ's ``.XQ`` queues.

:class:`ArchiveMiddleware` writes a message to the ``dead_letters`` table just
before the worker rejects it for good (retries exhausted, or a permanent error),
so the archive has it before RabbitMQ's dead-letter TTL could drop it. If
PostgreSQL is down at that moment, the ``.XQ`` copy remains, and
``drain_dead_letters`` (scheduled) archives it later; the archive is keyed by
message id, so the two paths never make two rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import Middleware

from shared.archive import FIRST_FAILED_AT, Failure, archive, drain_dead_letter_queues, failure_of
from shared.messages import ALL_ACTORS, DRAIN_DEAD_LETTERS, DrainDeadLetters
from workers.broker import POLICIES, broker
from workers.runtime import runtime

log = structlog.stdlib.get_logger(__name__)


class ArchiveMiddleware(Middleware):
    """Note when a message first failed; archive every message the worker is about to reject.

    Added after the Retries middleware, so its ``after_process_message`` runs first
    (dramatiq calls "after" hooks in reverse order) and the first failure's time
    travels with the message through its retries.
    """

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        if exception is not None:
            message.options.setdefault(FIRST_FAILED_AT, datetime.now(UTC).isoformat())

    def before_nack(self, broker: Any, message: Any) -> None:
        exception = getattr(message, "_exception", None)
        retries = retries_made(broker, message, exception)
        failure = failure_of(message.asdict(), exception, datetime.now(UTC), retries=retries)
        try:
            store(failure)
        except Exception as exc:  # noqa: BLE001 - the .XQ copy stays; the drain archives it
            log.warning(
                "dead letter not archived yet", message_id=failure.message_id, error=str(exc)
            )
            return
        log.error(
            "message dead-lettered",
            dead_message_id=failure.message_id,
            actor=failure.message.get("actor_name"),
            error=failure.error[:300],
            retries=failure.retries,
        )


def retries_made(broker: Any, message: Any, exception: BaseException | None) -> int:
    """Retries before the final failure. dramatiq counts the final failure of a message
    that exhausted its retries, but not one that failed at once (``throws``)."""
    count = int(message.options.get("retries", 0))
    actor = broker.actors.get(message.actor_name)
    throws = actor.options.get("throws") if actor is not None else None
    failed_at_once = exception is None or (throws is not None and isinstance(exception, throws))
    return count if failed_at_once else max(count - 1, 0)


def store(failure: Failure) -> None:
    with runtime().db.transaction() as session:
        archive(session, failure)


def store_if_new(failure: Failure) -> None:
    """For the drain: a copy of a message already archived changes nothing."""
    with runtime().db.transaction() as session:
        archive(session, failure, refresh=False)


broker.add_middleware(ArchiveMiddleware())


@dramatiq.actor(
    actor_name=DRAIN_DEAD_LETTERS.actor_name,
    queue_name=DRAIN_DEAD_LETTERS.queue_name,
    **POLICIES[DRAIN_DEAD_LETTERS.actor_name].actor_options(),
)
def drain_dead_letters(**fields: object) -> None:
    DrainDeadLetters.from_kwargs(fields)
    drained = drain(runtime().publisher.broker)
    if drained:
        log.info("dead letters archived from RabbitMQ", count=drained)


def drain(rabbitmq: Any) -> int:
    """Archive what sits in every malipo queue's ``.XQ``; each message is acked once stored."""
    queues = sorted({spec.queue_name for spec in ALL_ACTORS})
    for queue in queues:
        rabbitmq.declare_queue(queue, ensure=True)
    return drain_dead_letter_queues(rabbitmq.channel, queues, store_if_new)
