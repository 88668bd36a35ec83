"""Idram and Telcell end to end: results signed with the merchant's secret, sent to the
result URL typed into the gateway's cabinet.

Idram asks first whether the bill may be paid (the ingress answers from the
database); both sign their results with an MD5 over the merchant's secret, which
the worker checks before anything is applied. Neither has a status API: the
result is the gateway's only word, deduplicated on its own transaction id.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.crypto import CredentialCipher
from shared.db.models import GatewayEvent
from shared.db.session import Database
from shared.settings import Settings
from tests.conftest import ApiClient
from tests.support.hosted import (
    Customer,
    HostedMerchant,
    next_action,
    page_state,
    start_payment,
)
from tests.support.hosted_cases import idram_merchant, telcell_merchant
from tests.support.idram_sim import IdramSimulator
from tests.support.payments import events, final_view, ledger_rows, view_of
from tests.support.processes import ManagedProcess
from tests.support.rabbit import Rabbit
from tests.support.telcell_sim import TelcellSimulator
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker", "ingress_server")]


@pytest.fixture
def sandbox(sandbox_server: ManagedProcess, test_env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{test_env['MALIPO_SANDBOX_PORT']}"


@pytest.fixture
def idram(sandbox: str) -> Iterator[IdramSimulator]:
    simulator = IdramSimulator(f"{sandbox}/idram")
    yield simulator
    simulator.close()


@pytest.fixture
def telcell(sandbox: str) -> Iterator[TelcellSimulator]:
    simulator = TelcellSimulator(f"{sandbox}/telcell")
    yield simulator
    simulator.close()


@pytest.fixture
def idram_shop(
    sandbox: str, db: Database, settings: Settings, cipher: CredentialCipher
) -> Iterator[HostedMerchant]:
    with idram_merchant(sandbox, db, settings, cipher) as merchant:
        yield merchant


@pytest.fixture
def telcell_shop(
    sandbox: str, db: Database, settings: Settings, cipher: CredentialCipher
) -> Iterator[HostedMerchant]:
    with telcell_merchant(sandbox, db, settings, cipher) as merchant:
        yield merchant


@pytest.fixture
def customer() -> Iterator[Customer]:
    browser = Customer()
    yield browser
    browser.close()


def refused_events(db: Database, merchant: HostedMerchant) -> list[GatewayEvent]:
    with db.transaction() as session:
        return list(
            session.query(GatewayEvent)
            .filter(GatewayEvent.merchant_id == merchant.id, GatewayEvent.outcome == "refused")
            .all()
        )


def open_idram_page(
    api: ApiClient, merchant: HostedMerchant, idram: IdramSimulator, amount: int
) -> tuple[str, str]:
    """Start a payment and post its form to Idram, as the pay page's form does."""
    payment_id, _ = start_payment(api, merchant, amount_drams=amount)
    action = next_action(api, merchant, payment_id)
    assert action["type"] == "form_post"
    assert action["fields"]["EDP_AMOUNT"] == str(amount)
    order_id, _ = idram.open_page(action["url"], action["fields"])
    return payment_id, order_id


# --- Idram ---------------------------------------------------------------------------------------


def test_idram_prechecks_then_confirms_and_the_payment_is_credited_once(
    api: ApiClient,
    idram_shop: HostedMerchant,
    idram: IdramSimulator,
    customer: Customer,
    db: Database,
) -> None:
    payment_id, pay_url = start_payment(api, idram_shop, amount_drams=5000)
    page = customer.open_pay_page(pay_url)
    idram_page = customer.go_on(page)  # the auto-submitted form, pressed by hand
    assert idram_page.status_code == 200
    order_id = idram_page.url.rsplit("/", 1)[-1]

    back = idram.decide(order_id, "pay")["return_url"]
    final = final_view(api, idram_shop, payment_id)

    assert final["status"] == "succeeded"
    calls = idram.deliveries(order_id)
    assert [(c["kind"], c["answer"]) for c in calls] == [("precheck", "OK"), ("confirmation", "OK")]
    assert final["receipt"] == calls[1]["fields"]["EDP_TRANS_ID"]
    assert [(r.amount_minor, r.currency) for r in ledger_rows(db, payment_id)] == [(500000, "AMD")]
    # Idram's return URL is the cabinet's /pay/return: the pay page's cookie says which payment.
    assert page_state(customer.return_page(back)) == "paid"


def test_a_precheck_with_a_wrong_amount_is_refused_and_nothing_is_paid(
    api: ApiClient, idram_shop: HostedMerchant, idram: IdramSimulator, db: Database
) -> None:
    idram.scenario(match={"amount": 5100}, precheck_amount=True)
    payment_id, order_id = open_idram_page(api, idram_shop, idram, 5100)

    idram.decide(order_id, "pay")

    calls = idram.deliveries(order_id)
    assert [(c["kind"], c["answer"]) for c in calls] == [("precheck", "NO")]
    assert calls[0]["fields"]["EDP_AMOUNT"] != "5100"
    assert view_of(api, idram_shop, payment_id)["status"] == "submitted"
    assert ledger_rows(db, payment_id) == []


