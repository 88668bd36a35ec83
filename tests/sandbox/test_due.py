"""The simulators' shared timer: items are delivered when due, in order, and never after stop."""

from __future__ import annotations

import threading

from sandbox.due import DueQueue
from tests.support.waiting import wait_until


class Recorder(DueQueue[str]):
    def __init__(self, clock: list[float]) -> None:
        super().__init__(clock=lambda: clock[0], thread_name="test-due")
        self.delivered: list[str] = []
        self.lock = threading.Lock()

    def _deliver(self, item: str) -> None:
        if item == "boom":
            raise RuntimeError("a bad delivery")
        with self.lock:
            self.delivered.append(item)


def test_items_are_delivered_when_due_in_due_then_push_order() -> None:
    clock = [100.0]
    queue = Recorder(clock)
    queue.push(103.0, "late")
    queue.push(101.0, "first")
    queue.push(101.0, "second")  # same time: push order
    queue.push(102.0, "boom")  # a failing delivery does not stop the others

    clock[0] = 102.5
    wait_until(lambda: queue.delivered == ["first", "second"], what="the due items")
    assert queue.pending() == 1
    clock[0] = 103.0
    wait_until(lambda: queue.delivered == ["first", "second", "late"], what="the last item")
    queue.stop()
    assert not queue.is_alive()


def test_a_stopped_or_cleared_queue_delivers_nothing_more() -> None:
    clock = [0.0]
    queue = Recorder(clock)
    queue.push(5.0, "cleared")
    queue.clear()
    queue.stop()
    queue.push(0.0, "after stop")

    assert (queue.pending(), queue.delivered, queue.is_alive()) == (0, [], False)
