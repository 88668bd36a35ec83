"""Work that falls due on a clock, handed out by one lazily started daemon thread.

Every simulator sends its callbacks (or webhooks) later than the request that
caused them; :class:`DueQueue` is the one timer they share. ``push`` never
blocks on the network; ``stop`` drops what is pending and joins the thread; a
stopped queue ignores new work. Subclasses say what delivering an item means.
"""

from __future__ import annotations

import abc
import heapq
import itertools
import logging
import threading
from collections.abc import Callable
from typing import Final, Generic, TypeVar

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Clock = Callable[[], float]


class DueQueue(abc.ABC, Generic[Item]):
    # Why a cap: an injected test clock can jump forward without notifying us.
    _MAX_WAIT_S: Final = 0.2

    def __init__(self, *, clock: Clock, thread_name: str) -> None:
        self._clock = clock
        self._thread_name = thread_name
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Item]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def push(self, due_at: float, item: Item) -> None:
        """Deliver ``item`` as soon as the clock reaches ``due_at`` (in push order on ties)."""
        with self._cond:
            if self._stopping:
                return
            heapq.heappush(self._heap, (due_at, next(self._seq), item))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=self._thread_name, daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def clear(self) -> None:
        """Drop everything not yet delivered."""
        with self._cond:
            self._heap.clear()

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._heap.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    def is_alive(self) -> bool:
        with self._cond:
            return self._thread is not None and self._thread.is_alive()

    def now(self) -> float:
        return self._clock()

    @abc.abstractmethod
    def _deliver(self, item: Item) -> None:
        """Send one item that fell due (runs on the queue's thread)."""

    def _run(self) -> None:
        while (item := self._next_due()) is not None:
            try:
                self._deliver(item)
            except Exception:
                # One bad delivery must not end the thread that sends all the others.
                logger.exception("%s: a delivery failed unexpectedly", self._thread_name)

    def _next_due(self) -> Item | None:
        with self._cond:
            while not self._stopping:
                wait: float | None = None
                if self._heap:
                    wait = self._heap[0][0] - self._clock()
                    if wait <= 0:
                        return heapq.heappop(self._heap)[2]
                    wait = min(wait, self._MAX_WAIT_S)
                self._cond.wait(wait)
            return None
