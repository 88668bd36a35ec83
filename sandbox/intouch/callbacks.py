"""InTouch's calls to the merchant: what each flow sends, and one thread that sends it when due.

* TouchPay: a GET to the agency's registered callback URL, the fields in the
  query string (and, when the agency says so, the same fields as a JSON body),
  with the agency's HTTP Basic credentials.
* GU: a JSON POST to the push's ``callback`` URL (with the agency's Basic
  credentials unless the agency turns that off).

Each scheduled callback is sent once and never retried; every attempt is recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

import requests

from sandbox.due import DueQueue
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


class CallbackDispatcher(DueQueue[Delivery]):
    """Callbacks sent when due, once each, by one background thread (see sandbox/due.py)."""

    def __init__(
        self,
        record: Callable[[DeliveryRecord], None],
        *,
        clock: Clock,
        timeout_s: float,
        sender: SendFn = send,
    ) -> None:
        super().__init__(clock=clock, thread_name="sandbox-intouch-callbacks")
        self._record = record
        self._timeout_s = timeout_s
        self._send = sender

    def schedule(self, due_at: float, delivery: Delivery) -> None:
        self.push(due_at, delivery)

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
