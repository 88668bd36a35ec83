"""The ingress against the real PostgreSQL and RabbitMQ (no workers consume here)."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from typing import Any

import falcon.testing
import pytest

from ingress.app import create_app
from shared.crypto import payment_id_for
from shared.db.session import Database
from shared.gateways.registry import GatewayRegistry
from shared.messages import APPLY_CALLBACK, INITIATE_PAYMENT, Publisher, build_broker
from shared.settings import Settings
from tests.conftest import MerchantAccount, make_merchant
from tests.support.rabbit import Rabbit

UNREACHABLE_BROKER = "amqp://guest:guest@127.0.0.1:1/%2F"


@pytest.fixture
def client(
    rabbit: Rabbit, settings: Settings, db: Database, broker: Any
) -> Iterator[falcon.testing.TestClient]:
    publisher = Publisher(build_broker(settings.broker_url.get_secret_value()))
    app = create_app(
        settings, db=db, publisher=publisher, gateways=GatewayRegistry.from_settings(settings)
    )
    yield falcon.testing.TestClient(app)
    publisher.close()
    for spec in (INITIATE_PAYMENT, APPLY_CALLBACK):  # nobody consumes here: leave nothing behind
        rabbit.purge(spec.queue_name)


def payment_body(**overrides: Any) -> dict[str, Any]:
    return {
        "amount": 1000,
        "currency": "KES",
        "phone": "0712345678",
        "reference": "INV-1",
        **overrides,
    }


def post_payment(
    client: falcon.testing.TestClient,
    merchant: MerchantAccount,
    body: Any,
    key: str | None = "k-1",
    **kw: Any,
) -> Any:
    return client.simulate_post("/v1/payments", json=body, headers=merchant.headers(key), **kw)


def test_an_accepted_payment_is_confirmed_by_rabbitmq_before_202(
    rabbit: Rabbit, client: falcon.testing.TestClient, merchant: MerchantAccount, broker: Any
) -> None:
    response = post_payment(
        client, merchant, payment_body(phone="+254 712-345-678", description="Shoes")
    )

    expected_id = str(payment_id_for(merchant.id, "k-1"))
    assert response.status_code == 202
    assert response.json == {"id": expected_id, "status": "accepted"}
    assert response.headers["Location"] == f"/v1/payments/{expected_id}"
    [message] = rabbit.take_all(INITIATE_PAYMENT.queue_name)
    assert message["actor_name"] == "initiate_payment"
    assert message["kwargs"]["request"] == {
        "amount": 1000,
        "currency": "KES",
        "phone": "254712345678",
        "reference": "INV-1",
        "description": "Shoes",
        "gateway": "daraja",
        "flow": "push",
        "customer_email": None,
    }
    assert message["options"]["request_id"] == response.headers["X-Request-ID"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (payment_body(phone="0202345678"), 422, "invalid_phone"),
        (payment_body(phone="+255712345678"), 422, "invalid_phone"),
        (payment_body(phone=712345678), 422, "invalid_phone"),
        (payment_body(amount=0), 422, "invalid_amount"),
        (payment_body(amount=-100), 422, "invalid_amount"),
        (payment_body(amount=10.5), 422, "invalid_amount"),
        (payment_body(amount="1000"), 422, "invalid_amount"),
        (payment_body(amount=True), 422, "invalid_amount"),
        (payment_body(amount=1050), 422, "invalid_amount"),
        (payment_body(amount=25_000_100), 422, "amount_out_of_range"),
        (payment_body(currency="USD"), 422, "invalid_currency"),
        (payment_body(reference=""), 422, "invalid_reference"),
        (payment_body(reference="x" * 65), 422, "invalid_reference"),
        (payment_body(gateway="paypal"), 422, "unsupported_gateway"),
        (payment_body(ammount=1), 400, "invalid_request"),
        ({"amount": 100, "currency": "KES", "phone": "0712345678"}, 400, "invalid_request"),
        ([1, 2, 3], 400, "invalid_json"),
    ],
)
def test_bad_input_is_refused_with_its_code_and_nothing_is_queued(
    rabbit: Rabbit,
    client: falcon.testing.TestClient,
    merchant: MerchantAccount,
    broker: Any,
    body: Any,
    status: int,
    code: str,
) -> None:
    response = post_payment(client, merchant, body)

    assert response.status_code == status
    assert response.json["error"]["code"] == code
    assert response.json["error"]["message"]
    assert rabbit.take_all(INITIATE_PAYMENT.queue_name) == []


def test_malformed_json_wrong_type_and_oversized_bodies_are_refused(
    client: falcon.testing.TestClient, merchant: MerchantAccount
) -> None:
    headers = merchant.headers("k-raw")
    not_json = client.simulate_post(
        "/v1/payments", body=b"{nope", headers={**headers, "Content-Type": "application/json"}
    )
    form = client.simulate_post(
        "/v1/payments",
        body=b"a=1",
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    huge = client.simulate_post(
        "/v1/payments",
        body=b"{" + b" " * 20_000 + b"}",
        headers={**headers, "Content-Type": "application/json"},
    )

    assert (not_json.status_code, not_json.json["error"]["code"]) == (400, "invalid_json")
    assert (form.status_code, form.json["error"]["code"]) == (415, "unsupported_media_type")
    assert (huge.status_code, huge.json["error"]["code"]) == (413, "payload_too_large")


def test_commands_need_a_valid_key_and_an_idempotency_key(
    client: falcon.testing.TestClient, merchant: MerchantAccount
) -> None:
    no_auth = client.simulate_post(
        "/v1/payments", json=payment_body(), headers={"Idempotency-Key": "k"}
    )
    bad_key = client.simulate_post(
        "/v1/payments",
        json=payment_body(),
        headers={"Authorization": "Bearer mlp_000000000000_nope", "Idempotency-Key": "k"},
    )
    no_idempotency = post_payment(client, merchant, payment_body(), key=None)

    assert (no_auth.status_code, no_auth.json["error"]["code"]) == (401, "unauthorized")
    assert (bad_key.status_code, bad_key.json["error"]["code"]) == (401, "unauthorized")
    assert (no_idempotency.status_code, no_idempotency.json["error"]["code"]) == (
        400,
        "missing_idempotency_key",
    )


def test_a_merchant_without_daraja_credentials_is_told_so(
    client: falcon.testing.TestClient, db: Database, settings: Settings, cipher: Any
) -> None:
    bare = make_merchant(db, settings, cipher, daraja=None)

    named = post_payment(client, bare, {**payment_body(), "gateway": "daraja"})
    routed = post_payment(client, bare, payment_body())

    assert (named.status_code, named.json["error"]["code"]) == (422, "gateway_not_configured")
    # Naming no gateway, the merchant's routes decide: it routes nothing for KES.
    assert (routed.status_code, routed.json["error"]["code"]) == (422, "currency_not_supported")


def test_rabbitmq_unreachable_answers_503_with_retry_after(
    settings: Settings, db: Database, merchant: MerchantAccount
) -> None:
    dead = Publisher(build_broker(UNREACHABLE_BROKER))
    app = create_app(
        settings, db=db, publisher=dead, gateways=GatewayRegistry.from_settings(settings)
    )

    response = post_payment(falcon.testing.TestClient(app), merchant, payment_body())

    assert response.status_code == 503
    assert response.json["error"]["code"] == "service_unavailable"
    assert int(response.headers["Retry-After"]) > 0


def test_readiness_reports_a_dead_broker(settings: Settings, db: Database) -> None:
    live = falcon.testing.TestClient(
        create_app(
            settings,
            db=db,
            publisher=Publisher(build_broker(settings.broker_url.get_secret_value())),
            gateways=GatewayRegistry.from_settings(settings),
        )
    )
    dead = falcon.testing.TestClient(
        create_app(
            settings,
            db=db,
            publisher=Publisher(build_broker(UNREACHABLE_BROKER)),
            gateways=GatewayRegistry.from_settings(settings),
        )
    )

    assert live.simulate_get("/readyz").status_code == 200
    assert live.simulate_get("/healthz").json == {"status": "ok"}
    response = dead.simulate_get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["database"] == "ok"
    assert response.json["checks"]["broker"].startswith("down")


# ``daraja`` is what CallBackURLs say (Safaricom refuses ``mpesa`` in them); ``mpesa`` stays.
@pytest.mark.parametrize("segment", ["daraja", "mpesa"])
def test_a_callback_with_the_right_secret_is_queued_raw_and_acknowledged(
    rabbit: Rabbit,
    client: falcon.testing.TestClient,
    merchant: MerchantAccount,
    broker: Any,
    segment: str,
) -> None:
    body = b'{"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_1", "ResultCode": 1032}}}'

    response = client.simulate_post(
        f"/callbacks/{segment}/{merchant.callback_secret}/{uuid.uuid4()}",
        body=body,
        headers={"Content-Type": "application/json;charset=UTF-8", "Authorization": "never-kept"},
    )

    assert response.status_code == 200
    assert response.json == {"ResultCode": 0, "ResultDesc": "Accepted"}
    [message] = rabbit.take_all(APPLY_CALLBACK.queue_name)
    assert base64.b64decode(message["kwargs"]["body_b64"]) == body
    assert message["kwargs"]["merchant_id"] == str(merchant.id)
    assert "authorization" not in message["kwargs"]["headers"]
    assert message["kwargs"]["gateway"] == "daraja"


@pytest.mark.parametrize(
    "path",
    ["/callbacks/mpesa/{wrong}", "/callbacks/mpesa/{wrong}/x", "/callbacks/nosuchpay/{right}"],
)
def test_a_wrong_callback_secret_is_404_without_detail_and_nothing_is_applied(
    rabbit: Rabbit,
    client: falcon.testing.TestClient,
    merchant: MerchantAccount,
    broker: Any,
    path: str,
) -> None:
    wrong = (merchant.callback_secret or "")[:-1] + (
        "A" if not (merchant.callback_secret or "").endswith("A") else "B"
    )

    response = client.simulate_post(
        path.format(wrong=wrong, right=merchant.callback_secret),
        body=b"{}",
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 404
    assert "secret" not in response.text.lower()
    # A refused callback to a known gateway is counted for operators, never applied: the
    # ingress reports its counts a moment later, one message for many refusals.
    deadline = time.monotonic() + 3
    actors: list[str] = []
    while time.monotonic() < deadline and not actors:
        time.sleep(0.2)
        actors += [m["actor_name"] for m in rabbit.take_all(APPLY_CALLBACK.queue_name)]
    assert "apply_callback" not in actors
    assert actors == ([] if "nosuchpay" in path else ["count_refused_callbacks"])


def test_a_merchant_sees_only_its_own_payments(
    client: falcon.testing.TestClient,
    merchant: MerchantAccount,
    db: Database,
    settings: Settings,
    cipher: Any,
) -> None:
    other = make_merchant(db, settings, cipher, daraja=None)
    payment_id = str(payment_id_for(merchant.id, "k-mine"))
    _create_intent(db, merchant, payment_id)

    mine = client.simulate_get(f"/v1/payments/{payment_id}", headers=merchant.headers())
    theirs = client.simulate_get(f"/v1/payments/{payment_id}", headers=other.headers())
    garbage = client.simulate_get("/v1/payments/not-a-uuid", headers=merchant.headers())

    assert mine.status_code == 200
    assert mine.json["status"] == "created"
    assert mine.json["phone"] == "2547****5678"
    assert (theirs.status_code, theirs.json["error"]["code"]) == (404, "not_found")
    assert garbage.status_code == 404


def test_wait_must_be_within_bounds(
    client: falcon.testing.TestClient, merchant: MerchantAccount
) -> None:
    response = client.simulate_get(
        f"/v1/payments/{uuid.uuid4()}", params={"wait": "31"}, headers=merchant.headers()
    )

    assert (response.status_code, response.json["error"]["code"]) == (400, "invalid_request")


def _create_intent(
    db: Database, merchant: MerchantAccount, payment_id: str, key: str = "k-mine"
) -> None:
    from datetime import UTC, datetime

    from shared.db.models import PaymentIntent

    with db.transaction() as session:
        session.add(
            PaymentIntent(
                id=uuid.UUID(payment_id),
                merchant_id=merchant.id,
                idempotency_key=key,
                request_hash="h",
                gateway="daraja",
                amount_minor=100,
                currency="KES",
                phone="254712345678",
                reference=f"R-{key}",
                status="created",
                accepted_at=datetime.now(UTC),
            )
        )


def test_wait_holds_the_answer_until_the_status_changes_or_is_final(
    client: falcon.testing.TestClient, merchant: MerchantAccount, db: Database
) -> None:
    import threading

    from shared.db.models import PaymentIntent

    payment_id = str(payment_id_for(merchant.id, "k-wait"))
    _create_intent(db, merchant, payment_id, key="k-wait")

    def move(status: str) -> None:
        with db.transaction() as session:
            session.get(PaymentIntent, uuid.UUID(payment_id)).status = status  # type: ignore[union-attr]

    threading.Timer(0.5, move, args=("submitted",)).start()
    changed = client.simulate_get(
        f"/v1/payments/{payment_id}", params={"wait": "10"}, headers=merchant.headers()
    )
    threading.Timer(0.5, move, args=("succeeded",)).start()
    final = client.simulate_get(
        f"/v1/payments/{payment_id}",
        params={"wait": "10", "until": "final"},
        headers=merchant.headers(),
    )
    bad = client.simulate_get(
        f"/v1/payments/{payment_id}", params={"until": "soon"}, headers=merchant.headers()
    )

    assert changed.json["status"] == "submitted"
    assert final.json["status"] == "succeeded"
    assert (bad.status_code, bad.json["error"]["code"]) == (400, "invalid_request")


@pytest.mark.parametrize(
    ("extra", "status", "code"),
    [
        ({"gateway": "daraja", "flow": "hosted"}, 422, "capability_not_supported"),
        ({"flow": "hosted"}, 422, "capability_not_supported"),  # the route chose Daraja
        ({"flow": "teleport"}, 400, "invalid_request"),
        ({"gateway": "daraja", "currency": "XOF"}, 422, "invalid_currency"),
        ({"currency": "ZZZ"}, 422, "invalid_currency"),
        ({"gateway": "nosuchpay"}, 422, "unsupported_gateway"),
        ({"success_url": "javascript:alert(1)"}, 400, "invalid_request"),
        ({"amount": 1050}, 422, "invalid_amount"),  # the route chose Daraja: whole shillings
    ],
)
def test_what_the_chosen_gateway_cannot_do_is_refused_with_a_catalogue_code(
    client: falcon.testing.TestClient,
    merchant: MerchantAccount,
    rabbit: Rabbit,
    extra: dict[str, Any],
    status: int,
    code: str,
) -> None:
    response = post_payment(client, merchant, {**payment_body(), **extra})

    assert (response.status_code, response.json["error"]["code"]) == (status, code)
    assert rabbit.take_all(INITIATE_PAYMENT.queue_name) == []
