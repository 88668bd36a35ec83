"""STK callbacks: their body, and one background thread that POSTs them when due.

Like Daraja, each scheduled callback is POSTed once and never retried; every
attempt, answered or not, is handed to ``record``.
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
from typing import Final

import requests

from sandbox.daraja.state import Clock, DeliveryRecord, Transaction, utc_now_iso

logger = logging.getLogger(__name__)

CALLBACK_HEADERS: Final = {"Content-Type": "application/json;charset=UTF-8"}

PostFn = Callable[[str, Mapping[str, object], float], int]


def callback_body(transaction: Transaction) -> dict[str, object]:
    """The ``{"Body": {"stkCallback": ...}}`` document; metadata only on success."""
    outcome = transaction.outcome
    stk: dict[str, object] = {
        "MerchantRequestID": transaction.merchant_request_id,
        "CheckoutRequestID": transaction.checkout_request_id,
        "ResultCode": outcome.result_code,
        "ResultDesc": outcome.result_desc,
    }
    if outcome.succeeded:
        amount = (
            transaction.amount if outcome.amount_in_callback is None else outcome.amount_in_callback
        )
        stk["CallbackMetadata"] = {
            "Item": [
                {"Name": "Amount", "Value": float(amount)},
                {"Name": "MpesaReceiptNumber", "Value": transaction.receipt},
                {"Name": "Balance"},
                {"Name": "TransactionDate", "Value": transaction.transaction_date},
                {"Name": "PhoneNumber", "Value": int(transaction.phone)},
            ]
        }
    return {"Body": {"stkCallback": stk}}


def post_json(url: str, body: Mapping[str, object], timeout_s: float) -> int:
    """POST ``body`` as Daraja does and return the HTTP status; raise on no answer."""
    payload = json.dumps(body).encode("utf-8")
    with requests.post(url, data=payload, headers=CALLBACK_HEADERS, timeout=timeout_s) as reply:
        return reply.status_code


@dataclass(order=True)
class _Job:
    due_at: float
    seq: int
    checkout_request_id: str = field(compare=False)
    url: str = field(compare=False)
    body: Mapping[str, object] = field(compare=False)


class CallbackDispatcher:
    """A heap of due times served by one lazily started daemon thread.

    ``schedule`` never blocks on the network. ``stop`` drops what is pending and
    joins the thread; a stopped dispatcher ignores new work.
    """

    # Why a cap: an injected test clock can jump forward without notifying us.
    _MAX_WAIT_S: Final = 0.2

    def __init__(
        self,
        record: Callable[[DeliveryRecord], None],
        *,
        clock: Clock,
        timeout_s: float,
        post: PostFn = post_json,
    ) -> None:
        self._record = record
        self._clock = clock
        self._timeout_s = timeout_s
        self._post = post
        self._cond = threading.Condition()
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def schedule(
        self, due_at: float, checkout_request_id: str, url: str, body: Mapping[str, object]
    ) -> None:
        """POST ``body`` to ``url`` once, as soon as the clock reaches ``due_at``."""
        with self._cond:
            if self._stopping:
                return
            heapq.heappush(
                self._heap, _Job(due_at, next(self._seq), checkout_request_id, url, body)
            )
            self._ensure_started()
            self._cond.notify()

    def schedule_transaction(self, transaction: Transaction) -> None:
        """Schedule the callbacks its outcome asks for: none, once, or twice."""
        outcome = transaction.outcome
        times = {
            "none": [],
            "once": [transaction.due_at],
            "twice": [transaction.due_at, transaction.due_at + outcome.callback_delay_s],
        }[outcome.callback]
        body = callback_body(transaction)
        for due_at in times:
            self.schedule(due_at, transaction.checkout_request_id, transaction.callback_url, body)

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def clear(self) -> None:
        """Drop every callback not yet sent."""
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

    def _ensure_started(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sandbox-callbacks", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while (job := self._next_due()) is not None:
            self._deliver(job)

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
        started_at = utc_now_iso()
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            status = self._post(job.url, job.body, self._timeout_s)
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            # One bad callback must not end the thread that sends all the others.
            logger.exception("callback to %s failed unexpectedly", job.url)
            error = f"{type(exc).__name__}: {exc}"
        self._record(
            DeliveryRecord(
                checkout_request_id=job.checkout_request_id,
                url=job.url,
                body=job.body,
                status=status,
                error=error,
                time=started_at,
                duration_ms=round((time.monotonic() - started) * 1000, 1),
            )
        )
