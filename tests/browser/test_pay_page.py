"""A customer in Chromium pays on each hosted-page gateway's page through malipo's pay page.

For every gateway: the customer opens the merchant's ``pay_url``, is sent on to the
simulator's own page, presses "Pay" (or "Decline"), comes back to malipo's return
page and sees the real state, which the ledger agrees with (one credit, or none).
The return page of each successful run is kept as ``docs/screenshots/pay-<gateway>.png``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    JavascriptException,
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from shared.crypto import CredentialCipher
from shared.db.session import Database
from shared.settings import Settings
from tests.browser.conftest import SCREENSHOTS
from tests.conftest import ApiClient
from tests.support.hosted import FAILURE_URL, SUCCESS_URL, HostedMerchant, start_payment
from tests.support.hosted_cases import CASES, HostedCase
from tests.support.payments import final_view, ledger_rows
from tests.support.processes import ManagedProcess

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker", "ingress_server")]
WAIT_S = 45
RELOADING = (JavascriptException, NoSuchElementException, StaleElementReferenceException)


@pytest.fixture(params=CASES, ids=lambda case: case.gateway)
def case(request: pytest.FixtureRequest) -> HostedCase:
    chosen: HostedCase = request.param
    return chosen


@pytest.fixture
def merchant(
    case: HostedCase,
    sandbox_server: ManagedProcess,
    test_env: dict[str, str],
    db: Database,
    settings: Settings,
    cipher: CredentialCipher,
) -> Iterator[HostedMerchant]:
    sandbox = f"http://127.0.0.1:{test_env['MALIPO_SANDBOX_PORT']}"
    with case.merchant(sandbox, db, settings, cipher) as created:
        yield created


def pay_in_browser(browser: webdriver.Chrome, pay_url: str, button: str) -> None:
    """Open the pay link, wait for the gateway's page, press its button."""
    browser.get(pay_url)
    # The pay page refreshes itself while it prepares, then sends the browser on.
    wait = WebDriverWait(browser, WAIT_S, ignored_exceptions=RELOADING)
    try:
        wait.until(expected_conditions.element_to_be_clickable((By.ID, button))).click()
    except TimeoutException:
        pytest.fail(
            f"no {button!r} button: the browser is at {browser.current_url}, showing:\n"
            f"{browser.page_source}"
        )


# What the return page shows, read in one go the moment it shows the wanted state
# (a few seconds later it hands the customer over to the merchant's URL).
SNAPSHOT = """
const page = document.getElementById("page");
if (!page || page.dataset.state !== arguments[0]) return null;
const text = (id) => {
  const element = document.getElementById(id);
  return element ? element.textContent.trim() : null;
};
const back = document.getElementById("back");
return {state: page.dataset.state, heading: text("heading"), reason: text("reason"),
        back: back ? back.getAttribute("href") : null, url: window.location.href};
"""


def returned_page(browser: webdriver.Chrome, wanted: str) -> dict[str, str | None]:
    """The return page once it shows ``wanted`` (it refreshes itself while confirming)."""
    try:
        # The page reloads itself every few seconds: a script caught mid-reload is retried.
        wait = WebDriverWait(browser, WAIT_S, ignored_exceptions=RELOADING)
        shown: dict[str, str | None] = wait.until(
            lambda driver: driver.execute_script(SNAPSHOT, wanted)
        )
    except TimeoutException:
        pytest.fail(f"the browser is at {browser.current_url}, showing:\n{browser.page_source}")
    return shown


def test_the_customer_pays_on_the_gateway_s_page_and_sees_paid(
    case: HostedCase,
    merchant: HostedMerchant,
    browser: webdriver.Chrome,
    api: ApiClient,
    db: Database,
) -> None:
    payment_id, pay_url = start_payment(api, merchant, amount_drams=case.amount_drams)

    pay_in_browser(browser, pay_url, "pay")

    shown = returned_page(browser, "paid")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / f"pay-{case.gateway}.png"))
    assert str(shown["url"]).startswith(f"{api.base_url}/pay/")
    assert (shown["heading"], shown["back"]) == ("Paid", SUCCESS_URL)
    assert final_view(api, merchant, payment_id)["status"] == "succeeded"
    rows = ledger_rows(db, payment_id)
    assert [(r.amount_minor, r.currency) for r in rows] == [(case.amount_drams * 100, "AMD")]


def test_a_declined_payment_ends_failed_and_the_return_page_says_so(
    case: HostedCase,
    merchant: HostedMerchant,
    browser: webdriver.Chrome,
    api: ApiClient,
    db: Database,
) -> None:
    payment_id, pay_url = start_payment(api, merchant, amount_drams=case.amount_drams + 1)

    pay_in_browser(browser, pay_url, "decline")

    # Idram reports nothing for a decline: its bill expires at the end of its window.
    shown = returned_page(browser, "failed")
    assert (shown["heading"], shown["back"]) == ("Not paid", FAILURE_URL)
    assert shown["reason"]
    final = final_view(api, merchant, payment_id)
    assert final["status"] in ("failed", "expired")
    assert ledger_rows(db, payment_id) == []
