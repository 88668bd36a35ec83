"""A durable local spool for callbacks the broker could not confirm.

Daraja delivers a callback once and never again, so when RabbitMQ is down an
authenticated callback is written here (one file per message, fsynced, then
renamed into place and the directory fsynced) before the gateway is answered.
A drainer thread in each ingress process publishes the files to RabbitMQ in
name order (arrival time), deleting each only after RabbitMQ confirmed it; a
file lock lets one process drain at a time. A crash between the confirm and
the delete publishes that message again: the apply path's event key makes the
second copy a no-op, so each callback takes effect exactly once.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog

log = structlog.stdlib.get_logger(__name__)
SUFFIX = ".json"


class CallbackSpool:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_path = self.directory / ".drain.lock"
        self._counter = itertools.count()

    def append(self, entry: dict[str, Any]) -> Path:
        """Store one entry durably; when this returns, a power cut cannot lose it."""
        name = f"{time.time_ns():020d}-{os.getpid():07d}-{next(self._counter):08d}{SUFFIX}"
        final = self.directory / name
        temporary = self.directory / f".{name}.tmp"
        with temporary.open("wb") as handle:
            handle.write(json.dumps(entry, separators=(",", ":")).encode())
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(temporary, final)
        self._sync_directory()
        return final

    def entries(self) -> list[Path]:
        return sorted(
            p
            for p in self.directory.iterdir()
            if p.name.endswith(SUFFIX) and not p.name.startswith(".")
        )

    def depth(self) -> int:
        return len(self.entries())

    def drain(self, publish: Callable[[dict[str, Any]], None]) -> int:
        """Publish entries oldest first, deleting each once published; stop at the first failure.

        Returns how many were published; 0 when another process is draining.
        """
        published = 0
        with self._exclusive() as held:
            if not held:
                return 0
            for path in self.entries():
                try:
                    entry = json.loads(path.read_bytes())
                except (OSError, ValueError):
                    log.error("unreadable spool entry set aside", file=path.name)
                    path.rename(path.with_suffix(".bad"))
                    continue
                publish(entry)  # raises if the broker did not confirm: the file stays
                path.unlink()
                self._sync_directory()
                published += 1
        return published

    @contextmanager
    def _exclusive(self) -> Iterator[bool]:
        with self._lock_path.open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class SpoolDrainer:
    """A daemon thread that drains the spool whenever it has entries and the broker takes them."""

    def __init__(
        self,
        spool: CallbackSpool,
        publish: Callable[[dict[str, Any]], None],
        interval_s: float = 1.0,
    ) -> None:
        self.spool = spool
        self.publish = publish
        self.interval_s = interval_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spool-drainer", daemon=True)

    def start(self) -> SpoolDrainer:
        self._thread.start()
        return self

    def nudge(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                if self.spool.depth():
                    drained = self.spool.drain(self.publish)
                    if drained:
                        log.info(
                            "spooled callbacks published", count=drained, left=self.spool.depth()
                        )
            except Exception as exc:  # noqa: BLE001 - the broker is still down: try again later
                log.info(
                    "spool not drained yet",
                    error=str(exc),
                    depth=self.spool.depth(),
                    outage="rabbitmq",
                )
