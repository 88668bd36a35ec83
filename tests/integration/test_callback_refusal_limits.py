"""A source that keeps sending refused callbacks costs nothing once out of budget.

No database read, no publish, no row: answered 429 from memory. A merchant the
process already knows still gets through from the same source, and a database
outage does not turn its callbacks into 503s.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import falcon.testing
import pytest
from sqlalchemy import event, text

from ingress.app import create_wsgi
from shared.db.session import Database
from shared.gateways.registry import GatewayRegistry
from shared.messages import APPLY_CALLBACK, Publisher, build_broker
from shared.settings import Settings
from tests.conftest import MerchantAccount
from tests.support.app import ingress_client
from tests.support.rabbit import Rabbit
from tests.support.seed import seed_submitted_payments, success_callback

JSON = {"Content-Type": "application/json"}
FLOODER = "203.0.113.50"


class CountedDatabase(Database):
    """This test's own engine, counting every statement the ingress sends."""

    def __init__(self, url: str) -> None:
        super().__init__(url, pool_size=2, application_name="malipo-refusal-limits")
        self.statements = 0
        event.listen(self.engine, "before_cursor_execute", self._count)

    def _count(self, *_: Any) -> None:
        self.statements += 1


@pytest.fixture
def counted_db(settings: Settings, db: Database) -> Iterator[CountedDatabase]:
    counted = CountedDatabase(settings.database_url.get_secret_value())
    yield counted
    counted.dispose()


def callback(client: falcon.testing.TestClient, secret: str, body: bytes, source: str) -> Any:
    return client.simulate_post(
        f"/callbacks/daraja/{secret}", body=body, headers={**JSON, "X-Forwarded-For": source}
    )


def junk() -> bytes:
    return b'{"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_%s", "ResultCode": 0}}}' % (
        uuid.uuid4().hex.encode()
    )


def test_a_source_out_of_refusals_is_answered_429_from_memory_and_known_merchants_pass(
    settings: Settings,
    db: Database,
    counted_db: CountedDatabase,
    merchant: MerchantAccount,
    rabbit: Rabbit,
) -> None:
    # Given an ingress allowing 5 refusals a minute per source; reports only every hour
    client = ingress_client(
        settings,
        counted_db,
        trusted_proxies="127.0.0.1/32",
        callback_refusals_per_source_per_min=5,
        callback_refusal_report_s=3600.0,
        callback_policy_cache_s=30.0,
    )
    [payment] = seed_submitted_payments(db, merchant.id, 1, tag=f"lim{uuid.uuid4().hex[:6]}")
    secret = str(merchant.callback_secret)
    # ... that has seen the merchant's callbacks work from this source
    first = callback(client, secret, success_callback(payment, "RLIMIT0001"), FLOODER)
    assert first.status_code == 200
    rabbit.take_all(APPLY_CALLBACK.queue_name)

    # When the source spends its budget on made-up secrets, then sends 200 more
    spent = [callback(client, uuid.uuid4().hex, junk(), FLOODER).status_code for _ in range(5)]
    assert spent == [404] * 5
    counted_db.statements = 0
    flood = [callback(client, uuid.uuid4().hex, junk(), FLOODER) for _ in range(200)]

    # Then each is a 429 that says when to come back, costing no statement and no message
    assert {answer.status_code for answer in flood} == {429}
    assert {answer.json["error"]["code"] for answer in flood} == {"rate_limited"}
    assert all(int(answer.headers["Retry-After"]) >= 1 for answer in flood)
    assert counted_db.statements == 0
    assert rabbit.take_all(APPLY_CALLBACK.queue_name) == []

    # And the known merchant's callback from the same source is still accepted
    again = callback(client, secret, success_callback(payment, "RLIMIT0001"), FLOODER)
    assert again.status_code == 200
    [message] = rabbit.take_all(APPLY_CALLBACK.queue_name)
    assert message["actor_name"] == "apply_callback"
    # ... and another source is not held by this one's budget
    assert callback(client, uuid.uuid4().hex, junk(), "198.51.100.77").status_code == 404


