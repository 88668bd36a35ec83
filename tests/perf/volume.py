"""History for the scaling stage: payments already in the database, written with ``COPY``.

Each generated payment looks like one malipo applied earlier: a succeeded intent,
its accepted attempt, the callback's gateway event, the collection in the ledger and
the audit row, so that every index a callback touches holds a row per payment.
They belong to the bench's own merchant (the worst case: its indexes and its
lookups grow with it). Nothing goes through the API; 1 M payments take about a
minute here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

import psycopg

BATCH = 50_000


def _lines(rows: Iterator[tuple[object, ...]]) -> Iterator[str]:
    for row in rows:
        yield "\t".join("\\N" if v is None else str(v) for v in row) + "\n"


def _copy(
    conn: psycopg.Connection, table: str, columns: str, rows: Sequence[tuple[object, ...]]
) -> None:
    with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        copy.write("".join(_lines(iter(rows))))


def clear_payments(libpq: str) -> None:
    """Empty the payment tables (and what hangs off them): the scaling stage starts from a
    known size, not from whatever the earlier stages left."""
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE payment_intents, payment_attempts, gateway_events, ledger_entries,"
            " audit_log, webhook_events, balances CASCADE"
        )


def payments_in_database(libpq: str) -> int:
    with psycopg.connect(libpq) as conn:
        row = conn.execute("SELECT count(*) FROM payment_intents").fetchone()
    return int(row[0]) if row else 0


def _write_batch(
    conn: psycopg.Connection, merchant_id: uuid.UUID, tag: str, first: int, size: int
) -> None:
    base = datetime.now(UTC) - timedelta(days=30)
    intents, attempts, events, ledger, audit = [], [], [], [], []
    for n in range(first, first + size):
        pid = uuid.uuid4()
        at = base + timedelta(seconds=n * 2.5)
        amount = 100 * (1 + n % 50)
        checkout, receipt = f"ws_CO_{tag}_{n:08d}", f"H{tag[:3].upper()}{n:08d}"
        intents.append(
            (
                pid,
                merchant_id,
                f"{tag}-{n}",
                "history",
                "daraja",
                amount,
                "KES",
                f"2547{n % 10**8:08d}",
                f"{tag}-{n}",
                "succeeded",
                checkout,
                receipt,
                checkout,
                at,
                at,
                at,
                at,
            )
        )
        attempts.append((uuid.uuid4(), pid, 1, "daraja", "accepted", checkout))
        events.append(
            (
                "daraja",
                f"stk:{checkout}:0",
                "callback",
                merchant_id,
                pid,
                checkout,
                "0",
                "applied",
                "{}",
                "{}",
                at,
            )
        )
        ledger.append((merchant_id, pid, "collection", amount, "KES", "daraja", receipt))
        audit.append(("worker", "payment.succeeded", "payment", str(pid), '{"from":"submitted"}'))
    _copy(
        conn,
        "payment_intents",
        "id, merchant_id, idempotency_key, request_hash, gateway, amount_minor, currency,"
        " phone, reference, status, gateway_ref, receipt, settled_ref, accepted_at,"
        " submitted_at, finished_at, created_at",
        intents,
    )
    _copy(conn, "payment_attempts", "id, intent_id, number, gateway, status, gateway_ref", attempts)
    _copy(
        conn,
        "gateway_events",
        "gateway, event_key, source, merchant_id, intent_id, gateway_ref, result_code,"
        " outcome, headers, body_masked, received_at",
        events,
    )
    _copy(
        conn,
        "ledger_entries",
        "merchant_id, intent_id, kind, amount_minor, currency, gateway, gateway_txn_id",
        ledger,
    )
    _copy(conn, "audit_log", "actor, action, subject_type, subject_id, detail", audit)


def add_history(
    libpq: str,
    merchant_id: uuid.UUID,
    count: int,
    tag: str,
    progress: Callable[[int], None] | None = None,
) -> None:
    """``count`` settled payments of ``merchant_id``, committed in batches of ``BATCH``."""
    done = 0
    with psycopg.connect(libpq) as conn:
        while done < count:
            size = min(BATCH, count - done)
            _write_batch(conn, merchant_id, tag, done, size)
            conn.commit()
            done += size
            if progress is not None and (done % (4 * BATCH) == 0 or done == count):
                progress(done)
    with psycopg.connect(libpq, autocommit=True) as conn:
        for table in ("payment_intents", "payment_attempts", "gateway_events", "ledger_entries",
                      "audit_log"):  # fmt: skip
            conn.execute(f"VACUUM ANALYZE {table}")
