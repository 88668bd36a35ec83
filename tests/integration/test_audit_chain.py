"""The audit chain on the real PostgreSQL: sealing, and every kind of tampering it reveals.

Other tests write audit rows all the time, so each test tags its own rows and
asserts on them, plus on the verification of the whole chain. Tampering happens
in a transaction that is always rolled back (or, for the CLI, which reads in its
own connection, is committed and then restored), so the chain stays intact for
every later test.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from shared import audit
from shared.audit import SEAL_LOCK_KEY, ChainProblem, ProblemKind, seal_batch, seal_pending, verify
from shared.cli import main
from shared.db.models import AuditChainHead, AuditRecord
from shared.db.session import Database
from shared.messages import Publisher, SealAuditLog
from tests.support.waiting import wait_until

# --- helpers ---------------------------------------------------------------------------------


def write_rows(db: Database, tag: str, count: int, *, start: int = 0) -> None:
    """``count`` audit rows about subjects ``<tag>-<n>``, committed together."""
    with db.transaction() as session:
        for n in range(start, start + count):
            audit.record(
                session,
                actor="test",
                action="audit.test",
                subject_type="test",
                subject_id=f"{tag}-{n}",
                detail={"n": n, "tag": tag},
            )


def seqs_by_id(db: Database, tag: str) -> dict[int, int | None]:
    """This test's rows: id → seq (None while unsealed)."""
    with db.transaction() as session:
        rows = session.execute(
            select(AuditRecord.id, AuditRecord.seq)
            .where(AuditRecord.subject_id.like(f"{tag}-%"))
            .order_by(AuditRecord.id)
        ).all()
    return {row.id: row.seq for row in rows}


def seal_all(db: Database, tag: str) -> dict[int, int]:
    """Seal until every row of ``tag`` is sealed (another sealer may be at work meanwhile)."""

    def sealed() -> dict[int, int] | None:
        seal_pending(db)
        seqs = seqs_by_id(db, tag)
        return (
            {i: s for i, s in seqs.items() if s is not None} if None not in seqs.values() else None
        )

    return wait_until(sealed, timeout_s=30, what=f"the rows of {tag} to be sealed")


def write_and_seal(db: Database, count: int) -> dict[int, int]:
    tag = uuid.uuid4().hex[:12]
    write_rows(db, tag, count)
    return seal_all(db, tag)


@contextmanager
def rolled_back(db: Database) -> Iterator[Session]:
    """A transaction that is always rolled back, holding sealers off so the tail stays put."""
    with Session(db.engine) as session:
        session.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": SEAL_LOCK_KEY})
        try:
            yield session
        finally:
            session.rollback()


def found(problems: tuple[ChainProblem, ...]) -> list[tuple[ProblemKind, int | None]]:
    return [(p.kind, p.record_id if p.record_id is not None else p.seq) for p in problems]


def assert_chain_intact(db: Database) -> None:
    with db.transaction() as session:
        report = verify(session)
    assert report.problems == ()
    assert report.intact


def assert_seq_gap_free(db: Database) -> None:
    with db.transaction() as session:
        count, low, high = session.execute(
            select(
                func.count(AuditRecord.seq), func.min(AuditRecord.seq), func.max(AuditRecord.seq)
            )
        ).one()
    assert (count, low) == (high, 1)


# --- sealing ---------------------------------------------------------------------------------


def test_sealed_rows_are_chained_in_id_order_and_the_chain_verifies(db: Database) -> None:
    seqs = write_and_seal(db, 5)

    ordered = [seqs[i] for i in sorted(seqs)]
    assert ordered == sorted(ordered)
    assert len(set(ordered)) == 5
    with db.transaction() as session:
        report = verify(session)
        head = session.get(AuditChainHead, 1)
    assert report.intact
    assert report.sealed >= 5
    assert head is not None
    assert head.seq >= max(ordered)


def test_a_second_sealer_does_nothing_while_the_first_holds_the_chain(db: Database) -> None:
    tag = uuid.uuid4().hex[:12]
    write_rows(db, tag, 3)
    with Session(db.engine) as first, Session(db.engine) as second:
        first_sealed = seal_batch(first)
        second_sealed = seal_batch(second)
        first.commit()
        second.rollback()

    assert first_sealed is not None
    assert first_sealed >= 3
    assert second_sealed is None
    assert None not in seqs_by_id(db, tag).values()
    assert_chain_intact(db)


def test_rows_written_while_sealers_run_are_each_sealed_once_without_gaps(db: Database) -> None:
    tag = uuid.uuid4().hex[:12]
    done = threading.Event()
    seen_mid_run: dict[int, int] = {}

    def writer(worker: int) -> None:
        for batch in range(30):
            write_rows(db, tag, 1 + batch % 3, start=worker * 1000 + batch * 10)

    def sealer() -> None:
        while not done.is_set():
            seal_pending(db, batch_size=7)
            seen_mid_run.update({i: s for i, s in seqs_by_id(db, tag).items() if s is not None})

    with ThreadPoolExecutor(max_workers=6) as pool:
        sealers = [pool.submit(sealer) for _ in range(2)]
        for writing in [pool.submit(writer, w) for w in range(4)]:
            writing.result()
        done.set()
        for sealing in sealers:
            sealing.result()
    final = seal_all(db, tag)

    assert len(final) == 4 * 60
    assert len(set(final.values())) == len(final)
    assert seen_mid_run  # the sealers really did run while rows were being written
    assert {i: final[i] for i in seen_mid_run} == seen_mid_run  # a seal is never redone
    assert_seq_gap_free(db)
    assert_chain_intact(db)


