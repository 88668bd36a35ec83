"""Ameriabank vPOS and ArCa iPay end to end: no callbacks, the status API decides.

The customer's return to malipo (Ameria's BackURL, ArCa's returnUrl/failUrl) is an
unsigned browser redirect: it only asks for one status check, and whatever it
claims is never believed.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from shared.crypto import CredentialCipher
from shared.db.session import Database
from shared.settings import Settings
from tests.conftest import ApiClient
from tests.support.ameria_sim import AmeriaSimulator
from tests.support.arca_sim import ArcaSimulator
from tests.support.hosted import (
    Customer,
    HostedMerchant,
    attempt_ref,
    gateway_ref,
    hosted_merchant,
    next_action,
    page_state,
    start_payment,
)
from tests.support.payments import events, final_view, intent, ledger_rows, view_of
from tests.support.processes import ManagedProcess
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker", "ingress_server")]


@pytest.fixture
def sandbox(sandbox_server: ManagedProcess, test_env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{test_env['MALIPO_SANDBOX_PORT']}"


@pytest.fixture
def ameria(sandbox: str) -> Iterator[AmeriaSimulator]:
    simulator = AmeriaSimulator(f"{sandbox}/ameria")
    yield simulator
    simulator.close()


@pytest.fixture
def arca(sandbox: str) -> Iterator[ArcaSimulator]:
    simulator = ArcaSimulator(f"{sandbox}/arca")
    yield simulator
    simulator.close()


@pytest.fixture
def customer() -> Iterator[Customer]:
    browser = Customer()
    yield browser
    browser.close()


@pytest.fixture
def ameria_merchant(
    db: Database, settings: Settings, cipher: CredentialCipher, ameria: AmeriaSimulator
) -> HostedMerchant:
    return hosted_merchant(db, settings, cipher, "ameria", ameria.new_account())


@pytest.fixture
def arca_merchant(
    db: Database, settings: Settings, cipher: CredentialCipher, arca: ArcaSimulator
) -> HostedMerchant:
    return hosted_merchant(db, settings, cipher, "arca", arca.new_account())


def details_asked(ameria: AmeriaSimulator, payment_ref: str) -> int:
    return sum(
        1
        for r in ameria.requests("details")
        if isinstance(r.get("body"), dict) and r["body"].get("PaymentID") == payment_ref
    )


def test_ameria_pays_through_init_payment_and_get_payment_details(
    api: ApiClient,
    ameria_merchant: HostedMerchant,
    ameria: AmeriaSimulator,
    customer: Customer,
    db: Database,
) -> None:
    payment_id, pay_url = start_payment(api, ameria_merchant, amount_drams=12000)
    page = customer.open_pay_page(pay_url)
    action = next_action(api, ameria_merchant, payment_id)
    payment_ref = gateway_ref(db, payment_id)
    assert action == {"type": "redirect", "url": action["url"]}
    assert f"id={payment_ref}" in action["url"]
    assert customer.go_on(page).status_code == 200  # the bank's page
    ours = attempt_ref(db, payment_id)
    init = [
        r for r in ameria.requests("init") if r["status"] == 200 and r["body"]["Opaque"] == ours
    ]
    assert [(r["body"]["Amount"], r["body"]["Currency"]) for r in init] == [(12000, "051")]
    assert init[0]["body"]["BackURL"].startswith(f"{api.base_url}/pay/{payment_id}/return?t=")

    back = ameria.decide(payment_ref, "pay")["return_url"]
    customer.return_page(back)

    assert final_view(api, ameria_merchant, payment_id)["status"] == "succeeded"
    assert page_state(customer.return_page(back)) == "paid"
    assert [(r.amount_minor, r.currency) for r in ledger_rows(db, payment_id)] == [(1200000, "AMD")]
    assert details_asked(ameria, payment_ref) >= 1


def test_a_forged_back_url_changes_nothing_the_status_api_decides(
    api: ApiClient,
    ameria_merchant: HostedMerchant,
    ameria: AmeriaSimulator,
    customer: Customer,
    db: Database,
) -> None:
    # The bank's own redirect will claim success whatever happens (resposneCode=00).
    ameria.scenario(match={"amount": 13000}, forged_return=True)
    payment_id, pay_url = start_payment(api, ameria_merchant, amount_drams=13000)
    customer.open_pay_page(pay_url)
    next_action(api, ameria_merchant, payment_id)
    payment_ref = gateway_ref(db, payment_id)
    back = intent(db, payment_id).next_action
    assert back is not None

    # The customer (or anyone holding the link) claims success on the BackURL while the
    # order is still open at the bank: the page asks the bank, which says "started".
    asked_before = details_asked(ameria, payment_ref)
    token = parse_qs(urlsplit(pay_url).query)["t"][0]
    forged = (
        f"{api.base_url}/pay/{payment_id}/return?t={token}"
        f"&orderID=1&resposneCode=00&paymentID={payment_ref}&opaque=x"
    )
    assert page_state(customer.return_page(forged)) == "confirming"
    wait_until(
        lambda: details_asked(ameria, payment_ref) > asked_before or None,
        timeout_s=10,
        what="the status check the return visit asked for",
    )
    assert view_of(api, ameria_merchant, payment_id)["status"] == "submitted"

    # Then the customer declines, and the bank's redirect still claims success.
    redirect = ameria.decide(payment_ref, "decline")["return_url"]
    assert "resposneCode=00" in redirect
    customer.return_page(redirect)

    final = final_view(api, ameria_merchant, payment_id)
    assert final["status"] == "failed"
    assert page_state(customer.return_page(redirect)) == "failed"
    assert ledger_rows(db, payment_id) == []
    assert {e.source for e in events(db, payment_id)} <= {"query", "local"}


def test_arca_pays_through_register_do_and_its_status(
    api: ApiClient,
    arca_merchant: HostedMerchant,
    arca: ArcaSimulator,
    customer: Customer,
    db: Database,
) -> None:
    payment_id, pay_url = start_payment(api, arca_merchant, amount_drams=8000)
    customer.open_pay_page(pay_url)
    order_id = gateway_ref(db, payment_id)
    ours = attempt_ref(db, payment_id).replace("-", "")
    registered = [
        r
        for r in arca.requests("register")
        if r["status"] == 200 and r["body"]["orderNumber"] == ours
    ]
    assert [(r["body"]["amount"], r["body"]["currency"]) for r in registered] == [("800000", "051")]

    back = arca.decide(order_id, "pay")["return_url"]
    customer.return_page(back)

    assert final_view(api, arca_merchant, payment_id)["status"] == "succeeded"
    assert page_state(customer.return_page(back)) == "paid"
    assert len(ledger_rows(db, payment_id)) == 1
