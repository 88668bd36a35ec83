"""A durable local spool for callbacks the broker could not confirm.

Daraja delivers a callback once and never again, so when RabbitMQ is down an
authenticated callback is written here (one file per message, fsynced, then
renamed into place and the directory fsynced) before the gateway is answered.
A drainer thread in each ingress process publishes the files to RabbitMQ in
name order (arrival time), deleting each only after RabbitMQ confirmed it; a
file lock lets one process drain at a time. A crash between the confirm and
the delete publishes that message again: the apply path's event key makes the
second copy a no-op, so each callback takes effect exactly once.

Anything in the spool is published with the ingress's authority, so the spool is
a trust boundary of its own: the directory is 0700 and each file 0600 whatever
the umask (they hold whole callback bodies), each entry is sealed with an
HMAC-SHA256 under the settings' spool key (``Settings.spool_seal_key``), and the
drainer publishes only sealed ``apply_callback`` entries for the ``callbacks``
queue. Anything else (a torn write, a file from another key, a forged actor) is
moved to ``quarantine/`` and logged, never published.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import hmac
import itertools
import json
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog

from shared.messages import CONTEXT_OPTIONS, ApplyCallback

log = structlog.stdlib.get_logger(__name__)
SUFFIX = ".json"
QUARANTINE = "quarantine"
SEAL_VERSION = 1
# The only message the spool carries (shared.messages.APPLY_CALLBACK; named here, not
# imported, so that a change there cannot silently widen what a spool file may ask for).
CALLBACK_ACTOR = "apply_callback"
CALLBACK_QUEUE = "callbacks"
CALLBACK_FIELDS = frozenset(field.name for field in dataclasses.fields(ApplyCallback))
DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


class SpoolUnusable(Exception):
    """The spool directory cannot be used: the ingress must not start (callbacks would be lost)."""


class SealBroken(ValueError):
    """A spool file that is not a sealed callback entry written with this spool's key."""


def prepare_directory(directory: str | Path) -> Path:
    """The spool directory, created 0700 if missing, checked usable; SpoolUnusable otherwise.

    For start-up: a spool that cannot be written is found now, not during an outage.
    """
    path = Path(directory)
    variable = "MALIPO_SPOOL_DIR"
    if not path.is_absolute():
        raise SpoolUnusable(f"{variable} must be an absolute path (got {str(directory)!r})")
    try:
        path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        if not path.is_dir():
            raise SpoolUnusable(f"{variable}={path} is not a directory")
        if stat.S_IMODE(path.stat().st_mode) != DIRECTORY_MODE:
            os.chmod(path, DIRECTORY_MODE)  # mkdir's mode is cut by the umask; old ones were 0755
        probe = path / f".probe-{os.getpid()}-{secrets.token_hex(4)}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        os.close(fd)
        probe.unlink()
    except SpoolUnusable:
        raise
    except OSError as exc:
        raise SpoolUnusable(
            f"{variable}={path} cannot be created or written by this user "
            f"(uid {os.getuid()}): {exc.strerror or exc}. Create it owned by the ingress user, "
            "or point the variable at a writable durable directory"
        ) from None
    return path


