"""Webhook deliveries: one background thread POSTs each state change when due, and retries.

Like IntaSend, a delivery that is not answered 2xx is retried, after each of
the configured delays in turn (5 retries by default); every attempt is
recorded. The URL and challenge are the account's dashboard webhook at the
moment the state changed; with none set, the change is recorded as undelivered.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import requests

from sandbox.intasend.state import Clock, DeliveryRecord

logger = logging.getLogger(__name__)

HEADERS: Final = {"Content-Type": "application/json", "User-Agent": "IntaSend-Webhooks/sandbox"}
NO_WEBHOOK: Final = "no webhook configured for the account"

PostFn = Callable[[str, Mapping[str, object], float], int]
# (invoice_id, state) -> (url, body), or None when the account has no webhook.
Prepare = Callable[[str, str], tuple[str, Mapping[str, object]] | None]


def post_json(url: str, body: Mapping[str, object], timeout_s: float) -> int:
    payload = json.dumps(body).encode("utf-8")
    with requests.post(url, data=payload, headers=HEADERS, timeout=timeout_s) as reply:
        return reply.status_code


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(order=True)
class _Job:
    due_at: float
    seq: int
    invoice_id: str = field(compare=False)
    state: str = field(compare=False)
    attempt: int = field(compare=False, default=1)
    url: str | None = field(compare=False, default=None)
    body: Mapping[str, object] | None = field(compare=False, default=None)


class WebhookDispatcher:
    """A heap of due deliveries served by one lazily started daemon thread.

    ``schedule`` never blocks on the network; ``stop`` drops what is pending and
    joins the thread; a stopped dispatcher ignores new work.
    """

    _MAX_WAIT_S: Final = 0.2

    def __init__(
        self,
        prepare: Prepare,
        record: Callable[[DeliveryRecord], None],
        *,
        clock: Clock,
        timeout_s: float,
        retry_delays_s: tuple[float, ...],
        post: PostFn = post_json,
    ) -> None:
        self._prepare = prepare
        self._record = record
        self._clock = clock
        self._timeout_s = timeout_s
        self._retry_delays_s = retry_delays_s
        self._post = post
        self._cond = threading.Condition()
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def schedule(self, due_at: float, invoice_id: str, state: str) -> None:
        """Tell the account's webhook that ``invoice_id`` is in ``state``, at ``due_at``."""
        self._push(_Job(due_at, next(self._seq), invoice_id, state))

    def _push(self, job: _Job) -> None:
        with self._cond:
            if self._stopping:
                return
            heapq.heappush(self._heap, job)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sandbox-intasend-webhooks", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def clear(self) -> None:
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

    def _run(self) -> None:
        while (job := self._next_due()) is not None:
            try:
                self._deliver(job)
            except Exception:
                # One bad delivery must not end the thread that sends all the others.
                logger.exception("webhook for %s failed unexpectedly", job.invoice_id)

    def _next_due(self) -> _Job | None:
        with self._cond:
            while not self._stopping:
                wait: float | None = None
                if self._heap:
                    wait = self._heap[0].due_at - self._clock()
                    if wait <= 0:
                        return heapq.heappop(self._heap)
                    wait = min(wait, self._MAX_WAIT_S)
                self._cond.wait(wait)
            return None

    def _deliver(self, job: _Job) -> None:
        if job.url is None or job.body is None:
            prepared = self._prepare(job.invoice_id, job.state)
            if prepared is None:
                self._record_attempt(job, None, NO_WEBHOOK, utc_now_iso(), time.monotonic())
                return
            job.url, job.body = prepared
        started_at, started = utc_now_iso(), time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            status = self._post(job.url, job.body, self._timeout_s)
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
        self._record_attempt(job, status, error, started_at, started)
        delivered = status is not None and 200 <= status < 300
        if not delivered and job.attempt <= len(self._retry_delays_s):
            delay = self._retry_delays_s[job.attempt - 1]
            self._push(
                _Job(
                    self._clock() + delay,
                    next(self._seq),
                    job.invoice_id,
                    job.state,
                    job.attempt + 1,
                    job.url,
                    job.body,
                )
            )

    def _record_attempt(
        self, job: _Job, status: int | None, error: str | None, at: str, started: float
    ) -> None:
        self._record(
            DeliveryRecord(
                invoice_id=job.invoice_id,
                state=job.state,
                url=job.url,
                attempt=job.attempt,
                body=dict(job.body) if job.body is not None else None,
                status=status,
                error=error,
                time=at,
                duration_ms=round((time.monotonic() - started) * 1000, 1),
            )
        )
