"""Replaying a dead letter: the decision commits, on record, before the message is published.

Publishing inside the transaction that marks the row and writes its audit row would put a
message on the bus whose audit row may never commit (the commit fails, the process dies):
an effect no one is on record for. So a replay is three steps:

1. one transaction runs :func:`shared.archive.replay` with the message held back
   (:class:`HeldMessages`): the row is marked ``replayed``, the ``dead_letter.replayed``
   audit row written, and both commit;
2. then the held message is published (publisher confirms);
3. if RabbitMQ does not take it, a second transaction puts the row back to ``dead`` (only
   if it is still that replay: same ``replay_count``) with a ``dead_letter.replay_failed``
   audit row, and the caller gets the error (``503`` over HTTP, an error from the CLI).
   The dead letter is replayable again at once.

So ``replayed`` means: an operator asked, on record, and RabbitMQ confirmed the message.
The one window left is a process that dies between the commit and the confirm (or a
database that fails step 3): the row says ``replayed`` with no message on the bus. A
``replayed`` row is refused unless the replay is forced, so the remedy is to replay it with
force (``malipo dlq replay ID --force``, or ``{"force": true}`` over HTTP). Check its effect
first: if the message did reach the bus after all, a forced replay runs it a second time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError

from shared import audit
from shared.archive import replay
from shared.db.models import DeadLetter
from shared.db.session import Database, DatabaseUnavailable
from shared.messages import ActorSpec, Publisher

log = structlog.stdlib.get_logger(__name__)


@dataclass(frozen=True)
class HeldMessage:
    """One message as it was handed to :meth:`Publisher.enqueue`, id fixed."""

    spec: ActorSpec
    kwargs: dict[str, Any]
    delay_ms: int | None
    options: dict[str, Any]
    message_id: str


class HeldMessages(Publisher):
    """A publisher that publishes nothing: it keeps each message, to send after the commit."""

    def __init__(self, publisher: Publisher) -> None:
        super().__init__(publisher.broker)
        self.held: list[HeldMessage] = []

    def enqueue(
        self,
        spec: ActorSpec,
        kwargs: dict[str, Any],
        *,
        delay_ms: int | None = None,
        options: dict[str, Any] | None = None,
        message_id: str | None = None,
    ) -> str:
        held = HeldMessage(
            spec, dict(kwargs), delay_ms, dict(options or {}), message_id or str(uuid.uuid4())
        )
        self.held.append(held)
        return held.message_id

    def release(self, publisher: Publisher) -> None:
        """Publish what was held, in order, with the ids it was given."""
        for held in self.held:
            publisher.enqueue(
                held.spec,
                held.kwargs,
                delay_ms=held.delay_ms,
                options=held.options,
                message_id=held.message_id,
            )

    def close(self) -> None:
        """The broker is the real publisher's: it stays open."""


def replay_dead_letter(
    db: Database,
    publisher: Publisher,
    dead_letter_id: int,
    *,
    operator: str,
    reason: str,
    force: bool = False,
) -> bool:
    """Replay one dead letter (see the module docstring); False if there is none.

    Raises :class:`shared.archive.NotReplayable` as :func:`shared.archive.replay` does
    (:class:`shared.archive.AlreadyReplayed` for a ``replayed`` row unless ``force``), and
    whatever the publisher raised (``BrokerUnavailable``) once the row is dead again.
    """
    held = HeldMessages(publisher)
    with db.transaction() as session:
        if not replay(session, held, dead_letter_id, operator=operator, reason=reason, force=force):
            return False
        row = session.get(DeadLetter, dead_letter_id)
        number = row.replay_count if row is not None else 0
    try:
        held.release(publisher)
    except Exception as exc:
        _not_published(db, dead_letter_id, number, operator, exc)
        raise
    return True


def _not_published(
    db: Database, dead_letter_id: int, number: int, operator: str, error: Exception
) -> None:
    """Put the row back to dead, on record; a second operator's action since is left alone."""
    failure = type(error).__name__  # not its text: a broker error may carry its URL
    try:
        with db.transaction() as session:
            row = session.get(DeadLetter, dead_letter_id, with_for_update=True)
            if row is None or (row.status, row.replay_count) != ("replayed", number):
                return
            row.status = "dead"
            audit.record(
                session,
                actor=operator,
                action="dead_letter.replay_failed",
                subject_type="dead_letter",
                subject_id=row.id,
                detail={"message_id": row.message_id, "replay": number, "error": failure},
            )
    except (DatabaseUnavailable, SQLAlchemyError) as undo:
        log.error(
            "dead letter marked replayed but not published: replay it with force "
            "(malipo dlq replay ID --force)",
            dead_letter_id=dead_letter_id,
            error=failure,
            undo_error=type(undo).__name__,
        )
        return
    log.warning(
        "dead letter not replayed: the broker did not take it; it is dead again",
        dead_letter_id=dead_letter_id,
        error=failure,
    )
