"""InTouch end to end: ingress → RabbitMQ → workers → InTouch simulator → callback → ledger.

Each test gets a merchant of its own with an agency of its own at the simulator
(so no two tests share TouchPay's callback settings). The hosted flow is driven
as TouchPay's browser SDK would be: the payment's ``next_action`` parameters are
posted to the simulator's ``/_sim/touchpay/checkout``; its callback (a GET with
the agency's HTTP Basic credentials) then goes to the merchant's callback URL.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from shared.crypto import CredentialCipher
from shared.db.models import Balance, GatewayEvent, LedgerEntry, PaymentAttempt
from shared.db.session import Database
from shared.merchants import create_merchant, issue_api_key, store_gateway_credentials
from shared.settings import Settings
from tests.conftest import DARAJA_CREDENTIALS, ApiClient, MerchantAccount, make_merchant
from tests.support.intouch_sim import InTouchSimulator
from tests.support.logs import phone_leaks
from tests.support.payments import events, final_view, view_of
from tests.support.processes import ManagedProcess
from tests.support.rabbit import Rabbit
from tests.support.refusals import refused_counts
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker", "ingress_server")]

SDK_PARAMETER_NAMES = [
    "order_number",
    "agency_code",
    "secure_code",
    "domain_name",
    "url_redirection_success",
    "url_redirection_failed",
    "amount",
    "city",
    "email",
    "clientFirstName",
    "clientLastName",
    "clientPhone",
]
# The simulator's built-in phone rules (sandbox/intouch/scenarios.py).
FAILING_PHONE = "+221770000001"  # fails, one callback
SILENT_SUCCESS_PHONE = "+221770000002"  # succeeds, no callback
TWICE_CALLED_BACK_PHONE = "+221770000003"  # succeeds, the callback comes twice
SUCCESS_URL = "https://shop.example.sn/merci"
FAILURE_URL = "https://shop.example.sn/echec"


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def intouch(sandbox_server: ManagedProcess, test_env: dict[str, str]) -> Iterator[InTouchSimulator]:
    port = test_env["MALIPO_SANDBOX_PORT"]
    simulator = InTouchSimulator(f"http://127.0.0.1:{port}/intouch")
    yield simulator
    simulator.close()


@dataclass
class InTouchMerchant:
    account: MerchantAccount
    credentials: dict[str, str]
    callback_url: str

    @property
    def id(self) -> uuid.UUID:
        return self.account.id

    @property
    def agency_code(self) -> str:
        return self.credentials["agency_code"]

    def headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        return self.account.headers(idempotency_key)


@pytest.fixture
def merchant(
    db: Database, settings: Settings, cipher: CredentialCipher, intouch: InTouchSimulator
) -> InTouchMerchant:
    """A fresh merchant with an agency of its own, whose TouchPay callback points at malipo."""
    credentials = intouch.new_agency()
    with db.transaction() as session:
        created = create_merchant(session, f"intouch-{uuid.uuid4().hex[:8]}")
        api_key = issue_api_key(
            session, settings.secret_key.get_secret_value().encode(), created.id
        )
        secret = store_gateway_credentials(
            session, cipher, created.id, "intouch", dict(credentials), production=False
        )
    callback_url = settings.merchant_callback_url("intouch", secret)
    intouch.set_callback(
        credentials["agency_code"],
        callback_url,
        credentials["callback_username"],
        credentials["callback_password"],
    )
    return InTouchMerchant(MerchantAccount(created.id, api_key, secret), credentials, callback_url)


# --- driving payments ----------------------------------------------------------------------------


def start_payment(
    api: ApiClient,
    merchant: InTouchMerchant | MerchantAccount,
    phone: str = "+221771234567",
    amount: int = 1500,
    **extra: Any,
) -> str:
    response = post_payment(api, merchant, phone=phone, amount=amount, **extra)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def post_payment(
    api: ApiClient,
    merchant: InTouchMerchant | MerchantAccount,
    phone: str = "+221771234567",
    amount: int = 1500,
    **extra: Any,
) -> requests.Response:
    body = {
        "amount": amount,
        "currency": "XOF",
        "phone": phone,
        "reference": f"SN-{uuid.uuid4().hex[:8]}",
        "success_url": SUCCESS_URL,
        "failure_url": FAILURE_URL,
        **extra,
    }
    return api.post("/v1/payments", json=body, headers=merchant.headers(str(uuid.uuid4())))


def next_action(api: ApiClient, merchant: InTouchMerchant, payment_id: str) -> dict[str, Any]:
    """The SDK call the worker stored for the front end (the payment is then submitted)."""

    def stored() -> dict[str, Any] | None:
        view = view_of(api, merchant, payment_id, wait_s=5)
        assert view["status"] in ("created", "submitted"), view
        action: dict[str, Any] | None = view.get("next_action")
        return action if view["status"] == "submitted" and action else None

    return wait_until(stored, timeout_s=15, what=f"payment {payment_id}'s next_action")


def pay_hosted(
    api: ApiClient, merchant: InTouchMerchant, intouch: InTouchSimulator, payment_id: str
) -> dict[str, Any]:
    """The customer pays on TouchPay's page: the front end hands the SDK its parameters."""
    parameters = next_action(api, merchant, payment_id)["parameters"]
    return intouch.checkout(parameters)


