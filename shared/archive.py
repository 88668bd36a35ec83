"""The dead-letter archive: messages that failed for good, kept until an operator acts.

RabbitMQ keeps a failed message in ``<queue>.XQ`` only for a while (7 days by
default); the archive keeps it in PostgreSQL for good. Workers archive a message
as they reject it; ``drain_dead_letters`` moves whatever is in the ``.XQ`` queues
into the archive too (it is keyed by message id, so one message is archived
once). Operators list, inspect, replay (re-enqueued on its original queue with
its retry count reset) or discard (with a reason) — each action audited with
who and why. A dead letter is replayed once: a row already ``replayed`` is
refused (:class:`AlreadyReplayed`) unless the operator forces it, since a second
run of some messages is new work (a customer retry opens another cycle). A
replay that fails for good again makes the row ``dead`` again, replayable as
before.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared import audit
from shared.db.models import DeadLetter
from shared.domain.phone import mask_phone_numbers
from shared.messages import ActorSpec, Publisher

FIRST_FAILED_AT = "first_failed_at"
# The number of the replay a message is (1 for the first), in its options.
REPLAY = "malipo_replay"
# Options that describe a past run of the message, not the message itself.
RUN_OPTIONS = frozenset(
    {"retries", "traceback", "eta", "requeue_timestamp", "redelivered", FIRST_FAILED_AT}
)


@dataclass(frozen=True)
class Failure:
    """What to archive about one message that failed for good."""

    message: dict[str, Any]
    error: str
    traceback: str | None
    failed_at: datetime
    retries: int

    @property
    def message_id(self) -> str:
        return str(self.message["message_id"])

    @property
    def first_failed_at(self) -> datetime:
        noted = self.message.get("options", {}).get(FIRST_FAILED_AT)
        try:
            return datetime.fromisoformat(noted) if noted else self.failed_at
        except (TypeError, ValueError):
            return self.failed_at


def failure_of(
    message: dict[str, Any],
    exception: BaseException | None,
    now: datetime,
    *,
    retries: int | None = None,
) -> Failure:
    """Describe a rejected message (``message`` as ``dramatiq.Message.asdict()``).

    ``retries``: how many times it was retried; by default the count dramatiq kept.
    """
    options = message.get("options", {})
    retried = int(options.get("retries", 0)) if retries is None else retries
    if exception is not None:
        error = f"{type(exception).__name__}: {exception}"[:2000]
        trace = options.get("traceback") or "".join(traceback.format_exception(exception))
    else:
        trace = options.get("traceback")
        error = _last_line(trace) or "rejected without an exception (e.g. no such actor)"
    return Failure(message=message, error=error, traceback=trace, failed_at=now, retries=retried)


def _last_line(trace: str | None) -> str | None:
    lines = [line for line in (trace or "").strip().splitlines() if line.strip()]
    return lines[-1][:2000] if lines else None


def archive(session: Session, failure: Failure, *, refresh: bool = True) -> int | None:
    """Archive a dead message once per message id; returns its archive id.

    ``refresh``: a new failure of an archived message (one replayed, say) makes it
    dead again with the new error; without it (a copy from ``.XQ``), an existing
    row is left as it is and None is returned, unless the copy is the failure of
    the row's latest replay (it carries that replay's number): then the row is
    dead again, as if the worker had archived it (it could not: PostgreSQL was
    down, say).
    """
    message = failure.message
    statement = insert(DeadLetter).values(
        message_id=failure.message_id,
        queue=_canonical_queue(str(message["queue_name"])),
        actor=str(message["actor_name"]),
        message=message,
        error=failure.error,
        traceback=failure.traceback,
        retries=failure.retries,
        first_failed_at=failure.first_failed_at,
        last_failed_at=failure.failed_at,
    )
    dead_again = {
        "error": statement.excluded.error,
        "traceback": statement.excluded.traceback,
        "retries": statement.excluded.retries,
        "last_failed_at": statement.excluded.last_failed_at,
        "message": statement.excluded.message,
        # A replayed message that fails for good again is dead again.
        "status": "dead",
    }
    if not refresh:
        replay = message.get("options", {}).get(REPLAY)
        if not isinstance(replay, int):
            upsert = statement.on_conflict_do_nothing(index_elements=["message_id"])
        else:
            upsert = statement.on_conflict_do_update(
                index_elements=["message_id"],
                set_=dead_again,
                where=(DeadLetter.status == "replayed") & (DeadLetter.replay_count == replay),
            )
        created = session.execute(upsert.returning(DeadLetter.id)).scalar_one_or_none()
        return int(created) if created is not None else None
    archived = session.execute(
        statement.on_conflict_do_update(index_elements=["message_id"], set_=dead_again).returning(
            DeadLetter.id
        )
    ).scalar_one()
    return int(archived)


def _canonical_queue(name: str) -> str:
    for suffix in (".DQ", ".XQ"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


@dataclass(frozen=True)
class Filters:
    queue: str | None = None
    actor: str | None = None
    since: datetime | None = None
    error: str | None = None
    status: str | None = "dead"


def select_dead_letters(filters: Filters) -> Select[Any]:
    query = select(DeadLetter)
    if filters.status:
        query = query.where(DeadLetter.status == filters.status)
    if filters.queue:
        query = query.where(DeadLetter.queue == filters.queue)
    if filters.actor:
        query = query.where(DeadLetter.actor == filters.actor)
    if filters.since:
        query = query.where(DeadLetter.last_failed_at >= filters.since)
    if filters.error:
        query = query.where(DeadLetter.error.ilike(f"%{_escape_like(filters.error)}%", escape="\\"))
    return query.order_by(DeadLetter.id)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_dead_letters(
    session: Session, filters: Filters, *, limit: int = 100, after_id: int | None = None
) -> list[DeadLetter]:
    query = select_dead_letters(filters)
    if after_id is not None:
        query = query.where(DeadLetter.id > after_id)
    return list(session.scalars(query.limit(limit)))


class NotReplayable(Exception):
    """A discarded dead letter stays discarded; a replayed one is replayed again only if forced."""


class AlreadyReplayed(NotReplayable):
    """The dead letter was replayed already (and has not failed again since): pass ``force``."""


def replay(
    session: Session,
    publisher: Publisher,
    dead_letter_id: int,
    *,
    operator: str,
    reason: str,
    force: bool = False,
) -> bool:
    """Re-enqueue one dead letter on its original queue, retries reset; False if there is none.

    The message is published before the row is marked: if the commit is lost, the
    message is replayed again later, which its idempotent actor turns into a no-op.
    It keeps its message id, so if it fails for good again, this same row is dead
    again (with the new error) instead of a second, unrelated dead letter.

    A row already ``replayed`` raises :class:`AlreadyReplayed` (nothing published,
    nothing audited) unless ``force``; a forced replay is audited with ``"forced": True``.
    A discarded row raises :class:`NotReplayable`, forced or not.
    """
    row = session.get(DeadLetter, dead_letter_id, with_for_update=True)
    if row is None:
        return False
    if row.status == "discarded":
        raise NotReplayable(f"dead letter {dead_letter_id} was discarded: {row.discard_reason}")
    if row.status == "replayed" and not force:
        when = row.replayed_at.isoformat(timespec="seconds") if row.replayed_at else "earlier"
        raise AlreadyReplayed(
            f"dead letter {dead_letter_id} was already replayed at {when} "
            f"by {row.handled_by or 'an unknown operator'} (replay {row.replay_count}); "
            "replaying it again needs force"
        )
    message = row.message
    options = {k: v for k, v in message.get("options", {}).items() if k not in RUN_OPTIONS}
    options[REPLAY] = row.replay_count + 1  # tells this replay's failure from older copies
    spec = ActorSpec(str(message["actor_name"]), row.queue)
    publisher.enqueue(
        spec, dict(message.get("kwargs") or {}), options=options, message_id=row.message_id
    )
    detail: dict[str, Any] = {
        "message_id": row.message_id,
        "actor": row.actor,
        "queue": row.queue,
        "why": reason,
    }
    if row.status == "replayed":  # only a forced replay gets here
        detail["forced"] = True
    now = datetime.now(UTC)
    row.status, row.replayed_at, row.handled_by = "replayed", now, operator
    row.replay_count += 1
    audit.record(
        session,
        actor=operator,
        action="dead_letter.replayed",
        subject_type="dead_letter",
        subject_id=row.id,
        detail=detail,
    )
    return True


def discard(session: Session, dead_letter_id: int, *, operator: str, reason: str) -> bool:
    """Give up on a dead letter, saying why; False if there is none."""
    if not reason.strip():
        raise ValueError("a reason is required to discard a dead letter")
    row = session.get(DeadLetter, dead_letter_id, with_for_update=True)
    if row is None:
        return False
    row.status, row.discarded_at = "discarded", datetime.now(UTC)
    row.discard_reason, row.handled_by = reason.strip()[:500], operator
    audit.record(
        session,
        actor=operator,
        action="dead_letter.discarded",
        subject_type="dead_letter",
        subject_id=row.id,
        detail={"message_id": row.message_id, "actor": row.actor, "why": row.discard_reason},
    )
    return True


def drain_dead_letter_queues(
    channel: Any, queues: Sequence[str], store: Callable[[Failure], None], *, limit: int = 1000
) -> int:
    """Archive up to ``limit`` messages from the ``.XQ`` queues, acknowledging each once stored."""
    drained = 0
    for queue in queues:
        while drained < limit:
            method, _, body = channel.basic_get(f"{queue}.XQ", auto_ack=False)
            if method is None:
                break
            store(failure_of(_decoded(body, queue), None, datetime.now(UTC)))
            channel.basic_ack(method.delivery_tag)
            drained += 1
    return drained


def _decoded(body: bytes, queue: str) -> dict[str, Any]:
    try:
        message = json.loads(body)
        if isinstance(message, dict) and "message_id" in message:
            return message
    except ValueError:
        pass
    # Not a dramatiq message: keep it whole, under a stable id, for an operator to look at.
    return {
        "message_id": f"undecodable-{hashlib.sha256(body).hexdigest()[:32]}",
        "queue_name": queue,
        "actor_name": "(undecodable)",
        "args": [],
        "kwargs": {"body_b64": base64.b64encode(body).decode()},
        "options": {},
    }


def view(row: DeadLetter, *, full: bool = False) -> dict[str, Any]:
    """A dead letter for operators: the raw callback body decoded and masked, never in clear."""
    summary: dict[str, Any] = {
        "id": row.id,
        "message_id": row.message_id,
        "queue": row.queue,
        "actor": row.actor,
        "status": row.status,
        "error": mask_phone_numbers(row.error),
        "retries": row.retries,
        "first_failed_at": row.first_failed_at.isoformat(),
        "last_failed_at": row.last_failed_at.isoformat(),
        "replay_count": row.replay_count,
        "replayed_at": row.replayed_at.isoformat() if row.replayed_at else None,
        "discarded_at": row.discarded_at.isoformat() if row.discarded_at else None,
        "discard_reason": row.discard_reason,
        "handled_by": row.handled_by,
    }
    if full:
        summary["traceback"] = mask_phone_numbers(row.traceback or "")
        summary["kwargs"] = masked_kwargs(row.message.get("kwargs") or {})
        summary["options"] = row.message.get("options", {})
    return summary


def masked_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    shown = {}
    for key, value in kwargs.items():
        if key == "body_b64" and isinstance(value, str):
            try:
                value = base64.b64decode(value, validate=True).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                value = "(not base64)"
            shown["body"] = mask_phone_numbers(value)
            continue
        shown[key] = json.loads(mask_phone_numbers(json.dumps(value)))
    return shown
