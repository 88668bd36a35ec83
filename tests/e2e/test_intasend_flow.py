"""IntaSend end to end: ingress → RabbitMQ → workers → IntaSend simulator → webhook → ledger.

Each test makes its own merchant on its own simulator account, whose dashboard
webhook is the merchant's malipo callback URL for IntaSend with a challenge of
its own, so no two tests share webhook settings.
"""

from __future__ import annotations

import json
import random
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
import requests
from sqlalchemy import select

from shared.crypto import CredentialCipher
from shared.db.models import Balance, LedgerEntry, PaymentIntent, RefusedCallback
from shared.db.session import Database
from shared.merchants import (
    create_merchant,
    issue_api_key,
    route_for,
    set_callback_policy,
    set_route,
    store_gateway_credentials,
)
from shared.settings import Settings
from tests.conftest import DARAJA_CREDENTIALS, ApiClient, MerchantAccount
from tests.support.intasend_sim import IntaSendSimulator
from tests.support.payments import events, final_view, ledger_rows, view_of
from tests.support.rabbit import Rabbit
from tests.support.refusals import refused_counts
from tests.support.sim import Simulator
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker", "ingress_server")]

# The simulator's built-in phones (sandbox/intasend/scenarios.py).
NO_WEBHOOK_PHONE = "254700009999"
TWICE_PHONE = "254700009998"
PROCESSING_AFTER_COMPLETE_PHONE = "254700009997"
NEVER_FINISHES_PHONE = "254700009996"
INSUFFICIENT_FUNDS_PHONE = "254700000001"
# SANDBOX_INTASEND_FEE_PERCENT's default: charges are 3.5 % of the value.
FEE_PERCENT = 3.5


@dataclass(frozen=True)
class IntaSendMerchant:
    account: MerchantAccount
    publishable_key: str
    challenge: str
    callback_url: str

    @property
    def id(self) -> uuid.UUID:
        return self.account.id

    def headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        return self.account.headers(idempotency_key)


@pytest.fixture
def isim(sandbox_server: Any, test_env: dict[str, str]) -> Iterator[IntaSendSimulator]:
    """The IntaSend simulator, without scenarios (accounts are per merchant, never reset)."""
    simulator = IntaSendSimulator.for_sandbox_port(test_env["MALIPO_SANDBOX_PORT"])
    simulator.clear_scenarios()
    yield simulator
    simulator.clear_scenarios()
    simulator.http.close()


def make_intasend_merchant(
    db: Database,
    settings: Settings,
    cipher: CredentialCipher,
    isim: IntaSendSimulator,
    *,
    with_daraja: bool = False,
) -> IntaSendMerchant:
    """A merchant with a fresh simulator account whose dashboard webhook points at malipo.

    With ``with_daraja``, Daraja's credentials are stored first (so the route for KES
    is ``daraja, intasend``).
    """
    sim_account = isim.add_account()
    challenge = f"challenge-{secrets.token_hex(8)}"
    with db.transaction() as session:
        merchant = create_merchant(session, f"intasend-{uuid.uuid4().hex[:8]}")
        api_key = issue_api_key(
            session, settings.secret_key.get_secret_value().encode(), merchant.id
        )
        if with_daraja:
            store_gateway_credentials(
                session, cipher, merchant.id, "daraja", dict(DARAJA_CREDENTIALS), production=False
            )
        secret = store_gateway_credentials(
            session,
            cipher,
            merchant.id,
            "intasend",
            {
                "publishable_key": sim_account["publishable_key"],
                "secret_key": sim_account["secret_key"],
                "challenge": challenge,
            },
            production=False,
        )
    callback_url = settings.merchant_callback_url("intasend", secret)
    isim.set_webhook(sim_account["publishable_key"], callback_url, challenge)
    return IntaSendMerchant(
        MerchantAccount(merchant.id, api_key, secret),
        sim_account["publishable_key"],
        challenge,
        callback_url,
    )


@pytest.fixture
def merchant(
    db: Database, settings: Settings, cipher: CredentialCipher, isim: IntaSendSimulator
) -> IntaSendMerchant:
    """A fresh merchant with IntaSend only (route ``KES: intasend``)."""
    return make_intasend_merchant(db, settings, cipher, isim)


