"""Idram's calls to the merchant's RESULT_URL: the precheck, then the confirmation.

Both are form posts (``application/x-www-form-urlencoded``). The precheck is sent
while the customer waits on Idram's page (the answer decides whether the money is
taken), so it goes at once, from the page's request, with a short timeout; the
confirmation goes later from one background thread (:class:`ResultSender`), once,
never retried (Idram e-mails the merchant when a confirmation is not answered
``OK``). Every attempt is recorded.
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
from sandbox.idram.state import DeliveryRecord

HEADERS: Final = {"User-Agent": "Idram-Merchant-Interface/sandbox"}
NO_RESULT_URL: Final = "no RESULT_URL in the account's cabinet"


@dataclass(frozen=True)
class Delivery:
    order_id: str
    bill_no: str
    kind: str  # precheck | confirmation
    url: str | None
    fields: Mapping[str, str]


def confirmation_checksum(fields: Mapping[str, str], secret_key: str) -> str:
    """MD5, upper hex, of ``REC_ACCOUNT:AMOUNT:SECRET_KEY:BILL_NO:PAYER:TRANS_ID:TRANS_DATE``."""
    base = ":".join(
        [
            fields["EDP_REC_ACCOUNT"],
            fields["EDP_AMOUNT"],
            secret_key,
            fields["EDP_BILL_NO"],
            fields["EDP_PAYER_ACCOUNT"],
            fields["EDP_TRANS_ID"],
            fields["EDP_TRANS_DATE"],
        ]
    )
    return hashlib.md5(base.encode(), usedforsecurity=False).hexdigest().upper()


def precheck_fields(order: HostedOrder, amount: str) -> dict[str, str]:
    return {
        "EDP_PRECHECK": "YES",
        "EDP_BILL_NO": order.extra["merchant_ref"],
        "EDP_REC_ACCOUNT": order.extra["rec_account"],
        "EDP_AMOUNT": amount,
    }


def confirmation_fields(
    order: HostedOrder, secret_key: str, *, wrong_checksum: bool = False
) -> dict[str, str]:
    fields = {
        "EDP_BILL_NO": order.extra["merchant_ref"],
        "EDP_REC_ACCOUNT": order.extra["rec_account"],
        "EDP_PAYER_ACCOUNT": order.extra["payer_account"],
        "EDP_AMOUNT": order.amount,
        "EDP_TRANS_ID": order.extra["trans_id"],
        "EDP_TRANS_DATE": order.extra["trans_date"],
    }
    key = f"not-{secret_key}" if wrong_checksum else secret_key
    fields["EDP_CHECKSUM"] = confirmation_checksum(fields, key)
    return fields


def post_form(url: str, fields: Mapping[str, str], timeout_s: float) -> tuple[int, str]:
    return cabinet.post_form(url, fields, timeout_s, HEADERS)


def answered_ok(record: DeliveryRecord) -> bool:
    """Idram reads the answer's body only: exactly ``OK``, whitespace aside."""
    return record.answer is not None and record.answer.strip() == "OK"


class ResultSender(DueQueue[Delivery]):
    """Sends a precheck now, and confirmations when due (one background thread)."""

    def __init__(
        self,
        record: Callable[[DeliveryRecord], None],
        *,
        clock: Clock,
        timeout_s: float,
        post: PostFn = post_form,
    ) -> None:
        super().__init__(clock=clock, thread_name="sandbox-idram-results")
        self._record = record
        self._timeout_s = timeout_s
        self._post = post

    def schedule(self, due_at: float, delivery: Delivery) -> None:
        self.push(due_at, delivery)

    def send_now(self, delivery: Delivery, timeout_s: float | None = None) -> DeliveryRecord:
        """Send one call on the caller's thread; record and return what happened."""
        timeout = timeout_s or self._timeout_s
        tried = cabinet.attempt(self._post, delivery.url, delivery.fields, timeout, NO_RESULT_URL)
        record = DeliveryRecord(
            order_id=delivery.order_id,
            bill_no=delivery.bill_no,
            kind=delivery.kind,
            url=delivery.url,
            fields=dict(delivery.fields),
            status=tried.status,
            answer=tried.answer,
            error=tried.error,
            time=tried.time,
            duration_ms=tried.duration_ms,
        )
        self._record(record)
        return record

    def _deliver(self, delivery: Delivery) -> None:
        self.send_now(delivery)
