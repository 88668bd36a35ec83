"""Telcell's result: a form post to the shop's RESULT_URL once an invoice is closed.

Fields: ``issuer_id`` (base64, as the link sent it), ``status`` (``PAID``, or
``REJECTED`` when the buyer refuses the invoice), ``invoice`` (Telcell's id),
``payment_id`` (unique; the simulator gives a refusal one too, which is
unverified), ``currency`` (``֏``), ``sum`` (the price as the link sent it),
``time`` (``YYYY-MM-DD HH:MM:SS``, Yerevan; unverified) and ``checksum =
MD5(shop_key + invoice + issuer_id + payment_id + currency + sum + time + status)``.
Sent from one background thread, once per scheduled result, never retried.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from sandbox import cabinet
from sandbox.cabinet import PostFn
from sandbox.due import Clock, DueQueue
from sandbox.hosted import HostedOrder
from sandbox.telcell.state import DeliveryRecord

HEADERS: Final = {"User-Agent": "TelcellMoney-Invoices/sandbox"}
NO_RESULT_URL: Final = "no RESULT_URL in the shop's cabinet"
CURRENCY: Final = "֏"
PAID: Final = "PAID"
REJECTED: Final = "REJECTED"
CHECKSUM_FIELDS: Final = ("invoice", "issuer_id", "payment_id", "currency", "sum", "time", "status")


@dataclass(frozen=True)
class Delivery:
    order_id: str
    merchant_ref: str
    url: str | None
    fields: Mapping[str, str]


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def result_checksum(shop_key: str, fields: Mapping[str, str]) -> str:
    return md5(shop_key + "".join(fields[name] for name in CHECKSUM_FIELDS))


def result_fields(
    order: HostedOrder, shop_key: str, *, wrong_checksum: bool = False
) -> dict[str, str]:
    """The result of a closed invoice (``close_invoice`` gave it its payment id and time)."""
    fields = {
        "issuer_id": order.extra["issuer_id"],
        "status": order.extra["status_sent"],
        "invoice": order.order_id,
        "payment_id": order.extra["payment_id"],
        "currency": CURRENCY,
        "sum": order.amount,
        "time": order.extra["time"],
    }
    key = f"not-{shop_key}" if wrong_checksum else shop_key
    fields["checksum"] = result_checksum(key, fields)
    return fields


def post_form(url: str, fields: Mapping[str, str], timeout_s: float) -> tuple[int, str]:
    return cabinet.post_form(url, fields, timeout_s, HEADERS)


class ResultSender(DueQueue[Delivery]):
    """Results sent when due, once each, by one background thread (see sandbox/due.py)."""

    def __init__(
        self,
        record: Callable[[DeliveryRecord], None],
        *,
        clock: Clock,
        timeout_s: float,
        post: PostFn = post_form,
    ) -> None:
        super().__init__(clock=clock, thread_name="sandbox-telcell-results")
        self._record = record
        self._timeout_s = timeout_s
        self._post = post

    def schedule(self, due_at: float, delivery: Delivery) -> None:
        self.push(due_at, delivery)

    def _deliver(self, delivery: Delivery) -> None:
        tried = cabinet.attempt(
            self._post, delivery.url, delivery.fields, self._timeout_s, NO_RESULT_URL
        )
        self._record(
            DeliveryRecord(
                order_id=delivery.order_id,
                merchant_ref=delivery.merchant_ref,
                url=delivery.url,
                fields=dict(delivery.fields),
                status=tried.status,
                answer=tried.answer,
                error=tried.error,
                time=tried.time,
                duration_ms=tried.duration_ms,
            )
        )
