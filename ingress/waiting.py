"""Long-polls that cannot starve the ingress: bounded, and woken by PostgreSQL.

``GET /v1/payments/{id}?wait=N`` holds a gunicorn thread. Two things keep that safe:

* :class:`WaitSlots` bounds how many requests wait at once, per process and per API
  key. A request over the bound is answered at once with the current state and
  ``Retry-After``; so waits never take the threads that serve ``/callbacks`` (a
  process's bound is below its thread count).
* :class:`ChangeWatcher` is one thread per process that ``LISTEN``s on the channel a
  database trigger notifies when a payment's status or next action changes
  (migration 0008). A waiter sleeps on an event for its payment and re-reads the row
  only when woken, instead of polling the database. If the listening connection is
  lost, waiters fall back to re-reading once a second until it is back.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator

import psycopg
import structlog

from shared.db.session import sqlalchemy_url

log = structlog.stdlib.get_logger(__name__)
CHANNEL = "malipo_payment_changes"
FALLBACK_STEP_S = 1.0
RECONNECT_AFTER_S = 2.0


class WaitSlots:
    """At most ``per_process`` waits at once, and ``per_key`` for any one API key."""

    def __init__(self, per_process: int, per_key: int) -> None:
        self.per_process = per_process
        self.per_key = per_key
        self._lock = threading.Lock()
        self._total = 0
        self._by_key: dict[uuid.UUID, int] = defaultdict(int)

    @contextlib.contextmanager
    def slot(self, key_id: uuid.UUID) -> Iterator[bool]:
        """Yields whether this request may wait (False: answer at once)."""
        with self._lock:
            granted = self._total < self.per_process and self._by_key[key_id] < self.per_key
            if granted:
                self._total += 1
                self._by_key[key_id] += 1
        try:
            yield granted
        finally:
            if granted:
                with self._lock:
                    self._total -= 1
                    self._by_key[key_id] -= 1
                    if not self._by_key[key_id]:
                        del self._by_key[key_id]


class ChangeWatcher:
    """One listening thread per process; :meth:`wait` returns when a payment changes."""

    def __init__(self, database_url: str) -> None:
        self._url = _libpq_url(database_url)
        self._lock = threading.Lock()
        self._waiters: dict[str, list[threading.Event]] = defaultdict(list)
        self._thread: threading.Thread | None = None
        self._listening = threading.Event()
        self._stopped = threading.Event()

    def wait(self, payment_id: uuid.UUID, timeout_s: float) -> bool:
        """Sleep until the payment changes or ``timeout_s`` passes; True when notified.

        While the listener is not connected, sleeps at most a second (the caller then
        re-reads the row, as it would after a notification).
        """
        self._ensure_started()
        if not self._listening.is_set():
            timeout_s = min(timeout_s, FALLBACK_STEP_S)
        event = threading.Event()
        key = str(payment_id)
        with self._lock:
            self._waiters[key].append(event)
        try:
            return event.wait(max(0.0, timeout_s))
        finally:
            with self._lock:
                waiting = self._waiters.get(key)
                if waiting is not None:
                    with contextlib.suppress(ValueError):
                        waiting.remove(event)
                    if not waiting:
                        del self._waiters[key]

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    def stop(self) -> None:
        self._stopped.set()

    def _ensure_started(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                # Started lazily: in a gunicorn worker, after the fork.
                self._thread = threading.Thread(
                    target=self._run, name="malipo-change-watcher", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    while not self._stopped.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._wake(note.payload)
            except psycopg.Error as exc:
                if self._listening.is_set():
                    log.warning(
                        "payment change listener lost; waits poll until it is back",
                        error=str(exc),
                        outage="postgresql",
                    )
            self._listening.clear()
            self._stopped.wait(RECONNECT_AFTER_S)

    def _wake(self, payment_id: str) -> None:
        with self._lock:
            events = list(self._waiters.get(payment_id, ()))
        for event in events:
            event.set()


def _libpq_url(database_url: str) -> str:
    """A libpq URL from malipo's (SQLAlchemy-style ``postgresql+psycopg://``) one."""
    url = sqlalchemy_url(database_url)
    return url.replace("postgresql+psycopg://", "postgresql://", 1)
