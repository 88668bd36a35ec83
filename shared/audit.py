"""The audit trail: who did what to which record, and a hash chain that shows any edit.

Writers (:func:`record`) insert rows *unsealed*, in the caller's unit of work, and
never wait for anything: the audit log adds no lock to a business transaction.

The sealer (:func:`seal_pending`, run by the ``seal_audit_log`` actor and by
``malipo audit seal``) chains committed rows afterwards. Under an advisory lock
(one sealer at a time; a second one returns at once), it gives each unsealed row,
in ``id`` order, the next ``seq`` and ``hash = sha256(prev_hash + canonical(row))``,
then moves the one-row chain head. The chain is ordered by ``seq`` (seal order),
not by ``id``: a row that commits late is sealed by a later run. Until a row is
sealed it is not protected.

:func:`verify` walks the sealed rows by ``seq`` and reports every edited row,
every missing ``seq`` and a head that does not match the last sealed row.

Canonical encoding of a row (:func:`canonical_entry`): the UTF-8 bytes of
:func:`shared.crypto.canonical_json` (sorted keys, no spaces, non-ASCII kept) of
``{"id", "seq", "at", "actor", "action", "subject_type", "subject_id", "detail",
"request_id"}``, where ``at`` is ISO-8601 in UTC with microseconds
(``2026-11-22T07:03:23.761165+00:00``). ``prev_hash`` is the previous row's hash as
64 lowercase hex digits (64 zeros before the first row). Changing this encoding
invalidates every existing chain.
"""

from __future__ import annotations

import enum
import getpass
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import Row, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.crypto import canonical_json, sha256_hex
from shared.db.models import AuditChainHead, AuditRecord
from shared.db.session import Database

log = structlog.stdlib.get_logger(__name__)

GENESIS_HASH = "0" * 64
SEAL_LOCK_KEY = 0x61756469746C6F67  # b"auditlog"; the scheduler's leader lock is another key
SEAL_BATCH = 5_000
SEAL_MAX_BATCHES = 40  # per call: bounds one actor run; the next run carries on
VERIFY_FETCH = 2_000
MAX_LISTED_PROBLEMS = 1_000
HEAD_ID = 1


# Built once: every state change appends a row.
_APPEND = insert(AuditRecord)

# Who a change is recorded against when its caller names no one (fixtures, seeding).
SYSTEM_ACTOR = "system"
ACTOR_LENGTH = 100  # audit_log.actor


def cli_actor() -> str:
    """The actor for a change made from the command line: ``operator:<login name>``.

    ``cli`` when the process has no login name to give (a container's arbitrary uid).
    """
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        return "cli"
    return f"operator:{user}"[:ACTOR_LENGTH] if user else "cli"


def key_actor(api_key_id: object) -> str:
    """The actor for a change made over HTTP: ``key:<api key id>`` (never the key itself)."""
    return f"key:{api_key_id}"


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: object,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one unsealed audit row; commits or rolls back with the change it describes."""
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    session.connection().execute(
        _APPEND,
        {
            "actor": actor,
            "action": action,
            "subject_type": subject_type,
            "subject_id": str(subject_id),
            "detail": detail or {},
            "request_id": str(request_id) if request_id else None,
        },
    )


# --- hashing (pure) --------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditEntry:
    """The hashed content of one audit row: every column but ``prev_hash`` and ``hash``."""

    id: int
    seq: int
    at: datetime
    actor: str
    action: str
    subject_type: str
    subject_id: str
    detail: dict[str, Any]
    request_id: str | None


@dataclass(frozen=True)
class ChainHead:
    """Where the chain ends: the last sealed ``seq`` and its hash (genesis: 0, 64 zeros)."""

    seq: int
    hash: str


GENESIS = ChainHead(seq=0, hash=GENESIS_HASH)


@dataclass(frozen=True)
class SealedRow:
    """An entry with the two chain columns as stored (None where a row lacks them)."""

    entry: AuditEntry
    prev_hash: str | None
    hash: str | None


def canonical_entry(entry: AuditEntry) -> bytes:
    """The stable byte encoding of a row's content (see the module docstring)."""
    return canonical_json(
        {
            "id": entry.id,
            "seq": entry.seq,
            "at": utc_timestamp(entry.at),
            "actor": entry.actor,
            "action": entry.action,
            "subject_type": entry.subject_type,
            "subject_id": entry.subject_id,
            "detail": entry.detail,
            "request_id": entry.request_id,
        }
    )


