"""The callback spool: what was acknowledged while RabbitMQ was down is published in arrival
order, each entry once, whatever fails on the way."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingress.spool import CallbackSpool
from tests.unit.properties import PROPERTY


class BrokerDown(Exception):
    pass


class FlakyPublisher:
    """Confirms messages except at the given attempt numbers (counted from 0)."""

    def __init__(self, failing_attempts: set[int]) -> None:
        self.failing_attempts = failing_attempts
        self.attempts = 0
        self.published: list[dict[str, Any]] = []

    def __call__(self, entry: dict[str, Any]) -> None:
        attempt, self.attempts = self.attempts, self.attempts + 1
        if attempt in self.failing_attempts:
            raise BrokerDown(f"no confirm for attempt {attempt}")
        self.published.append(entry)


def drain_until_empty(spool: CallbackSpool, publish: FlakyPublisher) -> None:
    """What the drainer thread does: drain, and after a failure try again later."""
    for _ in range(len(publish.failing_attempts) + 2):
        try:
            spool.drain(publish)
        except BrokerDown:
            continue
        if not spool.depth():
            return
    raise AssertionError(f"spool not drained: {spool.depth()} left")


@PROPERTY
@given(
    count=st.integers(min_value=0, max_value=40),
    failing_attempts=st.sets(st.integers(min_value=0, max_value=60), max_size=6),
)
def test_every_entry_is_published_once_in_arrival_order_despite_failures(
    count: int, failing_attempts: set[int]
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        # Given callbacks spooled one after another while the broker was down
        spool = CallbackSpool(directory)
        entries = [{"n": n, "body_b64": f"callback-{n}"} for n in range(count)]
        for entry in entries:
            spool.append(entry)

        # When the broker comes back but refuses some publishes on the way
        publisher = FlakyPublisher(failing_attempts)
        drain_until_empty(spool, publisher)

        # Then each entry was published exactly once, oldest first, and nothing is left
        assert publisher.published == entries
        assert spool.depth() == 0


def test_a_failed_publish_keeps_the_entry_and_everything_after_it(tmp_path: Path) -> None:
    spool = CallbackSpool(tmp_path)
    for n in range(5):
        spool.append({"n": n})

    publisher = FlakyPublisher({2})
    with pytest.raises(BrokerDown):  # the drainer sees the failure and tries again later
        spool.drain(publisher)

    assert [e["n"] for e in publisher.published] == [0, 1]
    assert spool.depth() == 3  # entries 2, 3 and 4 wait for the next drain


def test_two_processes_draining_one_spool_publish_each_entry_once(tmp_path: Path) -> None:
    # Given a spool shared by two ingress processes (one CallbackSpool each, one directory)
    writer = CallbackSpool(tmp_path)
    for n in range(300):
        writer.append({"n": n})
    drainers = [CallbackSpool(tmp_path), CallbackSpool(tmp_path)]
    published: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(2)

    def publish(entry: dict[str, Any]) -> None:
        with lock:
            published.append(entry["n"])

    def run(spool: CallbackSpool) -> None:
        start.wait()
        while spool.depth():
            spool.drain(publish)

    # When both drain at once
    threads = [threading.Thread(target=run, args=(spool,)) for spool in drainers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # Then the file lock let one drain at a time: every entry once, in order
    assert published == list(range(300))


def test_an_unreadable_entry_is_set_aside_not_lost_and_does_not_block_the_rest(
    tmp_path: Path,
) -> None:
    spool = CallbackSpool(tmp_path)
    first = spool.append({"n": 0})
    spool.append({"n": 1})
    first.write_bytes(b"{torn write")

    publisher = FlakyPublisher(set())
    spool.drain(publisher)

    assert publisher.published == [{"n": 1}]
    assert [p.name for p in tmp_path.glob("*.bad")] == [first.with_suffix(".bad").name]
