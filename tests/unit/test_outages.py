"""The outage limiter: one line when a service goes, one every 30 s with a count, one when back."""

from __future__ import annotations

import itertools
import logging

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.outages import POSTGRESQL, RABBITMQ, OutageLimiter, classify


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(
    name: str = "malipo",
    level: int = logging.WARNING,
    msg: object = "x",
    exc: BaseException | None = None,
) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord(name, level, __file__, 1, msg, None, exc_info)


def broker_down() -> logging.LogRecord:
    return record(msg={"event": "payment not accepted: broker unavailable", "outage": RABBITMQ})


def test_the_first_failure_passes_then_one_line_per_period_with_the_count() -> None:
    clock = Clock()
    limiter = OutageLimiter(every_s=30, clock=clock)
    first = broker_down()
    assert limiter.filter(first)
    assert first.msg["outage_started"] is True  # type: ignore[index]
    shown = []
    for _ in range(599):  # ten minutes at one failure a second
        clock.now += 1
        line = broker_down()
        if limiter.filter(line):
            shown.append(line.msg["attempts"])  # type: ignore[index]
    assert len(shown) == 19  # one every 30 s after the first
    assert sum(shown) <= 599
    assert all(count == 30 for count in shown)


@given(st.lists(st.floats(min_value=0, max_value=5), min_size=1, max_size=300))
def test_never_more_than_one_line_per_period_and_every_failure_counted(gaps: list[float]) -> None:
    clock = Clock()
    limiter = OutageLimiter(every_s=30, clock=clock)
    shown_at, counted = [], 0
    for gap in gaps:
        clock.now += gap
        line = broker_down()
        if limiter.filter(line):
            shown_at.append(clock.now)
            counted += line.msg.get("attempts", 1)  # type: ignore[union-attr]
    assert all(b - a >= 30 for a, b in itertools.pairwise(shown_at))
    _duration, failures = limiter.recovered(RABBITMQ) or (0, 0)
    assert failures == len(gaps)
    assert counted <= failures


def test_services_are_limited_apart_and_other_lines_pass() -> None:
    clock = Clock()
    limiter = OutageLimiter(every_s=30, clock=clock)
    assert limiter.filter(broker_down())
    assert not limiter.filter(broker_down())
    db_down = record(msg={"event": "database unavailable", "outage": POSTGRESQL})
    assert limiter.filter(db_down)
    assert limiter.filter(record(msg={"event": "payment accepted"}))
    assert limiter.filter(record(level=logging.ERROR, msg="something else broke"))
    assert sorted(limiter.open_outages()) == [POSTGRESQL, RABBITMQ]


def test_after_recovery_the_next_failure_opens_a_new_outage() -> None:
    clock = Clock()
    limiter = OutageLimiter(every_s=30, clock=clock)
    limiter.filter(broker_down())
    clock.now += 42
    assert limiter.recovered(RABBITMQ) == (42, 1)
    again = broker_down()
    assert limiter.filter(again)
    assert again.msg["outage_started"] is True  # type: ignore[index]


def test_a_failure_s_traceback_becomes_its_type_and_text() -> None:
    limiter = OutageLimiter()
    error = psycopg.OperationalError("connection to server at 127.0.0.1 failed: Connection refused")
    line = record(
        name="dramatiq.worker", level=logging.ERROR, msg="Failed to process message", exc=error
    )
    assert limiter.filter(line)
    assert line.exc_info is None
    assert line.outage == POSTGRESQL  # type: ignore[attr-defined]
    assert "Connection refused" in line.error  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("line", "service"),
    [
        (record(name="pika.adapters.utils.connection_workflow", level=logging.ERROR), RABBITMQ),
        (
            record(
                name="dramatiq.worker.ConsumerThread(default)",
                msg="Consumer encountered a connection error: AMQPConnectionError",
            ),
            RABBITMQ,
        ),
        (
            record(
                name="dramatiq.worker.ConsumerThread(default)",
                level=logging.INFO,
                msg="Restarting consumer in 3.00 seconds.",
            ),
            RABBITMQ,
        ),
        (
            record(
                name="sqlalchemy.pool",
                level=logging.ERROR,
                exc=psycopg.OperationalError("server closed the connection unexpectedly"),
            ),
            POSTGRESQL,
        ),
        (record(level=logging.INFO, msg="pika said hello"), None),
        (record(level=logging.ERROR, msg="a refund was refused"), None),
        (record(msg={"event": "payment accepted", "gateway": "daraja"}), None),
    ],
)
def test_what_counts_as_a_connection_failure(line: logging.LogRecord, service: str | None) -> None:
    assert classify(line) == service