def utc_timestamp(at: datetime) -> str:
    """ISO-8601 in UTC with microseconds; the same instant always gives the same text."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def chain_hash(prev_hash: str, entry: AuditEntry) -> str:
    """``sha256(prev_hash + canonical(entry))`` as 64 lowercase hex digits."""
    return sha256_hex(prev_hash.encode() + canonical_entry(entry))


def link(head: ChainHead, entry: AuditEntry) -> SealedRow:
    """Seal ``entry`` after ``head``; its ``seq`` must be ``head.seq + 1``."""
    if entry.seq != head.seq + 1:
        raise ValueError(f"seq {entry.seq} cannot follow seq {head.seq}")
    return SealedRow(entry, prev_hash=head.hash, hash=chain_hash(head.hash, entry))


def head_of(row: SealedRow) -> ChainHead:
    """The chain head once ``row`` is the last sealed row."""
    return ChainHead(seq=row.entry.seq, hash=row.hash or "")


# --- sealing ---------------------------------------------------------------------------------

_CONTENT = (
    AuditRecord.id,
    AuditRecord.at,
    AuditRecord.actor,
    AuditRecord.action,
    AuditRecord.subject_type,
    AuditRecord.subject_id,
    AuditRecord.detail,
    AuditRecord.request_id,
)


def _entry(row: Row[Any], seq: int) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        seq=seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        subject_type=row.subject_type,
        subject_id=row.subject_id,
        detail=row.detail,
        request_id=row.request_id,
    )


def read_head(session: Session) -> ChainHead | None:
    """The stored chain head, or None before the first seal."""
    head = session.get(AuditChainHead, HEAD_ID, populate_existing=True)
    return None if head is None else ChainHead(seq=head.seq, hash=head.hash)


def seal_batch(session: Session, *, limit: int = SEAL_BATCH) -> int | None:
    """Seal up to ``limit`` committed, unsealed rows in the caller's transaction.

    Returns how many were sealed, or None when another sealer holds the lock (this
    one then does nothing). The lock is transaction-scoped: commit promptly.
    """
    if not session.execute(
        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": SEAL_LOCK_KEY}
    ).scalar():
        return None
    head = read_head(session) or GENESIS
    rows = session.execute(
        select(*_CONTENT).where(AuditRecord.seq.is_(None)).order_by(AuditRecord.id).limit(limit)
    ).all()
    if not rows:
        return 0
    sealed: list[dict[str, Any]] = []
    for row in rows:
        new = link(head, _entry(row, head.seq + 1))
        sealed.append(
            {"id": row.id, "seq": new.entry.seq, "prev_hash": head.hash, "hash": new.hash}
        )
        head = head_of(new)
    session.execute(update(AuditRecord), sealed)  # bulk UPDATE by primary key
    _store_head(session, head)
    return len(rows)


def _store_head(session: Session, head: ChainHead) -> None:
    upsert = insert(AuditChainHead).values(id=HEAD_ID, seq=head.seq, hash=head.hash)
    session.execute(
        upsert.on_conflict_do_update(
            index_elements=[AuditChainHead.id],
            set_={"seq": head.seq, "hash": head.hash, "sealed_at": func.now()},
        )
    )


def seal_pending(
    db: Database, *, batch_size: int = SEAL_BATCH, max_batches: int = SEAL_MAX_BATCHES
) -> int:
    """Seal committed rows, a transaction per batch, until none is left; returns how many.

    Safe to run anywhere, any time, concurrently: a run that finds another sealer
    at work returns what it sealed so far (often 0) and leaves the rest to it. Stops
    after ``max_batches`` so one run stays well inside the actor's time limit; the
    next run carries on.
    Transient database errors surface as ``DatabaseUnavailable``; batches already
    committed stay sealed.
    """
    total = 0
    for _ in range(max_batches):
        with db.transaction() as session:
            sealed = seal_batch(session, limit=batch_size)
        if sealed is None:
            log.info("another sealer holds the audit chain; leaving it the work")
            break
        total += sealed
        if sealed < batch_size:
            break
    if total:
        log.info("audit rows sealed", count=total)
    return total


# --- verification ----------------------------------------------------------------------------


class ProblemKind(enum.StrEnum):
    EDITED = "edited"
    DELETED = "deleted"
    HEAD_MISMATCH = "head mismatch"


@dataclass(frozen=True)
class ChainProblem:
    """One break in the chain; ``seq``/``record_id`` name the row, where one is known."""

    kind: ProblemKind
    seq: int | None
    record_id: int | None
    description: str

    def __str__(self) -> str:
        where = [f"seq {self.seq}"] if self.seq is not None else []
        where += [f"id {self.record_id}"] if self.record_id is not None else []
        return f"{self.kind}: {', '.join(where) or 'chain'}: {self.description}"


@dataclass(frozen=True)
class VerificationReport:
    """What :func:`verify` found. ``problems`` lists the first ``MAX_LISTED_PROBLEMS``."""

    sealed: int
    unsealed: int
    head: ChainHead | None
    problem_count: int
    problems: tuple[ChainProblem, ...]

    @property
    def intact(self) -> bool:
        """True when no sealed row was edited or deleted (unsealed rows are not problems)."""
        return self.problem_count == 0


@dataclass
class ChainWalk:
    """Checks sealed rows fed in ``seq`` order, then the head; pure, so it is unit-tested."""

    sealed: int = 0
    problem_count: int = 0
    problems: list[ChainProblem] = field(default_factory=list)
    last: SealedRow | None = None

    def visit(self, row: SealedRow) -> None:
        self.sealed += 1
        if row.hash != chain_hash(row.prev_hash or "", row.entry):
            self._report(ProblemKind.EDITED, row, "its content no longer matches its hash")
        self._check_link(row)
        self.last = row

    def _check_link(self, row: SealedRow) -> None:
        previous = head_of(self.last) if self.last is not None else GENESIS
        if row.entry.seq > previous.seq + 1:
            self._add(self._gap(previous.seq + 1, row))
        elif row.prev_hash != previous.hash and chain_hash(previous.hash, row.entry) != row.hash:
            # A broken link that this row's own prev_hash does not explain (that case is
            # reported above): the previous row's hash was rewritten.
            if self.last is None:
                self._report(ProblemKind.EDITED, row, "the chain does not start from genesis")
            else:
                self._report(ProblemKind.EDITED, self.last, "its hash was rewritten")

    def _gap(self, first_missing: int, row: SealedRow) -> ChainProblem:
        after = f"after id {self.last.entry.id}" if self.last is not None else "at the start"
        missing = f"seq {first_missing}..{row.entry.seq - 1} missing"
        return ChainProblem(
            ProblemKind.DELETED,
            first_missing,
            None,
            f"{missing} ({after}, before id {row.entry.id})",
        )

    def finish(self, head: ChainHead | None, unsealed: int) -> VerificationReport:
        """Compare the stored head with the last sealed row and build the report."""
        self._check_head(head)
        return VerificationReport(
            sealed=self.sealed,
            unsealed=unsealed,
            head=head,
            problem_count=self.problem_count,
            problems=tuple(self.problems),
        )

    def _check_head(self, head: ChainHead | None) -> None:
        last = head_of(self.last) if self.last is not None else None
        if head == last:
            return
        if head is None:
            self._head_problem(None, "the chain head row is missing")
        elif last is None or head.seq > last.seq:
            first = last.seq + 1 if last else 1
            self._head_problem(
                head.seq, f"seq {first}..{head.seq} missing at the tail (or the head was edited)"
            )
        elif head.seq < last.seq:
            self._head_problem(head.seq, f"sealed rows run past the head, up to seq {last.seq}")
        else:
            self._head_problem(head.seq, "the head's hash differs from the last sealed row's")

    def _head_problem(self, seq: int | None, description: str) -> None:
        self._add(ChainProblem(ProblemKind.HEAD_MISMATCH, seq, None, description))

    def _report(self, kind: ProblemKind, row: SealedRow, description: str) -> None:
        self._add(ChainProblem(kind, row.entry.seq, row.entry.id, description))

    def _add(self, problem: ChainProblem) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            self.problems.append(problem)


def walk(rows: Iterable[SealedRow], head: ChainHead | None, unsealed: int) -> VerificationReport:
    """Verify sealed rows given in ``seq`` order against ``head`` (pure)."""
    chain = ChainWalk()
    for row in rows:
        chain.visit(row)
    return chain.finish(head, unsealed)


def verify(session: Session) -> VerificationReport:
    """Check the whole chain in the caller's transaction; reads only, seals nothing.

    Holds the sealer lock in shared mode, so no seal commits half-way through the
    walk (sealers skip their turn meanwhile; writers are never affected). Streams
    the rows, so memory does not grow with the table.
    """
    session.execute(text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": SEAL_LOCK_KEY})
    head = read_head(session)
    unsealed = (
        session.scalar(
            select(func.count()).select_from(AuditRecord).where(AuditRecord.seq.is_(None))
        )
        or 0
    )
    return walk(_sealed_rows(session), head, unsealed)


def _sealed_rows(session: Session) -> Iterator[SealedRow]:
    rows = session.execute(
        select(*_CONTENT, AuditRecord.seq, AuditRecord.prev_hash, AuditRecord.hash)
        .where(AuditRecord.seq.is_not(None))
        .order_by(AuditRecord.seq)
        .execution_options(yield_per=VERIFY_FETCH)
    )
    for row in rows:
        yield SealedRow(_entry(row, row.seq), prev_hash=row.prev_hash, hash=row.hash)