def random_phone() -> str:
    """A Kenyan number no simulator treats specially (their built-ins are 2547000…)."""
    return f"25472{random.randrange(10**7):07d}"


def start_payment(
    api: ApiClient,
    merchant: IntaSendMerchant,
    phone: str | None = None,
    amount: int = 10_000,
    **extra: Any,
) -> str:
    body = {
        "amount": amount,
        "currency": "KES",
        "phone": phone or random_phone(),
        "reference": f"ORD-{uuid.uuid4().hex[:8]}",
        **extra,
    }
    response = api.post("/v1/payments", json=body, headers=merchant.headers(str(uuid.uuid4())))
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def invoice_id_of(db: Database, payment_id: str) -> str:
    """The IntaSend invoice id the worker stored for the payment (once the push was answered)."""

    def stored() -> str | None:
        with db.transaction() as session:
            found = session.get(PaymentIntent, uuid.UUID(payment_id))
            return found.gateway_ref if found is not None else None

    return wait_until(stored, what=f"the invoice id of payment {payment_id}")


def ledger(db: Database, payment_id: str) -> list[tuple[str, int]]:
    with db.transaction() as session:
        entries = session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.intent_id == uuid.UUID(payment_id))
            .order_by(LedgerEntry.id)
        ).all()
        return [(e.kind, e.amount_minor) for e in entries]


def balance(db: Database, merchant: IntaSendMerchant) -> int:
    with db.transaction() as session:
        row = session.get(Balance, (merchant.id, "KES"))
        return row.available_minor if row is not None else 0


def fee_for(amount_minor: int) -> int:
    """The simulator's charges in minor units (3.5 %, half up; whole shillings make it exact)."""
    return int(amount_minor * FEE_PERCENT / 100 + 0.5)


def answered(deliveries: list[dict[str, Any]]) -> list[str]:
    """The states of the webhook deliveries malipo acknowledged (so enqueued), in order."""
    return [d["state"] for d in deliveries if d["status"] == 200]


# -- 1. success -----------------------------------------------------------------------------


def test_success_is_confirmed_with_the_status_api_then_credited_net_of_charges(
    api: ApiClient, merchant: IntaSendMerchant, isim: IntaSendSimulator, db: Database
) -> None:
    payment_id = start_payment(api, merchant, amount=10_000)  # KES 100

    view = final_view(api, merchant, payment_id)

    invoice_id = view["gateway_reference"]
    fee = fee_for(10_000)
    assert fee == 350
    invoice = isim.invoice(invoice_id)["invoice"]
    assert (view["status"], view["gateway"], view["failure"]) == ("succeeded", "intasend", None)
    assert invoice["state"] == "COMPLETE"
    assert view["receipt"] == invoice["mpesa_reference"]
    assert (view["fee"], view["net"]) == (fee, 10_000 - fee)
    assert ledger(db, payment_id) == [("collection", 10_000), ("fee", -fee)]
    assert balance(db, merchant) == 10_000 - fee
    # The COMPLETE webhook is what credited it, once the status API had confirmed it.
    credited = [e for e in events(db, payment_id) if e.outcome == "applied"]
    assert [(e.source, e.event_key) for e in credited] == [
        ("callback", f"invoice:{invoice_id}:COMPLETE")
    ]
    confirmations = [
        q
        for q in isim.status_queries(invoice_id)
        if q["status"] == 200 and q["response"]["invoice"]["state"] == "COMPLETE"
    ]
    assert confirmations, "the status API was never asked about the invoice"
    money_moved_at = ledger_rows(db, payment_id)[0].created_at
    assert datetime.fromisoformat(confirmations[0]["time"]) <= money_moved_at, (
        "the collection was credited before the status API confirmed it"
    )
    [push] = isim.pushes(invoice["account"])
    assert (push["body"]["amount"], push["body"]["currency"]) == ("100.00", "KES")


