"""Webhook deliveries: one background thread POSTs each state change when due, and retries.

Like IntaSend, a delivery that is not answered 2xx is retried, after each of
the configured delays in turn (5 retries by default); every attempt is
recorded. The URL and challenge are the account's dashboard webhook at the
moment the state changed; with none set, the change is recorded as undelivered.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import requests

from sandbox.due import DueQueue
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


@dataclass
class _Job:
    invoice_id: str
    state: str
    attempt: int = 1
    url: str | None = None
    body: Mapping[str, object] | None = None


class WebhookDispatcher(DueQueue[_Job]):
    """Webhook deliveries, due on the clock, sent and retried by one background thread."""

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
        super().__init__(clock=clock, thread_name="sandbox-intasend-webhooks")
        self._prepare = prepare
        self._record = record
        self._timeout_s = timeout_s
        self._retry_delays_s = retry_delays_s
        self._post = post

    def schedule(self, due_at: float, invoice_id: str, state: str) -> None:
        """Tell the account's webhook that ``invoice_id`` is in ``state``, at ``due_at``."""
        self.push(due_at, _Job(invoice_id, state))

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
            retry = _Job(job.invoice_id, job.state, job.attempt + 1, job.url, job.body)
            self.push(self.now() + delay, retry)

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
