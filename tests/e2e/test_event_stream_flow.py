"""A payment's end reaches a service bound to ``malipo.events`` with the webhook's id and body."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from sqlalchemy import select

from shared.bus import EVENTS_EXCHANGE, Event, consume_events
from shared.db.models import WebhookEvent
from shared.db.session import Database
from shared.webhooks import event_body
from tests.conftest import TEST_ENV, ApiClient, MerchantAccount
from tests.e2e.test_payment_flow import start_payment
from tests.support.payments import final_view
from tests.support.rabbit import Rabbit
from tests.support.sim import Simulator

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker", "ingress_server")]


def test_a_service_bound_to_its_merchants_payment_events_receives_each_end_once(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator, db: Database, rabbit: Rabbit
) -> None:
    queue = f"test.order-service.{uuid.uuid4().hex[:8]}"
    binding = f"payment.*.{merchant.id}"
    with rabbit.channel() as channel:
        channel.exchange_declare(EVENTS_EXCHANGE, exchange_type="topic", durable=True)
        channel.queue_declare(queue, durable=True)
        channel.queue_bind(queue, EVENTS_EXCHANGE, routing_key=binding)
    try:
        paid = start_payment(api, merchant, amount=700)
        declined = start_payment(api, merchant, phone="254700000001")
        views = {
            paid: final_view(api, merchant, paid),
            declined: final_view(api, merchant, declined),
        }
        got: list[Event] = []
        done = threading.Event()
        timer = threading.Timer(30, done.set)
        timer.start()

        def handle(event: Event) -> None:
            got.append(event)
            if len(got) == 2:
                done.set()

        consume_events(
            TEST_ENV["MALIPO_BROKER_URL"],
            queue,
            [binding],
            handle,
            should_stop=done.is_set,
            idle_s=0.2,
        )
        timer.cancel()
    finally:
        with rabbit.channel() as channel:
            channel.queue_delete(queue)

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
        row = rows[event.data["id"]]
        assert event.event_id == row.webhook_id
        assert json.loads(event_body(row.payload)) == {
            "type": event.event_type,
            "timestamp": event.timestamp,
            "data": event.data,
        }
        assert event.routing_key == f"{event.event_type}.{merchant.id}"
    assert views[paid]["receipt"] == next(e for e in got if e.data["id"] == paid).data["receipt"]