# -- 2. failures ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "status", "code"),
    [
        ("254700001032", "cancelled", "cancelled_by_user"),
        ("254700000001", "failed", "insufficient_funds"),
        ("254700002001", "failed", "wrong_pin"),
        ("254700001037", "expired", "customer_unreachable"),
        ("254700001019", "expired", "transaction_expired"),
    ],
)
def test_each_failure_outcome_ends_with_its_catalogue_code(
    api: ApiClient,
    merchant: IntaSendMerchant,
    isim: IntaSendSimulator,
    db: Database,
    phone: str,
    status: str,
    code: str,
) -> None:
    payment_id = start_payment(api, merchant, phone=phone)

    view = final_view(api, merchant, payment_id)

    assert (view["gateway"], view["status"], view["failure"]["code"]) == ("intasend", status, code)
    assert view["failure"]["message"]
    assert (view["receipt"], view["net"]) == (None, None)
    assert isim.invoice(view["gateway_reference"])["invoice"]["state"] == "FAILED"
    assert ledger(db, payment_id) == []
    assert balance(db, merchant) == 0


# -- 3. repeated webhooks -------------------------------------------------------------------


def test_a_webhook_delivered_twice_and_resent_credits_once(
    api: ApiClient,
    merchant: IntaSendMerchant,
    isim: IntaSendSimulator,
    db: Database,
    rabbit: Rabbit,
) -> None:
    payment_id = start_payment(api, merchant, phone=TWICE_PHONE, amount=70_000)

    view = final_view(api, merchant, payment_id)
    invoice_id = view["gateway_reference"]
    wait_until(
        lambda: answered(isim.deliveries(invoice_id)).count("COMPLETE") >= 2,
        what="the second COMPLETE webhook",
    )
    assert isim.resend(invoice_id)["state"] == "COMPLETE"  # and a third copy
    wait_until(
        lambda: answered(isim.deliveries(invoice_id)).count("COMPLETE") >= 3,
        what="the resent COMPLETE webhook",
    )
    rabbit.wait_settled("callbacks")  # every copy malipo acknowledged has been processed

    fee = fee_for(70_000)
    assert view["status"] == "succeeded"
    assert ledger(db, payment_id) == [("collection", 70_000), ("fee", -fee)]
    assert balance(db, merchant) == 70_000 - fee
    complete = [e for e in events(db, payment_id) if e.event_key.endswith(":COMPLETE")]
    assert [(e.source, e.outcome) for e in complete] == [("callback", "applied")]
    assert [e.outcome for e in events(db, payment_id)].count("applied") == 1


def test_a_processing_webhook_after_the_complete_one_changes_nothing(
    api: ApiClient,
    merchant: IntaSendMerchant,
    isim: IntaSendSimulator,
    db: Database,
    rabbit: Rabbit,
) -> None:
    payment_id = start_payment(api, merchant, phone=PROCESSING_AFTER_COMPLETE_PHONE)
    view = final_view(api, merchant, payment_id)
    invoice_id = view["gateway_reference"]

    wait_until(
        lambda: answered(isim.deliveries(invoice_id)) == ["PROCESSING", "COMPLETE", "PROCESSING"],
        what="the PROCESSING webhook after COMPLETE",
    )
    rabbit.wait_settled("callbacks")

    after = view_of(api, merchant, payment_id)
    assert view["status"] == "succeeded"
    assert {k: after[k] for k in ("status", "finished_at", "receipt", "fee", "net", "flags")} == {
        k: view[k] for k in ("status", "finished_at", "receipt", "fee", "net", "flags")
    }
    assert ledger(db, payment_id) == [("collection", 10_000), ("fee", -fee_for(10_000))]
    assert balance(db, merchant) == 10_000 - fee_for(10_000)
    processing = [e for e in events(db, payment_id) if e.event_key.endswith(":PROCESSING")]
    assert [(e.source, e.outcome) for e in processing] == [("callback", "pending")]


# -- 4. lost webhook ------------------------------------------------------------------------


