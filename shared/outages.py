"""Logs that stay readable while PostgreSQL or RabbitMQ is down.

During an outage every thread that touches the service fails, and so do pika's,
psycopg's and dramatiq's own loggers, many times a second. :class:`OutageLimiter`,
a filter on the one log handler every process has (``configure_logging``), lets
through, per service:

* the first failure, marked ``outage_started`` (its traceback dropped: the
  error's type and text stay on the line);
* then at most one line every ``every_s`` (30 s), carrying ``attempts``: how many
  failures it stands for since the previous line;
* and, once a probe finds the service reachable again, one line saying so, with
  the outage's duration and the number of failures it caused.

What counts as a failure: an event that says so itself (``outage="rabbitmq"``),
any warning or error from pika, and any record whose exception (or text) is a
connection failure of psycopg/SQLAlchemy or pika/dramatiq. Everything else
passes untouched.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

RABBITMQ = "rabbitmq"
POSTGRESQL = "postgresql"
EVERY_S = 30.0
PROBE_EVERY_S = 2.0

_BROKER_TEXT = re.compile(
    r"(?i)amqp|rabbitmq|pika|connection to the broker|consumer encountered a connection error"
    r"|restarting consumer|broker unavailable|stream ?lost|connectionclosed"
)
_DATABASE_TEXT = re.compile(
    r"(?i)psycopg|could not connect to server|connection to server at .* failed"
    r"|database unavailable|server closed the connection"
)
_CONNECTIONISH = re.compile(
    r"(?i)refused|unreachable|timed? ?out|closed|lost|reset|unavailable|connect"
)


@dataclass
class _Outage:
    started: float
    last_line: float
    since_line: int = 0  # failures not shown since the last line
    total: int = 1


def _exception_of(record: logging.LogRecord) -> BaseException | None:
    if record.exc_info and isinstance(record.exc_info, tuple):
        return record.exc_info[1]
    return None


def _event(record: logging.LogRecord) -> dict[str, Any] | None:
    """structlog's event dict, for records our own loggers made."""
    return record.msg if isinstance(record.msg, dict) else None


def classify(record: logging.LogRecord) -> str | None:
    """The service a record reports a connection failure of, or None."""
    event = _event(record)
    if event is not None and event.get("outage") in (RABBITMQ, POSTGRESQL):
        return str(event["outage"])
    restarting = record.name.startswith("dramatiq") and "Restarting consumer" in _text(record)
    if record.levelno < logging.WARNING and not restarting:
        return None
    if record.name.startswith("pika"):
        return RABBITMQ
    error = _exception_of(record)
    names = {type(e).__module__.split(".")[0] for e in _chain(error)}
    text = _text(record) + " " + " ".join(repr(e) for e in _chain(error))
    if names & {"psycopg", "sqlalchemy"} and _CONNECTIONISH.search(text):
        return POSTGRESQL
    if "pika" in names or (record.name.startswith("dramatiq") and _BROKER_TEXT.search(text)):
        return RABBITMQ
    if _DATABASE_TEXT.search(text) and _CONNECTIONISH.search(text):
        return POSTGRESQL
    if _BROKER_TEXT.search(text) and _CONNECTIONISH.search(text):
        return RABBITMQ
    return None


def _chain(error: BaseException | None) -> list[BaseException]:
    found: list[BaseException] = []
    while error is not None and len(found) < 5:
        found.append(error)
        error = error.__cause__ or error.__context__
    return found


def _text(record: logging.LogRecord) -> str:
    event = _event(record)
    if event is not None:
        return " ".join(str(v) for v in event.values())
    try:
        return record.getMessage()
    except (TypeError, ValueError):  # a foreign record whose arguments do not format
        return str(record.msg)


class OutageLimiter(logging.Filter):
    """Lets one line per service through every ``every_s`` during an outage (see module)."""

    def __init__(
        self,
        *,
        every_s: float = EVERY_S,
        clock: Callable[[], float] = time.monotonic,
        on_open: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        self.every_s = every_s
        self.clock = clock
        self.on_open = on_open
        self._lock = threading.Lock()
        self._open: dict[str, _Outage] = {}

    def open_outages(self) -> list[str]:
        with self._lock:
            return list(self._open)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "outage_recovered", False):
            return True
        service = classify(record)
        if service is None:
            return True
        now = self.clock()
        opened = False
        with self._lock:
            outage = self._open.get(service)
            if outage is None:
                self._open[service] = _Outage(started=now, last_line=now)
                opened, attempts = True, 1
            else:
                outage.total += 1
                outage.since_line += 1
                if now - outage.last_line < self.every_s:
                    return False
                attempts, outage.since_line, outage.last_line = outage.since_line, 0, now
        self._annotate(record, service, opened, attempts)
        if opened and self.on_open is not None:
            self.on_open(service)
        return True

    def recovered(self, service: str) -> tuple[float, int] | None:
        """Close ``service``'s outage: (its duration in seconds, failures seen), or None."""
        with self._lock:
            outage = self._open.pop(service, None)
        if outage is None:
            return None
        return self.clock() - outage.started, outage.total

    @staticmethod
    def _annotate(record: logging.LogRecord, service: str, opened: bool, attempts: int) -> None:
        error = _exception_of(record)
        if error is not None and record.levelno < logging.CRITICAL:
            record.exc_info, record.exc_text = None, None
        extra: dict[str, Any] = {"outage": service}
        if opened:
            extra["outage_started"] = True
        else:
            extra["attempts"] = attempts
        if error is not None:
            extra["error"] = f"{type(error).__name__}: {str(error)[:300]}"
        event = _event(record)
        if event is not None:
            event.update(extra)
        else:
            for key, value in extra.items():
                setattr(record, key, value)


class OutageWatch:
    """Closes outages: while one is open, probes the service until it answers again."""

    def __init__(
        self,
        limiter: OutageLimiter,
        probes: dict[str, Callable[[], bool]],
        *,
        every_s: float = PROBE_EVERY_S,
        logger: logging.Logger | None = None,
    ) -> None:
        self.limiter = limiter
        self.probes = probes
        self.every_s = every_s
        self.logger = logger or logging.getLogger("malipo.outages")
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        limiter.on_open = self.opened

    def opened(self, service: str) -> None:
        probe = self.probes.get(service)
        if probe is None:
            return
        with self._lock:
            running = self._threads.get(service)
            if running is not None and running.is_alive():
                return
            thread = threading.Thread(
                target=self._watch, args=(service, probe), name=f"outage-{service}", daemon=True
            )
            self._threads[service] = thread
        thread.start()

    def _watch(self, service: str, probe: Callable[[], bool]) -> None:
        while True:
            time.sleep(self.every_s)
            try:
                back = probe()
            except Exception:  # noqa: BLE001 - a probe that fails means "not back yet"
                back = False
            if back:
                closed = self.limiter.recovered(service)
                if closed is not None:
                    duration, failures = closed
                    self.logger.warning(
                        "%s reachable again after %.0f s (%d failures logged or counted)",
                        service,
                        duration,
                        failures,
                        extra={
                            "outage": service,
                            "outage_recovered": True,
                            "outage_s": round(duration, 1),
                            "failures": failures,
                        },
                    )
                return