# --- what the database says ----------------------------------------------------------------------


def ledger(db: Database, merchant: InTouchMerchant) -> list[LedgerEntry]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(LedgerEntry)
                .where(LedgerEntry.merchant_id == merchant.account.id)
                .order_by(LedgerEntry.id)
            )
        )


def balance(db: Database, merchant: InTouchMerchant) -> int | None:
    with db.transaction() as session:
        found = session.get(Balance, (merchant.account.id, "XOF"))
        return None if found is None else found.available_minor


def order_number(db: Database, payment_id: str) -> str:
    """The attempt's reference: TouchPay's order_number, GU's idFromClient."""
    with db.transaction() as session:
        attempt = session.scalars(
            select(PaymentAttempt)
            .where(PaymentAttempt.intent_id == uuid.UUID(payment_id))
            .order_by(PaymentAttempt.number.desc())
        ).first()
    assert attempt is not None, "no attempt"
    assert attempt.gateway_ref, "the attempt has no gateway reference"
    return attempt.gateway_ref


def merchant_events(db: Database, merchant: InTouchMerchant) -> list[GatewayEvent]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(GatewayEvent)
                .where(GatewayEvent.merchant_id == merchant.account.id)
                .order_by(GatewayEvent.id)
            )
        )


# --- what the simulator saw ----------------------------------------------------------------------


def check_statuses(intouch: InTouchSimulator, order: str) -> list[dict[str, Any]]:
    return [
        r
        for r in intouch.requests(kind="check_status")
        if isinstance(r["body"], dict) and r["body"].get("partner_transaction_id") == order
    ]


def answered_deliveries(intouch: InTouchSimulator, order: str) -> list[dict[str, Any]]:
    """Callback deliveries the ingress acknowledged (so enqueued)."""
    return [d for d in intouch.deliveries(order) if d["status"] == 200]


def sim_time(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(record["time"]))


# --- 1. hosted success ---------------------------------------------------------------------------


