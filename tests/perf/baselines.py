"""Baseline 3: single-row INSERT + COMMIT into PostgreSQL, with the workers' connection layout.

``processes`` × ``threads`` connections (as many as the workers apply callbacks
with, in as many processes), each inserting one small row and committing, over and
over, for a fixed time. That is the floor for "make one durable change per
callback" on this machine: every applied callback must commit at least once, and
nothing the workers do can commit faster than PostgreSQL's WAL flush allows
(concurrent commits share flushes: group commit).

Baseline 1 (durable enqueue behind gunicorn + Falcon) is ``tests/perf/baseline_app.py``.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from shared.db.session import sqlalchemy_url
from tests.perf.load import percentile

SCRATCH_TABLE = "bench_commit_baseline"


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://``) as a libpq connection string."""
    return make_url(sqlalchemy_url(url)).set(drivername="postgresql").render_as_string(False)


@dataclass(frozen=True)
class CommitBaseline:
    processes: int
    threads: int
    duration_s: float
    commits: int
    commits_per_s: float
    p50_ms: float
    p99_ms: float

    @property
    def connections(self) -> int:
        return self.processes * self.threads


def _insert_loop(url: str, start_at: float, stop_at: float, out: list[Any]) -> None:
    latencies: list[float] = []
    with psycopg.connect(url, application_name="malipo-bench-baseline") as conn:
        while time.time() < start_at:
            time.sleep(0.001)
        while True:
            began = time.perf_counter()
            conn.execute(f"INSERT INTO {SCRATCH_TABLE} (payload) VALUES (%s)", ("x" * 64,))  # noqa: S608 - fixed table name
            conn.commit()
            latencies.append(time.perf_counter() - began)
            if time.time() >= stop_at:
                break
    out.append(latencies)


def _process_main(url: str, threads: int, start_at: float, stop_at: float, results: Any) -> None:
    collected: list[Any] = []
    workers = [
        threading.Thread(target=_insert_loop, args=(url, start_at, stop_at, collected))
        for _ in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put([x for latencies in collected for x in latencies])


def pg_commit_baseline(
    db_url: str, processes: int, threads: int, duration_s: float
) -> CommitBaseline:
    """Run baseline 3 against the bench database; the scratch table is dropped afterwards."""
    url = libpq_url(db_url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {SCRATCH_TABLE} ("
            " id bigserial PRIMARY KEY, payload text NOT NULL,"
            " created_at timestamptz NOT NULL DEFAULT now())"
        )
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + 2.0  # time for every process to start and connect
    stop_at = start_at + duration_s
    children = [
        context.Process(target=_process_main, args=(url, threads, start_at, stop_at, results))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    latencies: list[float] = []
    for _ in children:
        latencies.extend(results.get(timeout=duration_s + 60))
    for child in children:
        child.join(timeout=10)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {SCRATCH_TABLE}")
    latencies_ms = [x * 1000 for x in latencies]
    return CommitBaseline(
        processes=processes,
        threads=threads,
        duration_s=duration_s,
        commits=len(latencies),
        commits_per_s=round(len(latencies) / duration_s, 1),
        p50_ms=round(percentile(latencies_ms, 50), 2),
        p99_ms=round(percentile(latencies_ms, 99), 2),
    )
