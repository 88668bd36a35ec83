"""The customer's and the merchant's parts of a hosted payment, for the adapter tests
that drive a register-then-redirect simulator (Ameria, ArCa) over real HTTP.

The payment (:func:`hosted_request`) is "Two tickets" for ``amount_drams``; the
customer opens the page the redirect names and presses a button (:func:`press`);
the merchant asks the status API until it no longer says pending (:func:`settled`).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import requests

from shared.domain.money import Money
from shared.gateways.base import (
    HostedCollection,
    InitiateResult,
    Outcome,
    PaymentRequest,
    ReturnUrls,
    StatusQuery,
    StatusResult,
)


def hosted_request(
    gateway: str,
    return_urls: ReturnUrls,
    amount_drams: int = 5000,
    attempt_ref: str | None = None,
) -> PaymentRequest:
    return PaymentRequest(
        payment_id=str(uuid.uuid4()),
        attempt_ref=attempt_ref or str(uuid.uuid4()),
        amount=Money(amount_drams * 100, "AMD"),
        phone="37477123456",
        reference="ORDER-42",
        description="Two tickets",
        callback_url=f"https://malipo.example/callbacks/{gateway}/unused",
        return_urls=return_urls,
    )


def started(adapter: HostedCollection, credentials: Any, payment: PaymentRequest) -> str:
    """The gateway's reference of an accepted payment."""
    result = adapter.start_hosted(credentials, payment)
    assert result.accepted, result.message
    assert result.gateway_ref
    return result.gateway_ref


def press(page_root: str, result: InitiateResult, choice: str) -> str:
    """What the customer's browser does: open the redirect, press a button (the simulator's
    page under ``page_root``, e.g. ``<root>/ameria``); where it lands."""
    assert result.next_action is not None
    assert result.next_action.type == "redirect"
    assert result.next_action.url
    page = requests.get(result.next_action.url, timeout=5)
    assert page.status_code == 200
    assert "Two tickets" in page.text
    pressed = requests.post(
        f"{page_root}/_page/{result.gateway_ref}",
        data={"choice": choice},
        allow_redirects=False,
        timeout=5,
    )
    assert pressed.status_code == 303
    return pressed.headers["Location"]


def settled(adapter: StatusQuery, credentials: Any, ref: str, timeout_s: float = 5) -> StatusResult:
    """The status once it is no longer pending (or as it is after ``timeout_s``)."""
    give_up_at = time.monotonic() + timeout_s
    while True:
        status = adapter.query_status(credentials, ref)
        if status.verdict.outcome is not Outcome.PENDING or time.monotonic() > give_up_at:
            return status
        time.sleep(0.05)