def test_hosted_success_hands_the_sdk_its_parameters_and_credits_once_after_check_status(
    api: ApiClient, merchant: InTouchMerchant, intouch: InTouchSimulator, db: Database
) -> None:
    # Given a customer the merchant knows by name, e-mail and phone
    payment_id = start_payment(
        api,
        merchant,
        phone="+221 77 123 45 67",
        amount=1500,
        customer_first_name="Awa",
        customer_last_name="Diop",
        customer_email="awa.diop@example.sn",
        city="Dakar",
    )

    # When the front end gets the SDK call from malipo
    action = next_action(api, merchant, payment_id)
    view = view_of(api, merchant, payment_id, wait_s=5)

    # Then it is exactly sendPaymentInfos's twelve arguments, the customer's included
    assert (view["gateway"], view["flow"]) == ("intouch", "hosted")
    assert action["type"] == "sdk"
    parameters = action["parameters"]
    # (by name: the payment's JSON document does not keep sendPaymentInfos's order)
    assert sorted(parameters) == sorted(SDK_PARAMETER_NAMES)
    assert parameters["order_number"] == order_number(db, payment_id)
    assert {k: parameters[k] for k in SDK_PARAMETER_NAMES[1:]} == {
        "agency_code": merchant.agency_code,
        "secure_code": merchant.credentials["secure_code"],
        "domain_name": merchant.credentials["domain_name"],
        "url_redirection_success": SUCCESS_URL,
        "url_redirection_failed": FAILURE_URL,
        "amount": 1500,
        "city": "Dakar",
        "email": "awa.diop@example.sn",
        "clientFirstName": "Awa",
        "clientLastName": "Diop",
        "clientPhone": "771234567",
    }

    # When the customer pays on TouchPay's page (as the browser SDK would post it)
    checkout = intouch.checkout(parameters)
    assert checkout["redirect_url"] == SUCCESS_URL
    final = final_view(api, merchant, payment_id)

    # Then TouchPay called back with the agency's Basic credentials, and it succeeded
    order = parameters["order_number"]
    deliveries = answered_deliveries(intouch, order)
    assert [(d["method"], d["basic_user"]) for d in deliveries] == [
        ("GET", merchant.credentials["callback_username"])
    ]
    assert deliveries[0]["url"] == merchant.callback_url
    assert final["status"] == "succeeded"
    assert final["failure"] is None
    assert final["gateway_reference"] == order
    # ... the ledger is credited once, with the amount in whole francs
    entries = ledger(db, merchant)
    assert [(e.amount_minor, e.currency, e.gateway) for e in entries] == [(1500, "XOF", "intouch")]
    # ... under TouchPay's payment token, which the callback carried
    token = intouch.transaction(order)["payment_token"]
    assert (final["receipt"], entries[0].gateway_txn_id) == (token, token)
    assert entries[0].intent_id == uuid.UUID(payment_id)
    assert balance(db, merchant) == 1500
    assert [(e.source, e.outcome) for e in events(db, payment_id) if e.source == "callback"] == [
        ("callback", "applied")
    ]
    # ... and check_status confirmed the success before any money moved
    confirmed = [
        r
        for r in check_statuses(intouch, order)
        if r["status"] == 200 and r["response"].get("status") == "SUCCESSFUL"
    ]
    assert confirmed, "no check_status answered SUCCESSFUL for the order"
    assert sim_time(confirmed[0]) <= entries[0].created_at, (
        "the ledger was credited before check_status confirmed the success"
    )
    assert all(r["headers"]["authorization"].startswith("Digest ") for r in confirmed)


# --- 2. failure ----------------------------------------------------------------------------------


def test_a_failing_phone_ends_failed_with_its_catalogue_code_and_no_ledger_entry(
    api: ApiClient, merchant: InTouchMerchant, intouch: InTouchSimulator, db: Database
) -> None:
    payment_id = start_payment(api, merchant, phone=FAILING_PHONE, amount=2500)

    checkout = pay_hosted(api, merchant, intouch, payment_id)
    view = final_view(api, merchant, payment_id)

    assert checkout["redirect_url"] == FAILURE_URL
    assert (view["status"], view["failure"]["code"]) == ("failed", "gateway_rejected")
    assert view["failure"]["message"]
    order = order_number(db, payment_id)
    assert answered_deliveries(intouch, order), "the failure came by TouchPay's callback"
    assert ledger(db, merchant) == []
    assert balance(db, merchant) in (None, 0)


# --- 3. duplicated callbacks ---------------------------------------------------------------------