def test_a_forged_idram_checksum_is_refused_and_recorded(
    api: ApiClient, idram_shop: HostedMerchant, idram: IdramSimulator, db: Database
) -> None:
    idram.scenario(match={"amount": 5200}, wrong_checksum=True)
    payment_id, order_id = open_idram_page(api, idram_shop, idram, 5200)

    idram.decide(order_id, "pay")

    refused = wait_until(
        lambda: refused_events(db, idram_shop) or None, timeout_s=15, what="the refusal"
    )
    assert [(e.detail, e.intent_id) for e in refused] == [("checksum_mismatch", None)]
    assert view_of(api, idram_shop, payment_id)["status"] == "submitted"
    assert ledger_rows(db, payment_id) == []
    assert not [e for e in events(db, payment_id) if e.outcome == "applied"]


def test_a_duplicated_idram_confirmation_credits_once(
    api: ApiClient,
    idram_shop: HostedMerchant,
    idram: IdramSimulator,
    db: Database,
    rabbit: Rabbit,
) -> None:
    idram.scenario(match={"amount": 5300}, result="twice")
    payment_id, order_id = open_idram_page(api, idram_shop, idram, 5300)

    idram.decide(order_id, "pay")
    assert final_view(api, idram_shop, payment_id)["status"] == "succeeded"
    wait_until(
        lambda: (
            [c["answer"] for c in idram.deliveries(order_id) if c["kind"] == "confirmation"]
            == ["OK", "OK"]
            or None
        ),
        timeout_s=15,
        what="both confirmations acknowledged",
    )
    rabbit.wait_settled("callbacks")

    # The second is the same EDP_TRANS_ID: one event, one credit.
    assert len(ledger_rows(db, payment_id)) == 1
    assert [e.outcome for e in events(db, payment_id) if e.source == "callback"] == ["applied"]


# --- Telcell -------------------------------------------------------------------------------------


def open_telcell_page(
    api: ApiClient, merchant: HostedMerchant, telcell: TelcellSimulator, amount: int
) -> tuple[str, str]:
    payment_id, _ = start_payment(api, merchant, amount_drams=amount)
    action = next_action(api, merchant, payment_id)
    assert action["type"] == "redirect"
    invoice, _ = telcell.open_page(action["url"])
    return payment_id, invoice


def test_telcell_pays_and_its_checksummed_result_is_credited_once(
    api: ApiClient, telcell_shop: HostedMerchant, telcell: TelcellSimulator, db: Database
) -> None:
    payment_id, invoice = open_telcell_page(api, telcell_shop, telcell, 4000)

    telcell.decide(invoice, "pay")

    final = final_view(api, telcell_shop, payment_id)
    assert final["status"] == "succeeded"
    assert [(r.amount_minor, r.currency) for r in ledger_rows(db, payment_id)] == [(400000, "AMD")]


def test_a_forged_telcell_checksum_is_refused_and_recorded(
    api: ApiClient, telcell_shop: HostedMerchant, telcell: TelcellSimulator, db: Database
) -> None:
    telcell.scenario(match={"amount": 4100}, wrong_checksum=True)
    payment_id, invoice = open_telcell_page(api, telcell_shop, telcell, 4100)

    telcell.decide(invoice, "pay")

    refused = wait_until(
        lambda: refused_events(db, telcell_shop) or None, timeout_s=15, what="the refusal"
    )
    assert [e.detail for e in refused] == ["checksum_mismatch"]
    assert view_of(api, telcell_shop, payment_id)["status"] == "submitted"
    assert ledger_rows(db, payment_id) == []


def test_a_duplicated_telcell_result_credits_once(
    api: ApiClient,
    telcell_shop: HostedMerchant,
    telcell: TelcellSimulator,
    db: Database,
    rabbit: Rabbit,
) -> None:
    telcell.scenario(match={"amount": 4200}, result="twice")
    payment_id, invoice = open_telcell_page(api, telcell_shop, telcell, 4200)

    telcell.decide(invoice, "pay")
    assert final_view(api, telcell_shop, payment_id)["status"] == "succeeded"
    wait_until(
        lambda: [d["status"] for d in telcell.deliveries(invoice)] == [200, 200] or None,
        timeout_s=15,
        what="both results acknowledged",
    )
    rabbit.wait_settled("callbacks")

    assert len(ledger_rows(db, payment_id)) == 1
    assert [e.outcome for e in events(db, payment_id) if e.source == "callback"] == ["applied"]
