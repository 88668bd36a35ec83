"""The after-commit stream request is coalesced: few sends, always one after the last."""

from __future__ import annotations

import threading
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from workers.events import Coalescer

INTERVAL_S = 0.02


class Recorder:
    def __init__(self, fail_first: int = 0) -> None:
        self.sent: list[float] = []
        self.threads: set[threading.Thread] = set()
        self.fail_first = fail_first
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self) -> None:
        with self.lock:
            self.calls += 1
            if self.calls <= self.fail_first:
                raise ConnectionError("broker gone")
            self.sent.append(time.monotonic())
            self.threads.add(threading.current_thread())


def settle(recorder: Recorder, expected_calls: int = 1) -> None:
    """Until the armed timer (if any) has fired."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        time.sleep(INTERVAL_S * 2)
        with recorder.lock:
            if recorder.calls >= expected_calls:
                break
    time.sleep(INTERVAL_S * 2)


@settings(max_examples=25, deadline=None)
@given(gaps=st.lists(st.floats(min_value=0, max_value=INTERVAL_S * 1.5), min_size=1, max_size=30))
def test_every_request_is_followed_by_a_send(gaps: list[float]) -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder, INTERVAL_S)
    requested = []
    for gap in gaps:
        time.sleep(gap)
        requested.append(time.monotonic())
        coalescer.request()
    settle(recorder)
    assert recorder.sent, "nothing was sent"
    for at in requested:
        assert any(sent >= at for sent in recorder.sent), "a request had no send after it"


def test_a_burst_from_many_threads_costs_a_few_sends() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder, INTERVAL_S)
    started = time.monotonic()

    def burst() -> None:
        for _ in range(500):
            coalescer.request()

    threads = [threading.Thread(target=burst) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    last_request = time.monotonic()
    settle(recorder)
    # 4,000 requests: one send at once, then at most one per interval, plus the last one.
    windows = int((last_request - started) / INTERVAL_S) + 2
    assert 1 <= len(recorder.sent) <= windows


def test_a_failed_send_is_logged_and_the_next_request_sends_again() -> None:
    recorder = Recorder(fail_first=1)
    coalescer = Coalescer(recorder, INTERVAL_S)
    coalescer.request()  # fails: logged, not raised into the committing caller
    assert recorder.sent == []
    time.sleep(INTERVAL_S * 1.5)
    coalescer.request()
    settle(recorder, expected_calls=2)
    assert len(recorder.sent) == 1


def test_delayed_sends_come_from_one_long_lived_thread() -> None:
    """A publisher holds a broker connection per thread: a thread per send would open
    (and leak) a connection per send."""
    recorder = Recorder()
    coalescer = Coalescer(recorder, INTERVAL_S)
    for round_ in range(10):
        coalescer.request()  # sends here, in the caller's thread
        coalescer.request()  # within the interval: one delayed send
        settle(recorder, expected_calls=2 * (round_ + 1))
    caller = threading.current_thread()
    assert len(recorder.sent) == 20
    assert len(recorder.threads - {caller}) == 1
