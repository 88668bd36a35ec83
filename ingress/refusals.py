"""Refused callbacks, cheaply: an in-process limiter and in-process counts.

Anyone can POST to ``/callbacks``. A refused callback must cost the ingress almost
nothing, or a flood of made-up secrets becomes database reads, broker publishes and
rows. So, per ingress process:

- :class:`RefusalLimiter` spends a token per refused callback from the source
  address's bucket and from a global one. A source (or the whole process) out of
  tokens is answered ``429`` before any I/O; callbacks whose merchant is already
  known to the process never ask the limiter, so a flood does not lock real
  gateways out. Both maps are bounded: a flood from many addresses forgets the
  oldest sources, never grows memory.
- :class:`RefusalTally` counts refusals per (minute, gateway, merchant, source,
  reason) and a reporter thread publishes the counts every few seconds as one
  message (``count_refused_callbacks``); at most ``max_buckets`` buckets per
  report, the rest folded into source ``"*"``. Counts of a process killed between
  reports are lost: they are counts of refused requests, never money.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from shared.messages import BrokerUnavailable

log = structlog.stdlib.get_logger(__name__)
OVERFLOW_SOURCE = "*"


@dataclass
class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second."""

    capacity: float
    rate: float
    tokens: float
    at: float

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def seconds_until_one(self) -> float:
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate


@dataclass(frozen=True)
class LimitDecision:
    allowed: bool
    retry_after_s: int = 0


class RefusalLimiter:
    """How many refused callbacks a source (and the process) may cost per minute."""

    def __init__(
        self,
        per_source_per_min: int,
        global_per_min: int,
        *,
        max_sources: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_source_per_min <= 0 or global_per_min <= 0:
            raise ValueError("refusal limits must be positive")
        self.per_source = per_source_per_min
        self.max_sources = max_sources
        self.clock = clock
        self._sources: OrderedDict[str, TokenBucket] = OrderedDict()
        self._global = self._bucket(global_per_min, clock())
        self._lock = threading.Lock()

    @staticmethod
    def _bucket(per_min: int, now: float) -> TokenBucket:
        return TokenBucket(capacity=per_min, rate=per_min / 60.0, tokens=per_min, at=now)

    def check(self, source: str) -> LimitDecision:
        """May one more refusal from ``source`` be afforded? (Spends nothing.)"""
        now = self.clock()
        with self._lock:
            self._global.refill(now)
            wait = self._global.seconds_until_one()
            bucket = self._sources.get(source)
            if bucket is not None:
                bucket.refill(now)
                wait = max(wait, bucket.seconds_until_one())
        if wait <= 0:
            return LimitDecision(True)
        return LimitDecision(False, max(1, math.ceil(wait)))

    def spend(self, source: str) -> None:
        """One refusal happened: a token from the source's bucket and from the global one."""
        now = self.clock()
        with self._lock:
            self._global.refill(now)
            self._global.tokens = max(0.0, self._global.tokens - 1)
            bucket = self._sources.get(source)
            if bucket is None:
                bucket = self._sources[source] = self._bucket(self.per_source, now)
                while len(self._sources) > self.max_sources:
                    self._sources.popitem(last=False)
            else:
                self._sources.move_to_end(source)
            bucket.refill(now)
            bucket.tokens = max(0.0, bucket.tokens - 1)


BucketKey = tuple[str, str, str | None, str, str]  # minute, gateway, merchant, source, reason


@dataclass
class _Count:
    count: int
    first_at: datetime
    last_at: datetime
    sample_sha256: str | None


@dataclass
class RefusalTally:
    """Refusals counted in memory until the next report."""

    max_buckets: int = 1_000
    _counts: dict[BucketKey, _Count] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(
        self,
        *,
        gateway: str,
        reason: str,
        source: str | None,
        merchant_id: str | None = None,
        body_sha256: str | None = None,
        at: datetime | None = None,
    ) -> None:
        at = at or datetime.now(UTC)
        minute = at.replace(second=0, microsecond=0).isoformat()
        key: BucketKey = (minute, gateway, merchant_id, source or "unknown", reason)
        with self._lock:
            count = self._counts.get(key)
            if count is None and len(self._counts) >= self.max_buckets:
                key = (minute, gateway, merchant_id, OVERFLOW_SOURCE, reason)
                count = self._counts.get(key)
            if count is None:
                self._counts[key] = _Count(1, at, at, body_sha256)
                return
            count.count += 1
            count.last_at = max(count.last_at, at)
            count.sample_sha256 = body_sha256 or count.sample_sha256

    def take(self) -> list[dict[str, Any]]:
        """The buckets counted so far, as report entries; the tally starts again from zero."""
        with self._lock:
            counts, self._counts = self._counts, {}
        return [
            {
                "minute": minute,
                "gateway": gateway,
                "merchant_id": merchant,
                "source": source,
                "reason": reason,
                "count": c.count,
                "first_at": c.first_at.isoformat(),
                "last_at": c.last_at.isoformat(),
                "sample_sha256": c.sample_sha256,
            }
            for (minute, gateway, merchant, source, reason), c in counts.items()
        ]

    def give_back(self, buckets: list[dict[str, Any]]) -> None:
        """Counts a report could not deliver, kept for the next one."""
        for bucket in buckets:
            key: BucketKey = (
                bucket["minute"],
                bucket["gateway"],
                bucket["merchant_id"],
                bucket["source"],
                bucket["reason"],
            )
            first, last = (datetime.fromisoformat(bucket[k]) for k in ("first_at", "last_at"))
            with self._lock:
                count = self._counts.get(key)
                if count is None:
                    self._counts[key] = _Count(
                        bucket["count"], first, last, bucket["sample_sha256"]
                    )
                else:
                    count.count += bucket["count"]
                    count.first_at = min(count.first_at, first)
                    count.last_at = max(count.last_at, last)


class RefusalReporter:
    """A daemon thread that publishes the tally every ``interval_s`` (started on first use)."""

    def __init__(
        self,
        tally: RefusalTally,
        publish: Callable[[list[dict[str, Any]]], object],
        interval_s: float,
        *,
        max_kept: int = 10_000,
    ) -> None:
        self.tally = tally
        self.publish = publish
        self.interval_s = interval_s
        self.max_kept = max_kept
        self._thread: threading.Thread | None = None
        self._started = threading.Lock()
        self._stop = threading.Event()

    def ensure_running(self) -> None:
        if self._thread is not None:
            return
        with self._started:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="refused-callback-reporter", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.report()
            except Exception:
                log.exception("refused callbacks could not be reported")

    def report(self) -> int:
        """Publish what was counted; the number of buckets sent (kept for later on failure)."""
        buckets = self.tally.take()
        if not buckets:
            return 0
        try:
            self.publish(buckets)
        except BrokerUnavailable as exc:  # keep the counts for the next report, within bounds
            if len(buckets) <= self.max_kept:
                self.tally.give_back(buckets)
            log.warning(
                "refused callbacks not reported yet", buckets=len(buckets), error=str(exc)[:200]
            )
            return 0
        by_reason: dict[str, int] = {}
        for bucket in buckets:
            by_reason[bucket["reason"]] = by_reason.get(bucket["reason"], 0) + bucket["count"]
        # One line per report, whatever the flood: what was refused, why, from how many places.
        log.warning(
            "callbacks refused",
            count=sum(by_reason.values()),
            reasons=by_reason,
            sources=len({bucket["source"] for bucket in buckets}),
        )
        return len(buckets)

    def stop(self) -> None:
        self._stop.set()
