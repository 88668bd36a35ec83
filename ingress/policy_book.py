"""Every enabled merchant's callback policy, in each ingress process's memory.

A callback is authenticated by the hash of its path secret. Looking that hash up
in PostgreSQL for every callback made each refused one (anyone can make up a
secret) cost a database read, and a database outage cost real callbacks their
merchant. Instead each process keeps the whole book:

- loaded in full at first use and every ``full_every_s`` (a backstop that also
  forgets rows deleted outright);
- brought up to date at most every ``refresh_s`` by asking only for credentials
  changed since the last refresh started, less ``overlap_s`` (a row committed late
  by a long transaction is still seen);
- kept as it is when PostgreSQL cannot be reached: known merchants' callbacks are
  still accepted.

A secret not in the book is looked up one by one (``CallbackResource``), within
the refusal budget: the book may be a beat behind a merchant made a moment ago.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

import structlog
from sqlalchemy.exc import SQLAlchemyError

from shared.domain.errors import TransientError

log = structlog.stdlib.get_logger(__name__)
P = TypeVar("P")
Key = tuple[str, str]  # gateway, sha256 of the path secret


class CredentialRow(Protocol):
    id: uuid.UUID
    gateway: str
    callback_secret_hash: str
    enabled: bool


@dataclass(frozen=True)
class Changes(Generic[P]):
    """What a load returned: the rows (with their policies) and the database's clock."""

    rows: Sequence[tuple[CredentialRow, P]]
    as_of: datetime
    complete: bool


@dataclass(frozen=True)
class _Snapshot(Generic[P]):
    by_key: dict[Key, P]
    key_of: dict[uuid.UUID, Key]
    complete: bool


class PolicyBook(Generic[P]):
    def __init__(
        self,
        load: Callable[[datetime | None, int], Changes[P]],
        *,
        refresh_s: float,
        max_entries: int = 10_000,
        full_every_s: float = 300.0,
        overlap_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``load(since, limit)``: credentials changed after ``since`` (all when None)."""
        self._load = load
        self.refresh_s = refresh_s
        self.max_entries = max_entries
        self.full_every_s = full_every_s
        self.overlap = timedelta(seconds=overlap_s)
        self.clock = clock
        # One snapshot, replaced in one assignment: a reader never sees new entries with an
        # old "complete" (or the reverse).
        self._snapshot: _Snapshot[P] = _Snapshot({}, {}, False)
        self._as_of: datetime | None = None
        self._loaded_at: float | None = None
        self._full_at: float | None = None
        self._outage = False
        self._refreshing = threading.Lock()

    @property
    def complete(self) -> bool:
        """Loaded, and holding every enabled credential: a miss is an unknown secret."""
        return self._snapshot.complete

    def lookup(self, key: Key) -> tuple[P | None, bool]:
        """The key's policy and whether the book was complete, read from one snapshot."""
        snapshot = self._snapshot
        return snapshot.by_key.get(key), snapshot.complete

    def get(self, key: Key) -> P | None:
        return self._snapshot.by_key.get(key)

    def knows(self, key: Key) -> bool:
        return key in self._snapshot.by_key

    def refresh_if_due(self) -> None:
        """Bring the book up to date if it is older than ``refresh_s`` (one thread at a time)."""
        now = self.clock()
        if self._loaded_at is not None and now - self._loaded_at < self.refresh_s:
            return
        if not self._refreshing.acquire(blocking=False):
            return  # another thread is at it; this request uses the book as it is
        try:
            self._refresh(now)
        finally:
            self._refreshing.release()

    def _refresh(self, now: float) -> None:
        full = self._full_at is None or now - self._full_at >= self.full_every_s
        since = None if full or self._as_of is None else self._as_of - self.overlap
        try:
            changes = self._load(since, self.max_entries + 1)
        except (TransientError, SQLAlchemyError) as exc:
            # Not again before refresh_s after this try ended (a connect timeout can be long):
            # an outage costs one waiting request a beat, not every one. Whatever failed, the
            # book as it is still answers: a callback is never lost to a failed refresh.
            self._loaded_at = self.clock()
            if not self._outage:
                transient = isinstance(exc, TransientError)
                (log.warning if transient else log.error)(
                    "callback policies not refreshed; serving what is known",
                    known=len(self._snapshot.by_key),
                    error=str(exc)[:200],
                    outage="postgresql" if transient else None,
                )
            self._outage = True
            return
        if self._outage:
            log.info("callback policies refreshed again", outage="postgresql", outage_ended=True)
            self._outage = False
        self._apply(changes, full)
        self._loaded_at = now
        if full:
            self._full_at = now
        elif not changes.complete:
            self._full_at = None  # more changed than one refresh takes: reload it all next

    def _apply(self, changes: Changes[P], full: bool) -> None:
        current = self._snapshot
        by_key = {} if full else dict(current.by_key)
        key_of = {} if full else dict(current.key_of)
        for row, policy in changes.rows:
            old = key_of.pop(row.id, None)
            if old is not None:
                by_key.pop(old, None)  # a rotated secret: the old one stops working now
            if row.enabled:
                key = (row.gateway, row.callback_secret_hash)
                by_key[key] = policy
                key_of[row.id] = key
        while len(by_key) > self.max_entries:
            by_key.pop(next(iter(by_key)))
        if full:
            complete = changes.complete
        else:
            complete = current.complete and len(by_key) <= self.max_entries
        # Swapped whole: readers never see a half-applied refresh.
        self._snapshot = _Snapshot(by_key, key_of, complete)
        self._as_of = changes.as_of

    def stats(self) -> dict[str, Any]:
        snapshot = self._snapshot
        return {
            "known": len(snapshot.by_key),
            "complete": snapshot.complete,
            "outage": self._outage,
        }