def test_a_callback_delivered_twice_and_resent_credits_once(
    api: ApiClient,
    merchant: InTouchMerchant,
    intouch: InTouchSimulator,
    db: Database,
    rabbit: Rabbit,
) -> None:
    payment_id = start_payment(api, merchant, phone=TWICE_CALLED_BACK_PHONE, amount=700)

    pay_hosted(api, merchant, intouch, payment_id)
    view = final_view(api, merchant, payment_id)
    order = order_number(db, payment_id)
    wait_until(lambda: len(answered_deliveries(intouch, order)) >= 2, what="the second callback")
    intouch.resend(order)  # and a third copy, as InTouch's back office can send
    wait_until(lambda: len(answered_deliveries(intouch, order)) >= 3, what="the third callback")
    rabbit.wait_settled("callbacks")  # every copy the ingress accepted has been processed

    assert view["status"] == "succeeded"
    assert [e.amount_minor for e in ledger(db, merchant)] == [700]
    assert balance(db, merchant) == 700
    callback_events = [e for e in events(db, payment_id) if e.source == "callback"]
    assert [e.outcome for e in callback_events] == ["applied"]


# --- 4. lost callback ----------------------------------------------------------------------------


def test_a_lost_callback_is_finished_by_polling_check_status(
    api: ApiClient, merchant: InTouchMerchant, intouch: InTouchSimulator, db: Database
) -> None:
    payment_id = start_payment(api, merchant, phone=SILENT_SUCCESS_PHONE, amount=300)

    pay_hosted(api, merchant, intouch, payment_id)
    view = final_view(api, merchant, payment_id)
    order = order_number(db, payment_id)

    assert view["status"] == "succeeded"
    assert intouch.deliveries(order) == [], "the simulator sent a callback it should not have"
    assert [e.source for e in events(db, payment_id)] == ["query"]
    assert [e.amount_minor for e in ledger(db, merchant)] == [300]
    assert any(
        r["response"].get("status") == "SUCCESSFUL" for r in check_statuses(intouch, order)
    ), "the poller never asked check_status"


# --- 5. forged callbacks -------------------------------------------------------------------------


def refusals(db: Database, merchant: InTouchMerchant) -> list[tuple[str | None, str | None]]:
    return [(e.gateway, e.reason) for e in refused_counts(db, merchant_id=merchant.account.id)]


def test_a_forged_callback_is_refused_recorded_and_never_applied(
    api: ApiClient, merchant: InTouchMerchant, intouch: InTouchSimulator, db: Database
) -> None:
    # Given a payment waiting for the customer, and TouchPay's fields claiming it was paid
    payment_id = start_payment(api, merchant, amount=5000)
    order = next_action(api, merchant, payment_id)["parameters"]["order_number"]
    forged = {
        "payment_mode": "ORANGE_MONEY_SN",
        "paid_sum": "5000.0",
        "paid_amount": "5000.0",
        "payment_token": "TP000000000001",
        "payment_status": "200",
        "command_number": order,
        "payment_validation_date": "1700000000000",
    }

    # When they arrive at the right path secret with wrong Basic credentials, and with none
    wrong = api.http.get(
        merchant.callback_url,
        params=forged,
        auth=(merchant.credentials["callback_username"], "not-the-password"),
        timeout=10,
    )
    missing = api.http.get(merchant.callback_url, params=forged, timeout=10)

    # Then both are a bare 404, recorded as refused with their reasons
    assert (wrong.status_code, missing.status_code) == (404, 404)
    expected = [("intouch", "basic_auth_invalid"), ("intouch", "basic_auth_missing")]
    wait_until(lambda: len(refusals(db, merchant)) >= 2, what="both refusals recorded")
    assert sorted(refusals(db, merchant)) == sorted(expected)
    # ... and never applied: the payment is still waiting, nothing credited
    view = view_of(api, merchant, payment_id, wait_s=5)
    assert view["status"] == "submitted"
    assert [e for e in events(db, payment_id) if e.source == "callback"] == []
    assert ledger(db, merchant) == []
    assert all(r["response"].get("status") != "SUCCESSFUL" for r in check_statuses(intouch, order))


