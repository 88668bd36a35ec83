"""Driving payments through malipo's pay page, as a merchant and a customer would.

Used by the end-to-end and browser suites of the hosted-page gateways (Idram,
Telcell, FastShift, Ameriabank, ArCa): a merchant of its own per test, with a
fresh account at the gateway's simulator; the payment is started over the API,
its ``pay_url`` opened (by ``requests`` here, by Chromium in tests/browser), and
the simulator's page decided.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from html import unescape
from typing import Any

import requests
from sqlalchemy import select

from shared.crypto import CredentialCipher
from shared.db.models import Merchant, PaymentAttempt
from shared.db.session import Database
from shared.merchants import create_merchant, issue_api_key, store_gateway_credentials
from shared.settings import Settings
from tests.support.payments import Client, view_of
from tests.support.waiting import wait_until

SUCCESS_URL = "https://shop.example.am/thanks"
FAILURE_URL = "https://shop.example.am/sorry"
SUPPORT_URL = "https://shop.example.am/help"


@dataclass
class HostedMerchant:
    id: uuid.UUID
    api_key: str
    gateway: str
    credentials: dict[str, str]
    callback_url: str

    def headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers


def hosted_merchant(
    db: Database,
    settings: Settings,
    cipher: CredentialCipher,
    gateway: str,
    credentials: dict[str, str],
    *,
    allow_retries: bool = False,
) -> HostedMerchant:
    """A fresh merchant with ``gateway``'s credentials and a pay page of its own."""
    with db.transaction() as session:
        created = create_merchant(session, "Yerevan Opera Tickets")
        api_key = issue_api_key(
            session, settings.secret_key.get_secret_value().encode(), created.id
        )
        secret = store_gateway_credentials(
            session, cipher, created.id, gateway, dict(credentials), production=False
        )
        row = session.get(Merchant, created.id)
        assert row is not None
        row.pay_page = {"support_url": SUPPORT_URL, "allow_retries": allow_retries}
    return HostedMerchant(
        created.id, api_key, gateway, credentials, settings.merchant_callback_url(gateway, secret)
    )


def post_payment(
    api: Any, merchant: HostedMerchant, amount_drams: int = 5000, **extra: Any
) -> requests.Response:
    body = {
        "amount": amount_drams * 100,
        "currency": "AMD",
        "phone": "+374 77 123456",
        "reference": f"AM-{uuid.uuid4().hex[:8]}",
        "description": "Two tickets, Yerevan Opera",
        "gateway": merchant.gateway,
        "success_url": SUCCESS_URL,
        "failure_url": FAILURE_URL,
        **extra,
    }
    response: requests.Response = api.post(
        "/v1/payments", json=body, headers=merchant.headers(str(uuid.uuid4()))
    )
    return response


def start_payment(
    api: Any, merchant: HostedMerchant, amount_drams: int = 5000, **extra: Any
) -> tuple[str, str]:
    """A new payment's id and the pay page link it was answered with."""
    response = post_payment(api, merchant, amount_drams, **extra)
    assert response.status_code == 202, response.text
    document = response.json()
    assert document["pay_url"].startswith("http"), document
    return str(document["id"]), str(document["pay_url"])


def next_action(api: Client, merchant: HostedMerchant, payment_id: str) -> dict[str, Any]:
    """The action the worker stored (``?until=action`` holds the answer until it is there)."""

    def stored() -> dict[str, Any] | None:
        view = view_of(api, merchant, payment_id, wait_s=10, until="action")
        action: dict[str, Any] | None = view.get("next_action")
        return action if view["status"] == "submitted" and action else None

    return wait_until(stored, timeout_s=20, what=f"payment {payment_id}'s next action")


def current_attempt(db: Database, payment_id: str) -> PaymentAttempt:
    """The payment's latest attempt."""
    with db.transaction() as session:
        attempt = session.scalars(
            select(PaymentAttempt)
            .where(PaymentAttempt.intent_id == uuid.UUID(payment_id))
            .order_by(PaymentAttempt.number.desc())
        ).first()
    assert attempt is not None, "no attempt"
    return attempt


def gateway_ref(db: Database, payment_id: str) -> str:
    """The current attempt's reference at the gateway (bill no, order number, PaymentID...)."""
    attempt = current_attempt(db, payment_id)
    assert attempt.gateway_ref, "the attempt has no gateway reference"
    return attempt.gateway_ref


def attempt_ref(db: Database, payment_id: str) -> str:
    """Our own reference of the current attempt (what we sent as the order number)."""
    return str(current_attempt(db, payment_id).id)


class Customer:
    """A browser without scripts: follows the pay page's button, keeps its cookies."""

    def __init__(self) -> None:
        self.http = requests.Session()

    def close(self) -> None:
        self.http.close()

    def open_pay_page(self, pay_url: str) -> str:
        """The pay page once it offers to go on (it refreshes itself until then)."""

        def ready() -> str | None:
            page = self.http.get(pay_url, timeout=20)
            assert page.status_code == 200, page.text
            return page.text if 'id="continue"' in page.text else None

        return wait_until(ready, timeout_s=20, what="the pay page's continue button")

    def go_on(self, page: str) -> requests.Response:
        """Press "Continue": post the form, or follow the link, to the gateway's page."""
        form = re.search(r'<form id="go" method="post" action="([^"]+)">', page)
        if form is not None:
            fields = dict(
                (unescape(name), unescape(value))
                for name, value in re.findall(
                    r'<input type="hidden" name="([^"]*)" value="([^"]*)">', page
                )
            )
            return self.http.post(unescape(form.group(1)), data=fields, timeout=20)
        link = re.search(r'<a class="button" id="continue" href="([^"]+)">', page)
        assert link is not None, page
        return self.http.get(unescape(link.group(1)), timeout=20)

    def visit(self, url: str) -> requests.Response:
        """A page, without following redirects (to see where malipo sends the customer)."""
        return self.http.get(url, timeout=20, allow_redirects=False)

    def return_page(self, url: str) -> str:
        page = self.http.get(url, timeout=20)
        assert page.status_code == 200, page.text
        return page.text


def page_state(page: str) -> str:
    found = re.search(r'id="page" data-state="([a-z]+)"', page)
    assert found is not None, page
    return found.group(1)