def test_a_flood_of_made_up_secrets_never_pushes_a_known_merchant_out_of_the_cache(
    settings: Settings, db: Database, merchant: MerchantAccount, rabbit: Rabbit
) -> None:
    # Given an ingress keeping 100 policies that knows the merchant, then takes 1,000
    # made-up secrets
    broken = Database(
        "postgresql+psycopg://postgres@127.0.0.1:1/none", pool_size=1, application_name="x"
    )
    client = ingress_client(
        settings,
        db,
        callback_refusal_report_s=3600.0,
        callback_policy_cache_s=0.0,
        callback_policy_cache_entries=100,
    )
    [payment] = seed_submitted_payments(db, merchant.id, 1, tag=f"evict{uuid.uuid4().hex[:6]}")
    secret = str(merchant.callback_secret)
    body = success_callback(payment, "REVICT0001")
    assert callback(client, secret, body, "127.0.0.1").status_code == 200
    for _ in range(1_000):
        assert callback(client, uuid.uuid4().hex, junk(), "127.0.0.1").status_code == 404
    rabbit.take_all(APPLY_CALLBACK.queue_name)

    # When the database goes away (every lookup now fails as unavailable)
    resource = client.app._router.find(f"/callbacks/daraja/{secret}")[0]
    resource.db = broken
    try:
        # Then the merchant's callback is still accepted from the cached policy
        answer = callback(client, secret, body, "127.0.0.1")
        assert answer.status_code == 200, answer.text
        assert len(rabbit.take_all(APPLY_CALLBACK.queue_name)) == 1
    finally:
        broken.dispose()


def test_the_front_answers_a_source_out_of_refusals_before_the_app_and_counts_it(
    settings: Settings,
    db: Database,
    counted_db: CountedDatabase,
    merchant: MerchantAccount,
    rabbit: Rabbit,
) -> None:
    # Given the ingress as gunicorn serves it (behind its front), 3 refusals a minute a source
    configured = settings.model_copy(
        update={
            "trusted_proxies": "127.0.0.1/32",
            "callback_refusals_per_source_per_min": 3,
            "callback_refusal_report_s": 3600.0,
            "callback_policy_cache_s": 30.0,
        }
    )
    front = create_wsgi(
        configured,
        db=counted_db,
        publisher=Publisher(build_broker(configured.broker_url.get_secret_value())),
        gateways=GatewayRegistry.from_settings(configured),
    )
    client = falcon.testing.TestClient(front)
    [payment] = seed_submitted_payments(db, merchant.id, 1, tag=f"front{uuid.uuid4().hex[:6]}")
    secret = str(merchant.callback_secret)
    body = success_callback(payment, "RFRONT0001")
    assert callback(client, secret, body, FLOODER).status_code == 200
    assert [callback(client, uuid.uuid4().hex, junk(), FLOODER).status_code for _ in range(3)] == [
        404
    ] * 3
    counted_db.statements = 0
    front.callbacks.refusals.take()

    # When the source goes on
    flood = [callback(client, uuid.uuid4().hex, junk(), FLOODER) for _ in range(100)]

    # Then the front answers each: 429, a catalogue error, when to come back; nothing asked
    assert {(a.status_code, a.json["error"]["code"]) for a in flood} == {(429, "rate_limited")}
    assert all(int(a.headers["Retry-After"]) >= 1 for a in flood)
    assert counted_db.statements == 0
    # ... each counted as a rate_limited refusal of that source
    [bucket] = front.callbacks.refusals.take()
    assert (bucket["source"], bucket["reason"], bucket["count"]) == (FLOODER, "rate_limited", 100)
    # ... while the known merchant's callback goes through to the app and is enqueued
    rabbit.take_all(APPLY_CALLBACK.queue_name)
    assert callback(client, secret, body, FLOODER).status_code == 200
    assert len(rabbit.take_all(APPLY_CALLBACK.queue_name)) == 1
    # ... and an unknown gateway segment is the app's bare 404, not the front's business
    stranger = client.simulate_post("/callbacks/nosuchpay/x", headers={"X-Forwarded-For": FLOODER})
    assert stranger.status_code == 404


def test_a_gateway_disabled_by_hand_in_sql_is_refused_within_a_refresh(
    settings: Settings, db: Database, merchant: MerchantAccount, rabbit: Rabbit
) -> None:
    # Given an ingress that knows the merchant
    client = ingress_client(settings, db, callback_policy_cache_s=0.0)
    [payment] = seed_submitted_payments(db, merchant.id, 1, tag=f"sql{uuid.uuid4().hex[:6]}")
    secret, body = str(merchant.callback_secret), success_callback(payment, "RSQL000001")
    assert callback(client, secret, body, "127.0.0.1").status_code == 200

    # When an operator switches the gateway off in psql, even naming an old updated_at
    touch = text(
        "UPDATE gateway_credentials SET enabled = :on, updated_at = now() - interval '1 day'"
        " WHERE merchant_id = :merchant"
    )
    with db.transaction() as session:
        session.execute(touch, {"on": False, "merchant": merchant.id})

    # Then the next callback is refused, and accepted again once it is back on
    assert callback(client, secret, body, "127.0.0.1").status_code == 404
    with db.transaction() as session:
        session.execute(touch, {"on": True, "merchant": merchant.id})
    assert callback(client, secret, body, "127.0.0.1").status_code == 200
    rabbit.take_all(APPLY_CALLBACK.queue_name)