class CallbackSpool:
    def __init__(self, directory: str | Path, key: bytes | None = None) -> None:
        """A spool in ``directory`` sealing with ``key``.

        Without a key the spool seals with a random one of its own: only this object can
        drain what it wrote (enough for tests; a process that shares its spool with a
        drainer passes the settings' key, see :meth:`from_settings`).
        """
        self.directory = prepare_directory(Path(directory).absolute())
        self._key = key if key is not None else secrets.token_bytes(32)
        if len(self._key) < 16:
            raise ValueError("a spool key must be at least 16 bytes")
        self._lock_path = self.directory / ".drain.lock"
        self._counter = itertools.count()

    @classmethod
    def from_settings(cls, settings: Any) -> CallbackSpool:
        """The spool the settings describe (MALIPO_SPOOL_DIR, sealed with its spool key)."""
        return cls(settings.spool_dir, key=settings.spool_seal_key())

    @property
    def quarantine_directory(self) -> Path:
        return self.directory / QUARANTINE

    def append(self, entry: dict[str, Any]) -> Path:
        """Store one entry durably; when this returns, a power cut cannot lose it."""
        name = f"{time.time_ns():020d}-{os.getpid():07d}-{next(self._counter):08d}{SUFFIX}"
        final = self.directory / name
        temporary = self.directory / f".{name}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), FILE_MODE)  # whatever the umask left of 0600
            handle.write(self._seal(name, entry))
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(temporary, final)
        self._sync_directory()
        return final

    def _mac(self, name: str, body: str) -> str:
        # The file name is sealed too: a sealed entry cannot be passed off under another name.
        message = f"malipo-spool-v{SEAL_VERSION}\n{name}\n{body}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def _seal(self, name: str, entry: dict[str, Any]) -> bytes:
        body = json.dumps(entry, separators=(",", ":"), ensure_ascii=True)
        sealed = {"v": SEAL_VERSION, "entry": body, "mac": self._mac(name, body)}
        return json.dumps(sealed, separators=(",", ":")).encode()

    def open_entry(self, path: Path) -> dict[str, Any]:
        """A file's entry once its seal and its contents check out; SealBroken otherwise."""
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise SealBroken(f"unreadable: {exc.strerror or exc}") from None
        try:
            sealed = json.loads(raw)
        except (ValueError, RecursionError):
            raise SealBroken("not JSON (a torn write?)") from None
        if not isinstance(sealed, dict) or sealed.get("v") != SEAL_VERSION:
            raise SealBroken("not a sealed spool entry")
        body, mac = sealed.get("entry"), sealed.get("mac")
        if not isinstance(body, str) or not isinstance(mac, str):
            raise SealBroken("not a sealed spool entry")
        if not hmac.compare_digest(self._mac(path.name, body), mac):
            raise SealBroken("HMAC does not match (written with another key, or altered)")
        try:
            entry = json.loads(body)
        except (ValueError, RecursionError):
            raise SealBroken("sealed entry is not JSON") from None
        check_callback_entry(entry)
        return entry  # type: ignore[no-any-return]

    def quarantined(self) -> list[Path]:
        if not self.quarantine_directory.is_dir():
            return []
        return sorted(self.quarantine_directory.iterdir())

    def _quarantine(self, path: Path, reason: str) -> None:
        """Move a refused file aside (kept for an operator, never published) and say so."""
        target_dir = self.quarantine_directory
        target_dir.mkdir(mode=DIRECTORY_MODE, exist_ok=True)
        os.chmod(target_dir, DIRECTORY_MODE)
        target = target_dir / path.name
        os.rename(path, target)
        self._sync_directory()
        log.error(
            "spool entry quarantined, not published",
            file=path.name,
            reason=reason,
            quarantined_as=str(target),
            action=(
                "inspect it: a file the ingress did not write means someone could write to "
                "MALIPO_SPOOL_DIR (check its owner and mode 0700); one written under a previous "
                "MALIPO_SPOOL_KEY or MALIPO_SECRET_KEY is a real callback to re-post by hand"
            ),
        )

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
                    entry = self.open_entry(path)
                except SealBroken as exc:
                    self._quarantine(path, str(exc))
                    continue
                publish(entry)  # raises if the broker did not confirm: the file stays
                path.unlink()
                self._sync_directory()
                published += 1
        return published

    @contextmanager
    def _exclusive(self) -> Iterator[bool]:
        fd = os.open(self._lock_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        with os.fdopen(fd, "a") as lock:
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


def check_callback_entry(entry: object) -> None:
    """Only what ``spool_entry`` builds for the callback actor: SealBroken for anything else."""
    if not isinstance(entry, dict) or set(entry) != {"actor", "queue", "kwargs", "options"}:
        raise SealBroken("not a callback entry (actor, queue, kwargs, options)")
    if entry["actor"] != CALLBACK_ACTOR or entry["queue"] != CALLBACK_QUEUE:
        raise SealBroken(
            f"names actor {str(entry['actor'])[:40]!r} on queue {str(entry['queue'])[:40]!r}: "
            f"only {CALLBACK_ACTOR!r} on {CALLBACK_QUEUE!r} is spooled"
        )
    kwargs, options = entry["kwargs"], entry["options"]
    if not isinstance(kwargs, dict) or not set(kwargs) <= CALLBACK_FIELDS:
        raise SealBroken("kwargs are not an apply_callback message's fields")
    if not isinstance(options, dict) or not set(options) <= set(CONTEXT_OPTIONS):
        raise SealBroken(f"options may carry only {', '.join(CONTEXT_OPTIONS)}")
    if not all(isinstance(value, str) for value in options.values()):
        raise SealBroken("options must be text")


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
