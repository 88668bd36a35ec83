"""Payments and refunds end, and a service bound to ``malipo.events`` hears it as promised."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select

from shared.crypto import CredentialCipher
from shared.db.models import WebhookEvent
from shared.db.session import Database
from shared.settings import Settings
from shared.webhooks import event_body
from tests.conftest import TEST_ENV, ApiClient, MerchantAccount, make_merchant
from tests.e2e.test_money_out import collect, money_out_credentials
from tests.e2e.test_payment_flow import start_payment
from tests.support.bus import bound_queue, check_event, receive
from tests.support.money_out import final_transfer, new_key, request_refund
from tests.support.payments import final_view
from tests.support.rabbit import Rabbit
from tests.support.sim import Simulator

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker", "ingress_server")]
BROKER_URL = TEST_ENV["MALIPO_BROKER_URL"]


def test_a_service_bound_to_its_merchants_payment_events_receives_each_end(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator, db: Database, rabbit: Rabbit
) -> None:
    binding = f"payment.*.{merchant.id}"
    with bound_queue(rabbit, binding) as queue:
        paid = start_payment(api, merchant, amount=700)
        declined = start_payment(api, merchant, phone="254700000001")
        views = {p: final_view(api, merchant, p) for p in (paid, declined)}
        got = receive(BROKER_URL, queue, [binding], count=2)

    assert {e.data["id"]: (e.event_type, e.data["status"]) for e in got} == {
        paid: ("payment.succeeded", "succeeded"),
        declined: ("payment.failed", "failed"),
    }
    with db.transaction() as session:
        rows = {
            str(r.payment_id): r
            for r in session.scalars(
                select(WebhookEvent).where(
                    WebhookEvent.payment_id.in_([uuid.UUID(paid), uuid.UUID(declined)])
                )
            )
        }
    for event in got:
        check_event(event)
        row = rows[event.data["id"]]
        assert event.event_id == row.webhook_id
        assert json.loads(event_body(row.payload)) == {
            "type": event.event_type,
            "timestamp": event.timestamp,
            "data": event.data,
        }
        assert event.routing_key == f"{event.event_type}.{merchant.id}"
        assert event.data["status"] == views[event.data["id"]]["status"]


def test_a_refund_s_event_follows_its_payment_s_and_both_keep_the_contract(
    api: ApiClient,
    sim: Simulator,
    db: Database,
    rabbit: Rabbit,
    settings: Settings,
    cipher: CredentialCipher,
) -> None:
    merchant = make_merchant(db, settings, cipher, daraja=money_out_credentials())
    binding = f"#.{merchant.id}"
    with bound_queue(rabbit, binding) as queue:
        payment_id = collect(api, merchant, 900, "254712345678")
        key = new_key(db, settings, merchant.id)
        answer = request_refund(api, key, payment_id, amount=400)
        assert answer.status_code == 202, answer.text
        refund = final_transfer(api, key, "refund", answer.json()["id"])
        assert refund["status"] == "succeeded"
        got = receive(BROKER_URL, queue, [binding], count=2)

    assert [e.event_type for e in got] == ["payment.succeeded", "refund.succeeded"]
    assert got[1].data["payment_id"] == payment_id
    assert got[1].data["amount"] == 400
    for event in got:
        check_event(event)