def test_a_lost_webhook_is_finished_by_polling(
    api: ApiClient, merchant: IntaSendMerchant, isim: IntaSendSimulator, db: Database
) -> None:
    payment_id = start_payment(api, merchant, phone=NO_WEBHOOK_PHONE, amount=30_000)

    view = final_view(api, merchant, payment_id)

    invoice_id = view["gateway_reference"]
    assert view["status"] == "succeeded"
    assert isim.deliveries(invoice_id) == []  # IntaSend never told malipo
    assert isim.status_queries(invoice_id)
    assert {e.source for e in events(db, payment_id)} == {"query"}
    # IntaSend's status answer carries the receipt and the charges, unlike Daraja's query.
    assert view["receipt"] == isim.invoice(invoice_id)["invoice"]["mpesa_reference"]
    assert (view["fee"], view["net"]) == (fee_for(30_000), 30_000 - fee_for(30_000))
    assert ledger(db, payment_id) == [("collection", 30_000), ("fee", -fee_for(30_000))]
    assert balance(db, merchant) == 30_000 - fee_for(30_000)


# -- 5. forged webhook ----------------------------------------------------------------------


def refused_events(db: Database, body: bytes) -> list[RefusedCallback]:
    return refused_counts(db, body=body)


@pytest.mark.parametrize(
    ("challenge", "reason"),
    [("not-the-challenge", "challenge_invalid"), (None, "challenge_missing")],
)
def test_a_forged_webhook_is_refused_recorded_and_never_applied(
    api: ApiClient,
    merchant: IntaSendMerchant,
    isim: IntaSendSimulator,
    db: Database,
    rabbit: Rabbit,
    challenge: str | None,
    reason: str,
) -> None:
    # Were the challenge not checked, nothing else would stop the forgery: no confirmation.
    with db.transaction() as session:
        set_callback_policy(session, merchant.id, "intasend", confirm_before_credit=False)
    payment_id = start_payment(api, merchant, phone=NEVER_FINISHES_PHONE)
    invoice_id = invoice_id_of(db, payment_id)
    genuine = isim.invoice(invoice_id)["invoice"]
    forged_invoice = {
        **genuine,
        "state": "COMPLETE",
        "mpesa_reference": "QFORGED123",
        "failed_reason": None,
        "failed_code": None,
    }
    forged = json.dumps(
        {**forged_invoice, **({"challenge": challenge} if challenge is not None else {})}
    ).encode()

    refused = requests.post(
        merchant.callback_url,
        data=forged,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    # The same path with the right challenge is accepted: only the challenge was wrong.
    control = json.dumps({**genuine, "state": "PROCESSING", "challenge": merchant.challenge})
    accepted = requests.post(
        merchant.callback_url,
        data=control.encode(),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )

    assert refused.status_code == 404
    assert accepted.status_code == 200, accepted.text
    recorded = wait_until(lambda: refused_events(db, forged), what="the refusal to be recorded")
    rabbit.wait_settled("callbacks")
    assert [(e.gateway, e.reason, e.count, e.merchant_id) for e in recorded] == [
        ("intasend", reason, 1, merchant.id)
    ]
    assert not [e for e in events(db, payment_id) if e.event_key.endswith(":COMPLETE")]
    assert view_of(api, merchant, payment_id)["status"] in ("submitted", "expired")
    assert ledger(db, payment_id) == []
    assert balance(db, merchant) == 0


# -- 6. routing -----------------------------------------------------------------------------


def test_payments_without_a_gateway_follow_the_merchants_route(
    api: ApiClient,
    db: Database,
    settings: Settings,
    cipher: CredentialCipher,
    isim: IntaSendSimulator,
    sim: Simulator,
) -> None:
    both = make_intasend_merchant(db, settings, cipher, isim, with_daraja=True)
    only_intasend = make_intasend_merchant(db, settings, cipher, isim)
    with db.transaction() as session:
        assert route_for(session, both.id, "KES") == ["daraja", "intasend"]
        assert route_for(session, only_intasend.id, "KES") == ["intasend"]
        set_route(session, both.id, "KES", ["daraja", "intasend"])
    phone_both, phone_only = random_phone(), random_phone()

    via_daraja = final_view(api, both, start_payment(api, both, phone=phone_both, amount=1_500))
    via_intasend = final_view(
        api, only_intasend, start_payment(api, only_intasend, phone=phone_only, amount=1_500)
    )

    daraja_pushes = {str(r["body"].get("PhoneNumber")) for r in sim.requests(kind="stkpush")}
    assert (via_daraja["status"], via_daraja["gateway"]) == ("succeeded", "daraja")
    assert phone_both in daraja_pushes
    assert isim.pushes(phone_both) == []
    assert (via_intasend["status"], via_intasend["gateway"]) == ("succeeded", "intasend")
    assert len(isim.pushes(phone_only)) == 1
    assert phone_only not in daraja_pushes


# -- 7. redemptions -------------------------------------------------------------------------


def redeem(
    api: ApiClient,
    merchant: IntaSendMerchant,
    reference: str,
    order_id: str,
    expected_amount: int = 10_000,
    gateway: str = "intasend",
) -> requests.Response:
    return api.post(
        "/v1/redemptions",
        json={
            "gateway": gateway,
            "reference": reference,
            "order_id": order_id,
            "expected_amount": expected_amount,
        },
        headers=merchant.headers(),
    )


def test_an_invoice_id_redeems_one_order_only(
    api: ApiClient,
    merchant: IntaSendMerchant,
    isim: IntaSendSimulator,
    db: Database,
    settings: Settings,
    cipher: CredentialCipher,
) -> None:
    payment_id = start_payment(api, merchant)
    invoice_id = final_view(api, merchant, payment_id)["gateway_reference"]
    assert invoice_id == invoice_id_of(db, payment_id)

    first = redeem(api, merchant, invoice_id, "ORDER-A")
    again = redeem(api, merchant, invoice_id, "ORDER-A")
    second = redeem(api, merchant, invoice_id, "ORDER-B")
    stranger = make_intasend_merchant(db, settings, cipher, isim)
    elsewhere = redeem(api, stranger, invoice_id, "ORDER-C")

    assert first.status_code == 200, first.text
    assert (first.json()["payment_id"], first.json()["order_id"]) == (payment_id, "ORDER-A")
    assert again.status_code == 200, again.text
    assert again.json() == first.json()  # the same order again: the same redemption
    assert second.status_code == 409, second.text
    assert second.json()["error"]["code"] == "already_redeemed"
    assert second.json()["error"]["order_id"] == "ORDER-A"
    assert second.json()["error"]["message"]
    assert elsewhere.status_code == 404, "another merchant must not find this invoice"


@pytest.mark.parametrize("phone", [INSUFFICIENT_FUNDS_PHONE, NEVER_FINISHES_PHONE])
def test_a_failed_or_pending_payment_is_not_redeemable(
    api: ApiClient,
    merchant: IntaSendMerchant,
    isim: IntaSendSimulator,
    db: Database,
    phone: str,
) -> None:
    payment_id = start_payment(api, merchant, phone=phone)
    if phone == INSUFFICIENT_FUNDS_PHONE:
        assert final_view(api, merchant, payment_id)["status"] == "failed"
    invoice_id = invoice_id_of(db, payment_id)

    refused = redeem(api, merchant, invoice_id, "ORDER-X")

    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "payment_not_redeemable"


def test_an_unknown_reference_or_a_gateway_without_references_is_refused(
    api: ApiClient, merchant: IntaSendMerchant, isim: IntaSendSimulator, db: Database
) -> None:
    payment_id = start_payment(api, merchant)
    invoice_id = final_view(api, merchant, payment_id)["gateway_reference"]

    unknown = redeem(api, merchant, "NOSUCHINVOICE", "ORDER-U")
    daraja = redeem(api, merchant, invoice_id, "ORDER-D", gateway="daraja")

    assert unknown.status_code == 404, unknown.text
    assert unknown.json()["error"]["code"] == "not_found"
    assert daraja.status_code == 422, daraja.text
    assert daraja.json()["error"]["code"] == "capability_not_supported"
    # Neither refusal used the payment up.
    assert redeem(api, merchant, invoice_id, "ORDER-OK").status_code == 200
