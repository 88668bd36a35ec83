"""InTouch's calls to the merchant: what each flow sends, and one thread that sends it when due.

* TouchPay: a GET to the agency's registered callback URL, the fields in the
  query string (and, when the agency says so, the same fields as a JSON body),
  with the agency's HTTP Basic credentials.
* GU: a JSON POST to the push's ``callback`` URL (with the agency's Basic
  credentials unless the agency turns that off).

Each scheduled callback is sent once and never retried; every attempt is recorded.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

import requests

from sandbox.intouch.state import (
    TOUCHPAY_FAILURE,
    TOUCHPAY_SUCCESS,
    Agency,
    Clock,
    DeliveryRecord,
    Flow,
    Transaction,
    utc_now_iso,
)

logger = logging.getLogger(__name__)

# What the simulated customer pays with on TouchPay's page.
PAYMENT_MODE: Final = "ORANGE_MONEY_SN"


@dataclass(frozen=True)
class Delivery:
    """One callback to send: where, how, with what."""

    order_number: str
    flow: Flow
    method: str
    url: str | None
    query: Mapping[str, str] = field(default_factory=dict)
    body: Mapping[str, object] | None = None
    basic: tuple[str, str] | None = None


SendFn = Callable[[Delivery, float], int]


def touchpay_fields(transaction: Transaction) -> dict[str, str]:
    """TouchPay's callback fields: amounts as "22200.0", the validation time in epoch ms."""
    succeeded = transaction.outcome.status == "success"
    amount = f"{float(transaction.amount):.1f}"
    return {
        "payment_mode": PAYMENT_MODE,
        "paid_sum": amount,
        "paid_amount": amount,
        "payment_token": transaction.payment_token,
        "payment_status": TOUCHPAY_SUCCESS if succeeded else TOUCHPAY_FAILURE,
        "command_number": transaction.order_number,
        "payment_validation_date": str(transaction.validated_at_ms),
    }


def gu_body(transaction: Transaction, now: float) -> dict[str, object]:
    status = transaction.status(now)
    return {
        "service_id": transaction.service_code,
        "gu_transaction_id": transaction.gu_transaction_id,
        "status": status,
        "partner_transaction_id": transaction.order_number,
        "call_back_url": transaction.callback_url,
        "commission": "0",
        "message": {
            "SUCCESSFUL": "Transaction réussie",
            "FAILED": "Transaction échouée",
        }.get(status, "Transaction en cours"),
    }


def delivery_for(transaction: Transaction, agency: Agency, now: float) -> Delivery | None:
    """The callback a transaction's (due) state calls for; None when there is none to send."""
    basic = (agency.callback_username, agency.callback_password)
    if transaction.flow == "touchpay":
        if transaction.outcome.status == "pending":
            return None  # TouchPay calls back on a final payment only
        fields = touchpay_fields(transaction)
        return Delivery(
            transaction.order_number,
            "touchpay",
            "GET",
            agency.callback_url,
            query=fields,
            body=dict(fields) if agency.callback_json_body else None,
            basic=basic if agency.callback_username else None,
        )
    return Delivery(
        transaction.order_number,
        "gu",
        "POST",
        transaction.callback_url,
        body=gu_body(transaction, max(now, transaction.due_at)),
        basic=basic if agency.basic_on_gu_callbacks and agency.callback_username else None,
    )


def send(delivery: Delivery, timeout_s: float) -> int:
    """Send one callback and return the HTTP status; raise on no answer."""
    if delivery.url is None:
        raise ValueError("no callback URL (set the agency's callback_url)")
    with requests.request(
        delivery.method,
        delivery.url,
        params=dict(delivery.query) or None,
        json=delivery.body,
        auth=delivery.basic,
        timeout=timeout_s,
    ) as reply:
        return reply.status_code


@dataclass(order=True)
class _Job:
    due_at: float
    seq: int
    delivery: Delivery = field(compare=False)


class CallbackDispatcher:
    """A heap of due times served by one lazily started daemon thread."""

    _MAX_WAIT_S: Final = 0.2

    def __init__(
        self,
        record: Callable[[DeliveryRecord], None],
        *,
        clock: Clock,
        timeout_s: float,
        sender: SendFn = send,
    ) -> None:
        self._record = record
        self._clock = clock
        self._timeout_s = timeout_s
        self._send = sender
        self._cond = threading.Condition()
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def schedule(self, due_at: float, delivery: Delivery) -> None:
        with self._cond:
            if self._stopping:
                return
            heapq.heappush(self._heap, _Job(due_at, next(self._seq), delivery))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sandbox-intouch-callbacks", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def schedule_transaction(self, transaction: Transaction, agency: Agency) -> None:
        """Schedule what its outcome asks for: no callback, one, or the same one twice."""
        outcome = transaction.outcome
        times = {
            "none": [],
            "once": [transaction.due_at],
            "twice": [transaction.due_at, transaction.due_at + max(outcome.callback_delay_s, 0.1)],
        }[outcome.callback]
        delivery = delivery_for(transaction, agency, transaction.due_at)
        if delivery is None:
            return
        for due_at in times:
            self.schedule(due_at, delivery)

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
            self._deliver(job.delivery)

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

    def _deliver(self, delivery: Delivery) -> None:
        started_at, started = utc_now_iso(), time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            status = self._send(delivery, self._timeout_s)
        except (requests.RequestException, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            # One bad callback must not end the thread that sends all the others.
            logger.exception("callback to %s failed unexpectedly", delivery.url)
            error = f"{type(exc).__name__}: {exc}"
        self._record(
            DeliveryRecord(
                order_number=delivery.order_number,
                flow=delivery.flow,
                method=delivery.method,
                url=delivery.url or "",
                query=dict(delivery.query),
                body=delivery.body,
                basic_user=delivery.basic[0] if delivery.basic else None,
                status=status,
                error=error,
                time=started_at,
                duration_ms=round((time.monotonic() - started) * 1000, 1),
            )
        )
