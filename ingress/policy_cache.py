"""A small per-process cache of what the ingress looks up to authenticate callbacks.

Callbacks must be acknowledged even while PostgreSQL restarts (Daraja never sends
a callback twice), and every callback would otherwise cost a database read.
Entries are fresh for ``ttl_s``; when a refresh fails because the database is
unavailable, a stale entry is served (a merchant's callback settings rarely
change, and a stale answer is safer than a lost payment). Bounded in size, so a
flood of made-up secrets cannot grow it without limit.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import structlog

from shared.domain.errors import TransientError

log = structlog.stdlib.get_logger(__name__)
V = TypeVar("V")


class StaleWhileUnavailableCache(Generic[V]):
    def __init__(self, ttl_s: float = 30.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[V, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], V]) -> V:
        """The cached value if fresh, else ``load()``; a stale value if ``load`` is unavailable."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and now - entry[1] < self.ttl_s:
            return entry[0]
        try:
            value = load()
        except TransientError:
            if entry is None:
                raise
            log.warning(
                "database unavailable: serving a cached callback policy", outage="postgresql"
            )
            return entry[0]
        with self._lock:
            self._entries[key] = (value, now)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
