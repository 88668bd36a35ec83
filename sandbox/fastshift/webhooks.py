"""FastShift's webhook to the merchant, and the timer that sends it (and expires orders).

A webhook is a POST of ``status`` and ``order_number`` to the order's
``webhook_url``: JSON by default, a form with ``webhook_format: "form"`` (the
document does not say which; both are plausible). It is unsigned. Each scheduled
webhook is sent once and never retried (FastShift's retry policy is unknown);
every attempt is recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import requests

from sandbox.due import DueQueue
from sandbox.fastshift.state import Clock, DeliveryRecord, Order
from sandbox.kit import utc_now_iso

logger = logging.getLogger(__name__)
USER_AGENT: Final = "FastShift-Simulator/1.0"


@dataclass(frozen=True)
class Webhook:
    order_number: str
    url: str
    status: str
    format: str

    def body(self) -> dict[str, str]:
        return {"status": self.status, "order_number": self.order_number}


@dataclass(frozen=True)
class Expiry:
    """Time for an undecided order to expire: ``expire(order)`` does it (the checkout's)."""

    order: Order
    expire: Callable[[Order], object]


Item = Webhook | Expiry
SendFn = Callable[[Webhook, float], int]


def send(webhook: Webhook, timeout_s: float) -> int:
    """POST one webhook and return the HTTP status; raise on no answer."""
    headers = {"User-Agent": USER_AGENT}
    if webhook.format == "form":
        reply = requests.post(webhook.url, data=webhook.body(), headers=headers, timeout=timeout_s)
    else:
        reply = requests.post(webhook.url, json=webhook.body(), headers=headers, timeout=timeout_s)
    with reply:
        return reply.status_code


class WebhookDispatcher(DueQueue[Item]):
    """Webhooks and expiries when due, by one background thread (see sandbox/due.py)."""

    def __init__(
        self,
        record: Callable[[DeliveryRecord], None],
        *,
        clock: Clock,
        timeout_s: float,
        sender: SendFn = send,
    ) -> None:
        super().__init__(clock=clock, thread_name="sandbox-fastshift-webhooks")
        self._record = record
        self._timeout_s = timeout_s
        self._send = sender

    def schedule_result(self, order: Order, status: str) -> None:
        """The webhooks a final status calls for: none, one, or the same one twice."""
        if order.webhook_url is None:
            return
        plan = order.plan
        due = self.now() + plan.webhook_delay_s
        times = {
            "none": [],
            "once": [due],
            "twice": [due, due + max(plan.webhook_delay_s, 0.1)],
        }[plan.result]
        webhook = Webhook(order.order_number, order.webhook_url, status, plan.webhook_format)
        for due_at in times:
            self.push(due_at, webhook)

    def send_now(self, order: Order, status: str) -> None:
        """One webhook now, whatever the plan says (the resend control)."""
        if order.webhook_url is not None:
            hook = Webhook(order.order_number, order.webhook_url, status, order.plan.webhook_format)
            self.push(self.now(), hook)

    def _deliver(self, item: Item) -> None:
        if isinstance(item, Expiry):
            item.expire(item.order)
            return
        started_at, started = utc_now_iso(), time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            status = self._send(item, self._timeout_s)
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            logger.exception("webhook to %s failed unexpectedly", item.url)
            error = f"{type(exc).__name__}: {exc}"
        self._record(
            DeliveryRecord(
                order_number=item.order_number,
                url=item.url,
                format=item.format,
                body=item.body(),
                status=status,
                error=error,
                time=started_at,
                duration_ms=round((time.monotonic() - started) * 1000, 1),
            )
        )
