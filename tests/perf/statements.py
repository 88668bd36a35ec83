"""Baseline 4: the SQL one applied callback issues, replayed by a bare psycopg loop.

Baseline 3 (one-row commits) says what a commit costs; this one says what *this
schema* costs per callback on this machine. A child process with the bench's
environment applies one real Daraja success callback through the worker's own code
(``CallbackApplication``) and records, from SQLAlchemy's ``before_cursor_execute``
and transaction events, every statement it sent and where each transaction
committed. Each floor connection then replays that sequence for payments of its
own, with the template payment's ids swapped for the replayed payment's:

- the payment id, its attempt id, its checkout id and the receipt, wherever they
  occur in a parameter (strings are substituted inside too: the event key);
- every other UUID the worker generated (the outbox row's, the audit row's) gets
  a fresh one per replay, the same one wherever it recurs within that replay.

So the floor locks the same rows, inserts into the same indexes, updates the same
balance row and commits as often as the worker does; what it leaves out is
exactly what malipo adds: Dramatiq, the ORM, parsing, logging, the GIL.
"""

from __future__ import annotations

import base64
import multiprocessing
import os
import pickle
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import psycopg

from tests.perf.load import percentile

TEMPLATE_RECEIPT = "TPL0000001"


@dataclass(frozen=True)
class Ids:
    """The values that make one callback's statements about one payment."""

    payment: uuid.UUID
    attempt: uuid.UUID
    checkout: str
    receipt: str


@dataclass
class CapturedApply:
    """Every transaction of one applied callback: a list of (statement, parameters)."""

    template: Ids
    merchant_id: uuid.UUID
    transactions: list[list[tuple[str, Any]]] = field(default_factory=list)

    @property
    def statements(self) -> int:
        return sum(len(t) for t in self.transactions)

    def summary(self) -> list[str]:
        """Each statement's first words, for the report (no parameters)."""
        return [" ".join(s.split())[:90] for t in self.transactions for s, _ in t]


_UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX_ID = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")


class Substitution:
    """One replay's swaps: the template's ids for the target's, every other generated id
    (a UUID, or 32 hex digits inside a string such as a webhook id) for a fresh one."""

    def __init__(self, swaps: Mapping[Any, Any]) -> None:
        self.swaps = dict(swaps)
        self.fresh: dict[uuid.UUID, uuid.UUID] = {}
        self.texts = [(k, v) for k, v in self.swaps.items() if isinstance(k, str)]

    def uuid(self, value: uuid.UUID) -> uuid.UUID:
        if value in self.swaps:
            return cast(uuid.UUID, self.swaps[value])
        return self.fresh.setdefault(value, uuid.uuid4())

    def text(self, value: str) -> str:
        for old, new in self.texts:
            if old in value:
                value = value.replace(old, new)
        value = _UUID_TEXT.sub(lambda m: str(self.uuid(uuid.UUID(m.group(0)))), value)
        return _HEX_ID.sub(lambda m: self.uuid(uuid.UUID(m.group(0))).hex, value)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, uuid.UUID):
            return self.uuid(value)
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self(v) for v in value)
        return value


def replay_parameters(captured: CapturedApply, target: Ids) -> list[list[tuple[str, Any]]]:
    """The captured transactions, about ``target`` instead of the template payment."""
    t = captured.template
    substitute = Substitution(
        {
            t.payment: target.payment,
            t.attempt: target.attempt,
            t.checkout: target.checkout,
            t.receipt: target.receipt,
            captured.merchant_id: captured.merchant_id,
        }
    )
    return [
        [(statement, substitute(params)) for statement, params in transaction]
        for transaction in captured.transactions
    ]


# -- capture (in a child with the bench's environment) ----------------------------------------


