"""FastShift end to end, through malipo's pay page: register, redirect, webhook, status.

FastShift's webhook is unsigned, so every success is confirmed with ``order/status``
before money moves; when the webhook never comes, the poll finishes the payment.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest

from shared.crypto import CredentialCipher
from shared.db.session import Database
from shared.settings import Settings
from tests.conftest import DARAJA_CREDENTIALS, ApiClient, make_merchant
from tests.support.fastshift_sim import FastShiftSimulator
from tests.support.hosted import (
    Customer,
    HostedMerchant,
    gateway_ref,
    hosted_merchant,
    next_action,
    page_state,
    post_payment,
    start_payment,
)
from tests.support.logs import phone_leaks
from tests.support.payments import events, final_view, ledger_rows, view_of
from tests.support.rabbit import Rabbit
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker", "ingress_server")]


@pytest.fixture
def merchant(
    db: Database, settings: Settings, cipher: CredentialCipher, fastshift: FastShiftSimulator
) -> HostedMerchant:
    return hosted_merchant(db, settings, cipher, "fastshift", fastshift.new_account())


@pytest.fixture
def customer() -> Iterator[Customer]:
    browser = Customer()
    yield browser
    browser.close()


def test_a_customer_pays_on_fastshift_s_page_and_is_credited_once(
    api: ApiClient,
    merchant: HostedMerchant,
    fastshift: FastShiftSimulator,
    customer: Customer,
    db: Database,
) -> None:
    payment_id, pay_url = start_payment(api, merchant, amount_drams=5000)

    # The pay page sends the customer to the order FastShift registered.
    page = customer.open_pay_page(pay_url)
    action = next_action(api, merchant, payment_id)
    assert action["type"] == "redirect"
    assert action["url"] in page
    order_number = gateway_ref(db, payment_id)
    assert customer.go_on(page).status_code == 200  # FastShift's own page
    registered = [
        r
        for r in fastshift.requests("register")
        if r["status"] == 200 and r["body"]["order_number"] == order_number
    ]
    assert len(registered) == 1  # one order, registered once
    assert registered[0]["body"]["amount"] == 5000  # whole drams on the wire

    # The customer pays; FastShift sends the browser back to malipo's return page.
    decided = fastshift.decide(order_number, "pay")
    assert decided["return_url"].startswith(f"{api.base_url}/pay/{payment_id}/return?t=")
    final = final_view(api, merchant, payment_id)
    assert final["status"] == "succeeded"
    page = customer.return_page(decided["return_url"])
    assert page_state(page) == "paid"
    assert "https://shop.example.am/thanks" in page  # then on to the merchant

    rows = ledger_rows(db, payment_id)
    assert [(r.amount_minor, r.currency) for r in rows] == [(500000, "AMD")]
    # The unsigned webhook was applied only after order/status said completed.
    statuses = [r for r in fastshift.requests("status") if order_number in r["path"]]
    assert statuses, "no order/status confirmed the webhook's word"


def test_a_lost_webhook_is_finished_by_polling(
    api: ApiClient, merchant: HostedMerchant, fastshift: FastShiftSimulator, db: Database
) -> None:
    fastshift.scenario(match={"amount": 4321}, result="none")
    payment_id, _ = start_payment(api, merchant, amount_drams=4321)
    next_action(api, merchant, payment_id)

    fastshift.decide(gateway_ref(db, payment_id), "pay")
    final = final_view(api, merchant, payment_id, timeout_s=40)

    assert final["status"] == "succeeded"
    assert fastshift.deliveries(gateway_ref(db, payment_id)) == []
    assert [e.source for e in events(db, payment_id) if e.outcome == "applied"] == ["query"]
    assert len(ledger_rows(db, payment_id)) == 1


def test_a_declined_order_fails_and_the_return_page_says_not_paid(
    api: ApiClient,
    merchant: HostedMerchant,
    fastshift: FastShiftSimulator,
    customer: Customer,
    db: Database,
) -> None:
    payment_id, pay_url = start_payment(api, merchant, amount_drams=700)
    customer.open_pay_page(pay_url)

    decided = fastshift.decide(gateway_ref(db, payment_id), "decline")
    final = final_view(api, merchant, payment_id)

    assert final["status"] == "failed"
    page = customer.return_page(decided["return_url"])
    assert page_state(page) == "failed"
    assert 'id="retry"' not in page  # this merchant does not offer retries
    assert "https://shop.example.am/sorry" in page
    assert ledger_rows(db, payment_id) == []


def test_the_pay_link_is_the_same_for_a_retried_request_and_useless_for_anyone_else(
    api: ApiClient, merchant: HostedMerchant, customer: Customer
) -> None:
    first = post_payment(api, merchant, reference="AM-same-link")
    key = first.request.headers["Idempotency-Key"]
    again = api.post(
        "/v1/payments",
        json=json.loads(first.request.body or b"{}"),
        headers=merchant.headers(key),
    )
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.json()["pay_url"] == again.json()["pay_url"]
    payment_id = first.json()["id"]
    view = view_of(api, merchant, payment_id, wait_s=10, until="action")
    assert view["pay_url"] == first.json()["pay_url"]

    forged = first.json()["pay_url"][:-3] + "AAA"
    for url in (
        forged,
        f"{api.base_url}/pay/{payment_id}",
        f"{api.base_url}/pay/{payment_id}/return",
    ):
        answer = customer.visit(url)
        assert answer.status_code == 404
        assert page_state(answer.text) == "missing"


def test_an_amd_payment_the_merchant_has_no_credentials_for_is_refused_before_any_redirect(
    api: ApiClient, db: Database, settings: Settings, cipher: CredentialCipher
) -> None:
    daraja_only = make_merchant(db, settings, cipher, daraja=dict(DARAJA_CREDENTIALS))
    body = {
        "amount": 500000,
        "currency": "AMD",
        "phone": "+37477123456",
        "reference": "AM-no-creds",
        "success_url": "https://shop.example.am/thanks",
        "failure_url": "https://shop.example.am/sorry",
    }
    for named, code in ((None, "currency_not_supported"), ("fastshift", "gateway_not_configured")):
        response = api.post(
            "/v1/payments",
            json={**body, **({"gateway": named} if named else {})},
            headers=daraja_only.headers(f"no-creds-{named}"),
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == code
        assert "pay_url" not in response.text


def test_the_return_page_says_confirming_until_the_status_api_says_paid(
    api: ApiClient,
    merchant: HostedMerchant,
    fastshift: FastShiftSimulator,
    customer: Customer,
    db: Database,
) -> None:
    # FastShift's webhook never comes and its status API lags behind the page.
    fastshift.scenario(match={"amount": 6111}, result="none", status_lag_s=4)
    payment_id, pay_url = start_payment(api, merchant, amount_drams=6111)
    customer.open_pay_page(pay_url)
    order_number = gateway_ref(db, payment_id)
    decided = fastshift.decide(order_number, "pay")

    # The customer is back at once: the page says so, and asks FastShift once.
    page = customer.return_page(decided["return_url"])
    assert page_state(page) == "confirming"
    assert "You may close this page" in page
    assert 'href="https://shop.example.am/help"' in page  # the merchant's support link
    assert final_view(api, merchant, payment_id)["status"] == "succeeded"
    assert page_state(customer.return_page(decided["return_url"])) == "paid"
    assert len(ledger_rows(db, payment_id)) == 1


def test_a_customer_may_try_again_from_the_return_page_when_the_merchant_allows_it(
    api: ApiClient,
    db: Database,
    settings: Settings,
    cipher: CredentialCipher,
    fastshift: FastShiftSimulator,
    customer: Customer,
) -> None:
    merchant = hosted_merchant(
        db, settings, cipher, "fastshift", fastshift.new_account(), allow_retries=True
    )
    payment_id, pay_url = start_payment(api, merchant, amount_drams=950)
    customer.open_pay_page(pay_url)
    first_order = gateway_ref(db, payment_id)
    declined = fastshift.decide(first_order, "decline")
    assert final_view(api, merchant, payment_id)["status"] == "failed"
    page = customer.return_page(declined["return_url"])
    assert page_state(page) == "failed"
    retry = re.search(r'<form method="post" action="([^"]+)">', page)
    assert retry is not None, page

    # "Try again": a new cycle of the same payment, with an order of its own.
    again = customer.http.post(f"{api.base_url}{unescape(retry.group(1))}", timeout=20)
    assert again.status_code == 200
    assert again.url.startswith(f"{api.base_url}/pay/{payment_id}?t="), again.url
    page = customer.open_pay_page(again.url)
    second_order = wait_until(
        lambda: ref if (ref := gateway_ref(db, payment_id)) != first_order else None,
        timeout_s=15,
        what="the retry's order",
    )
    paid = fastshift.decide(second_order, "pay")

    assert final_view(api, merchant, payment_id)["status"] == "succeeded"
    assert page_state(customer.return_page(paid["return_url"])) == "paid"
    assert [(r.amount_minor, r.currency) for r in ledger_rows(db, payment_id)] == [(95000, "AMD")]


def test_the_logs_of_an_armenian_payment_never_hold_the_full_phone_number(
    api: ApiClient,
    merchant: HostedMerchant,
    fastshift: FastShiftSimulator,
    db: Database,
    log_dir: Path,
    worker_log: io.StringIO,
    rabbit: Rabbit,
) -> None:
    ingress_log = log_dir / "ingress.log"
    ingress_start = ingress_log.stat().st_size if ingress_log.exists() else 0

    # An AMD payment for +374 77 123456, paid on FastShift's page, its webhook taken
    payment_id, _ = start_payment(api, merchant, amount_drams=5100)
    next_action(api, merchant, payment_id)
    fastshift.decide(gateway_ref(db, payment_id), "pay")
    final = final_view(api, merchant, payment_id)
    rabbit.wait_settled("callbacks")
    logs = {
        "ingress": ingress_log.read_text(errors="replace")[ingress_start:],
        "workers": worker_log.getvalue(),
    }

    assert final["status"] == "succeeded"
    assert {name: phone_leaks("37477123456", "374", text) for name, text in logs.items()} == {
        "ingress": [],
        "workers": [],
    }
    # The search had real lines to read: the payment in both logs, FastShift's webhook taken.
    for name, text in logs.items():
        assert payment_id in text, f"payment {payment_id} not in the {name} log"
    assert '"gateway": "fastshift", "event": "callback accepted"' in logs["ingress"]