def test_sealers_racing_never_hand_out_a_seq_twice(db: Database) -> None:
    tag = uuid.uuid4().hex[:12]
    write_rows(db, tag, 200)
    start = threading.Barrier(4)

    def race() -> int:
        start.wait()
        return sum(seal_pending(db, batch_size=5, max_batches=3) for _ in range(20))

    with ThreadPoolExecutor(max_workers=4) as pool:
        sealed = [f.result() for f in [pool.submit(race) for _ in range(4)]]
    final = seal_all(db, tag)

    assert sum(sealed) >= 1
    assert len(set(final.values())) == 200
    assert_seq_gap_free(db)
    assert_chain_intact(db)


# --- tampering -------------------------------------------------------------------------------

EDITS: dict[str, Callable[[], dict[str, Any]]] = {
    "detail": lambda: {"detail": {"n": 999}},
    "actor": lambda: {"actor": "mallory"},
    "at": lambda: {"at": AuditRecord.at + timedelta(microseconds=1)},
}


@pytest.mark.parametrize("column", sorted(EDITS))
def test_an_edited_sealed_row_is_reported_with_its_id(db: Database, column: str) -> None:
    seqs = write_and_seal(db, 3)
    target = sorted(seqs)[1]

    with rolled_back(db) as session:
        session.execute(update(AuditRecord).where(AuditRecord.id == target).values(EDITS[column]()))
        report = verify(session)

    assert found(report.problems) == [(ProblemKind.EDITED, target)]
    assert report.problems[0].seq == seqs[target]
    assert_chain_intact(db)


def test_a_deleted_middle_row_is_reported_as_deleted(db: Database) -> None:
    seqs = write_and_seal(db, 3)
    middle = sorted(seqs)[1]

    with rolled_back(db) as session:
        session.execute(delete(AuditRecord).where(AuditRecord.id == middle))
        report = verify(session)

    assert found(report.problems) == [(ProblemKind.DELETED, seqs[middle])]
    assert_chain_intact(db)


def test_a_deleted_last_row_is_reported_by_the_head(db: Database) -> None:
    write_and_seal(db, 2)

    with rolled_back(db) as session:
        last = session.scalar(select(func.max(AuditRecord.seq)))
        session.execute(delete(AuditRecord).where(AuditRecord.seq == last))
        report = verify(session)

    assert found(report.problems) == [(ProblemKind.HEAD_MISMATCH, last)]
    assert_chain_intact(db)


def test_unsealed_rows_are_counted_but_are_not_problems(db: Database) -> None:
    seal_pending(db)
    tag = uuid.uuid4().hex[:12]

    with rolled_back(db) as session:
        for n in range(4):
            audit.record(
                session, actor="t", action="a", subject_type="test", subject_id=f"{tag}-{n}"
            )
        session.flush()
        report = verify(session)

    assert report.unsealed >= 4
    assert report.intact


# --- the command line ------------------------------------------------------------------------


def test_audit_seal_prints_how_many_rows_it_sealed(db: Database) -> None:
    tag = uuid.uuid4().hex[:12]
    write_rows(db, tag, 3)

    result = CliRunner().invoke(main, ["audit", "seal"])

    assert result.exit_code == 0, result.output
    printed = re.search(r"^sealed (\d+) audit rows$", result.output, flags=re.MULTILINE)
    assert printed is not None, result.output
    assert int(printed.group(1)) >= 3
    assert None not in seqs_by_id(db, tag).values()


def test_audit_verify_exits_0_when_intact_and_1_naming_a_tampered_row(db: Database) -> None:
    seqs = write_and_seal(db, 2)
    target = min(seqs)

    intact = CliRunner().invoke(main, ["audit", "verify"])
    try:
        with db.transaction() as session:
            session.execute(
                update(AuditRecord).where(AuditRecord.id == target).values(actor="test!")
            )
        broken = CliRunner().invoke(main, ["audit", "verify"])
    finally:
        with db.transaction() as session:
            session.execute(
                update(AuditRecord).where(AuditRecord.id == target).values(actor="test")
            )

    assert intact.exit_code == 0, intact.output
    assert "intact" in intact.output
    assert broken.exit_code == 1, broken.output
    assert f"edited: seq {seqs[target]}, id {target}:" in broken.output
    assert_chain_intact(db)


# --- the actor -------------------------------------------------------------------------------


def test_the_seal_audit_log_actor_seals_through_the_broker(
    db: Database, broker: Any, worker: Any
) -> None:
    tag = uuid.uuid4().hex[:12]
    write_rows(db, tag, 4)

    Publisher(broker).send(SealAuditLog())

    wait_until(
        lambda: None not in seqs_by_id(db, tag).values(), timeout_s=30, what="the actor to seal"
    )
    assert_chain_intact(db)
