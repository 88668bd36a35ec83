"""A small per-process cache of what the ingress looks up to authenticate callbacks.

Callbacks must be acknowledged even while PostgreSQL restarts (Daraja never sends
a callback twice), and every callback would otherwise cost a database read.
Entries are fresh for ``ttl_s``; when a refresh fails because the database is
unavailable, a stale entry is served (a merchant's callback settings rarely
change, and a stale answer is safer than a lost payment).

Found and not-found answers are kept apart, each bounded in size: a flood of
made-up secrets fills (and evicts from) the not-found side only, so it can never
push a real merchant's policy out, and a database outage during the flood still
finds every merchant the process has seen.
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


class _Bounded(Generic[V]):
    """Least recently stored first out, at most ``max_entries``."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.entries: OrderedDict[Hashable, tuple[V, float]] = OrderedDict()

    def put(self, key: Hashable, value: V, at: float) -> None:
        self.entries[key] = (value, at)
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)


class StaleWhileUnavailableCache(Generic[V]):
    def __init__(
        self, ttl_s: float = 30.0, max_entries: int = 10_000, max_missing: int = 10_000
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._found: _Bounded[V] = _Bounded(max_entries)
        self._missing: _Bounded[None] = _Bounded(max_missing)
        self._lock = threading.Lock()

    def known(self, key: Hashable) -> bool:
        """Was ``key`` ever found (fresh or stale)? Answered from memory."""
        with self._lock:
            return key in self._found.entries

    def get(self, key: Hashable, load: Callable[[], V | None]) -> V | None:
        """The cached answer if fresh, else ``load()``; a stale one if ``load`` is unavailable."""
        now = time.monotonic()
        with self._lock:
            entry: tuple[V | None, float] | None = self._found.entries.get(key)
            if entry is None:
                entry = self._missing.entries.get(key)
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
            if value is None:
                # No longer found (revoked, disabled): forgotten at once, kept as not found.
                self._found.entries.pop(key, None)
                self._missing.put(key, None, now)
            else:
                self._missing.entries.pop(key, None)
                self._found.put(key, value, now)
        return value

    def clear(self) -> None:
        with self._lock:
            self._found.entries.clear()
            self._missing.entries.clear()
