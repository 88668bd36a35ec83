"""STK callbacks: their body, and one background thread that POSTs them when due.

Like Daraja, each scheduled callback is POSTed once and never retried; every
attempt, answered or not, is handed to ``record``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import requests

from sandbox.daraja.state import Clock, DeliveryRecord, Transaction, utc_now_iso
from sandbox.due import DueQueue

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


@dataclass(frozen=True)
class _Callback:
    checkout_request_id: str
    url: str
    body: Mapping[str, object]


class CallbackDispatcher(DueQueue[_Callback]):
    """Callbacks POSTed when due, once each, by one background thread (see sandbox/due.py)."""

    def __init__(
        self,
        record: Callable[[DeliveryRecord], None],
        *,
        clock: Clock,
        timeout_s: float,
        post: PostFn = post_json,
    ) -> None:
        super().__init__(clock=clock, thread_name="sandbox-callbacks")
        self._record = record
        self._timeout_s = timeout_s
        self._post = post

    def schedule(
        self, due_at: float, checkout_request_id: str, url: str, body: Mapping[str, object]
    ) -> None:
        """POST ``body`` to ``url`` once, as soon as the clock reaches ``due_at``."""
        self.push(due_at, _Callback(checkout_request_id, url, body))

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

    def _deliver(self, job: _Callback) -> None:
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