# --- 6. GU push ----------------------------------------------------------------------------------


def test_a_gu_push_succeeds_with_digest_auth_through_its_callback(
    api: ApiClient, merchant: InTouchMerchant, intouch: InTouchSimulator, db: Database
) -> None:
    payment_id = start_payment(api, merchant, phone="+221 76 555 44 33", amount=4200, flow="push")

    view = final_view(api, merchant, payment_id)
    order = order_number(db, payment_id)

    assert (view["gateway"], view["flow"], view["status"]) == ("intouch", "push", "succeeded")
    pushes = [
        r
        for r in intouch.requests(kind="push")
        if f"/touchpayapi/{merchant.agency_code}/" in r["path"]
    ]
    # HTTP Digest: the first try is challenged, the answer to the challenge is taken.
    assert [p["status"] for p in pushes] == [401, 200]
    assert pushes[1]["headers"]["authorization"].startswith("Digest ")
    assert pushes[1]["body"]["idFromClient"] == order
    assert pushes[1]["body"]["amount"] == 4200
    assert pushes[1]["body"]["recipientNumber"] == "765554433"
    assert pushes[1]["body"]["serviceCode"] == merchant.credentials["service_code"]
    # ... GU's callback (a JSON POST with the agency's Basic credentials) was taken ...
    deliveries = answered_deliveries(intouch, order)
    assert [(d["flow"], d["method"]) for d in deliveries] == [("gu", "POST")]
    assert deliveries[0]["url"].startswith(merchant.callback_url)
    assert [(e.source, e.outcome) for e in events(db, payment_id) if e.source == "callback"] == [
        ("callback", "applied")
    ]
    # ... and the money moved once
    assert [e.amount_minor for e in ledger(db, merchant)] == [4200]


# --- 7. no route ---------------------------------------------------------------------------------


def test_an_xof_payment_without_an_intouch_route_is_refused(
    api: ApiClient, db: Database, settings: Settings, cipher: CredentialCipher
) -> None:
    daraja_only = make_merchant(db, settings, cipher, daraja=dict(DARAJA_CREDENTIALS))

    response = post_payment(api, daraja_only)

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "currency_not_supported"


# --- 8. logs -------------------------------------------------------------------------------------


def test_the_logs_of_a_senegalese_payment_never_hold_the_full_phone_number(
    api: ApiClient,
    merchant: InTouchMerchant,
    intouch: InTouchSimulator,
    db: Database,
    log_dir: Path,
    worker_log: io.StringIO,
    rabbit: Rabbit,
) -> None:
    ingress_log = log_dir / "ingress.log"
    ingress_start = ingress_log.stat().st_size if ingress_log.exists() else 0
    e164 = "221781234598"

    # A hosted payment paid through TouchPay's callback, and a GU push, for the same phone
    hosted = start_payment(api, merchant, phone="+221 78 123 45 98", amount=1000)
    pay_hosted(api, merchant, intouch, hosted)
    pushed = start_payment(api, merchant, phone="781234598", amount=1100, flow="push")
    views = [final_view(api, merchant, p) for p in (hosted, pushed)]
    rabbit.wait_settled("callbacks")
    logs = {
        "ingress": ingress_log.read_text(errors="replace")[ingress_start:],
        "workers": worker_log.getvalue(),
    }

    assert [v["status"] for v in views] == ["succeeded", "succeeded"]
    assert {name: phone_leaks(e164, "221", text) for name, text in logs.items()} == {
        "ingress": [],
        "workers": [],
    }
    # The search had real lines to read: both payments appear in both logs, and the
    # ingress took the InTouch callback.
    for payment_id in (hosted, pushed):
        for name, text in logs.items():
            assert payment_id in text, f"payment {payment_id} not in the {name} log"
    assert '"gateway": "intouch", "event": "callback accepted"' in logs["ingress"]