def _capture_main(env: dict[str, str], merchant_id: str, out: Any) -> None:
    os.environ.update(env)
    from sqlalchemy import event

    from shared.messages import ApplyCallback, build_broker
    from shared.settings import load_settings
    from tests.support.seed import seed_submitted_payments, success_callback
    from workers.callbacks import CallbackApplication
    from workers.runtime import configure

    settings = load_settings()
    broker = build_broker(settings.broker_url.get_secret_value(), publish_only=True)
    rt = configure(settings, broker)
    merchant = uuid.UUID(merchant_id)
    (payment,) = seed_submitted_payments(rt.db, merchant, 1, "tpl")
    with psycopg.connect(env["BENCH_LIBPQ_URL"]) as conn:
        row = conn.execute(
            "SELECT id FROM payment_attempts WHERE intent_id = %s", (payment.id,)
        ).fetchone()
    assert row is not None
    captured = CapturedApply(
        template=Ids(payment.id, row[0], payment.checkout_id, TEMPLATE_RECEIPT),
        merchant_id=merchant,
    )
    current: list[tuple[str, Any]] = []

    def on_execute(conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        current.append((statement, params))

    def on_commit(conn: Any) -> None:
        if current:
            captured.transactions.append(list(current))
        current.clear()

    event.listen(rt.db.engine, "before_cursor_execute", on_execute)
    event.listen(rt.db.engine, "commit", on_commit)
    message = ApplyCallback(
        gateway="daraja",
        merchant_id=merchant_id,
        body_b64=base64.b64encode(success_callback(payment, TEMPLATE_RECEIPT)).decode("ascii"),
        headers={},
        received_at=datetime.now(UTC).isoformat(),
        remote_addr="127.0.0.1",
    )
    CallbackApplication(rt, message).run()
    event.remove(rt.db.engine, "before_cursor_execute", on_execute)
    event.remove(rt.db.engine, "commit", on_commit)
    with psycopg.connect(env["BENCH_LIBPQ_URL"]) as conn:
        credited = conn.execute(
            "SELECT count(*) FROM ledger_entries WHERE intent_id = %s", (payment.id,)
        ).fetchone()
    if not credited or credited[0] != 1:
        raise RuntimeError("the template callback was not applied: nothing to replay")
    out.put(pickle.dumps(captured))
    rt.db.dispose()


def capture_apply(env: dict[str, str], libpq: str, merchant_id: uuid.UUID) -> CapturedApply:
    """Apply one callback through the worker's code; what it sent, transaction by transaction."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    child = context.Process(
        target=_capture_main,
        args=({**env, "BENCH_LIBPQ_URL": libpq}, str(merchant_id), out),
    )
    child.start()
    try:
        captured: CapturedApply = pickle.loads(out.get(timeout=60))  # noqa: S301 - our own child
    finally:
        child.join(timeout=10)
    return captured


# -- the floor ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatementsBaseline:
    processes: int
    threads: int
    statements_per_callback: int
    transactions_per_callback: int
    callbacks: int
    elapsed_s: float
    callbacks_per_s: float
    p50_ms: float
    p99_ms: float
    statements: tuple[str, ...]

    @property
    def connections(self) -> int:
        return self.processes * self.threads


def _replay_loop(
    url: str, work: Sequence[Any], start_at: float, out: list[float], errors: list[str]
) -> None:
    try:
        _replay(url, work, start_at, out)
    except Exception as exc:  # reported by the parent: a floor that failed is no floor
        errors.append(f"{type(exc).__name__}: {exc}")


def _replay(url: str, work: Sequence[Any], start_at: float, out: list[float]) -> None:
    with psycopg.connect(url, application_name="malipo-bench-statements") as conn:
        while time.time() < start_at:
            time.sleep(0.001)
        for transactions in work:
            began = time.perf_counter()
            for transaction in transactions:
                for statement, params in transaction:
                    conn.execute(statement, params)
                conn.commit()
            out.append(time.perf_counter() - began)


def _process_main(url: str, threads: int, blob: bytes, start_at: float, results: Any) -> None:
    captured, targets = pickle.loads(blob)  # noqa: S301 - our own parent
    shares = [targets[i::threads] for i in range(threads)]
    latencies: list[float] = []
    errors: list[str] = []
    workers = [
        threading.Thread(
            target=_replay_loop,
            args=(
                url,
                [replay_parameters(captured, t) for t in share],
                start_at,
                latencies,
                errors,
            ),
        )
        for share in shares
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put((latencies, time.time(), errors))


def statements_baseline(
    libpq: str, captured: CapturedApply, targets: Sequence[Ids], processes: int, threads: int
) -> StatementsBaseline:
    """Replay ``captured`` once per target from ``processes`` × ``threads`` connections."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + 3.0  # time for every process to start, connect and prepare
    per_process = [list(targets[i::processes]) for i in range(processes)]
    children = [
        context.Process(
            target=_process_main,
            args=(libpq, threads, pickle.dumps((captured, share)), start_at, results),
        )
        for share in per_process
    ]
    for child in children:
        child.start()
    latencies: list[float] = []
    finished = start_at
    errors: list[str] = []
    for _ in children:
        done, at, failed = results.get(timeout=600)
        latencies.extend(done)
        errors.extend(failed)
        finished = max(finished, at)
    for child in children:
        child.join(timeout=10)
    if errors:
        raise RuntimeError(f"the same-statements floor failed: {errors[0]}")
    elapsed = max(finished - start_at, 1e-9)
    latencies_ms = [x * 1000 for x in latencies]
    return StatementsBaseline(
        processes=processes,
        threads=threads,
        statements_per_callback=captured.statements,
        transactions_per_callback=len(captured.transactions),
        callbacks=len(latencies),
        elapsed_s=round(elapsed, 2),
        callbacks_per_s=round(len(latencies) / elapsed, 1),
        p50_ms=round(percentile(latencies_ms, 50), 2),
        p99_ms=round(percentile(latencies_ms, 99), 2),
        statements=tuple(captured.summary()),
    )


# -- plans ---------------------------------------------------------------------------------


def explain_apply(
    libpq: str, captured: CapturedApply, warm_up: Ids, target: Ids
) -> list[dict[str, Any]]:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of each statement of one replayed callback, in one
    transaction that is rolled back: per statement, its time, the buffers it touched and
    whether any node scanned a whole table (a cost that grows with the table).

    The sequence runs once for ``warm_up`` first, unrecorded: a connection's first
    call of a PL/pgSQL trigger compiles it, which would be counted against the
    statement that fires it.
    """
    plans = []
    with psycopg.connect(libpq) as conn:
        for ids, recorded in ((warm_up, False), (target, True)):
            for transaction in replay_parameters(captured, ids):
                for statement, params in transaction:
                    row = conn.execute(
                        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, params
                    ).fetchone()
                    if not recorded:
                        continue
                    plan = row[0][0] if row else {}
                    top = plan.get("Plan", {})
                    plans.append(
                        {
                            "statement": " ".join(statement.split())[:90],
                            "ms": round(float(plan.get("Execution Time", 0.0)), 3),
                            "triggers_ms": round(
                                sum(float(t.get("Time", 0.0)) for t in plan.get("Triggers", [])),
                                3,
                            ),
                            "shared_hit": int(top.get("Shared Hit Blocks", 0)),
                            "shared_read": int(top.get("Shared Read Blocks", 0)),
                            "seq_scans": sorted(_seq_scans(top)),
                        }
                    )
        conn.rollback()
    return plans


def _seq_scans(node: dict[str, Any]) -> set[str]:
    found = {str(node.get("Relation Name"))} if node.get("Node Type") == "Seq Scan" else set()
    for child in node.get("Plans", []):
        found |= _seq_scans(child)
    return found
