"""Rate limits, pre-flight refusals, request limits and use-once redemption, at the ingress."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.db.models import Merchant, PaymentIntent
from shared.db.session import Database
from shared.merchants import set_callback_policy
from shared.settings import Settings
from tests.conftest import MerchantAccount
from tests.support.app import ingress_client
from tests.support.rabbit import Rabbit
from tests.support.seed import seed_submitted_payments


@pytest.fixture(autouse=True)
def _empty_queues(rabbit: Rabbit, broker: Any) -> Any:
    yield
    rabbit.purge("payments")  # nobody consumes here


def payment(phone: str = "0712345678", reference: str | None = None) -> dict[str, Any]:
    return {
        "amount": 100,
        "currency": "KES",
        "phone": phone,
        "reference": reference or uuid.uuid4().hex[:10],
    }


def test_a_merchant_over_its_command_rate_gets_429_with_retry_after(
    settings: Settings, db: Database, merchant: MerchantAccount
) -> None:
    client = ingress_client(settings, db, merchant_commands_per_minute=2)

    answers = [
        client.simulate_post(
            "/v1/payments", json=payment(f"07120000{i:02d}"), headers=merchant.headers(f"k{i}")
        )
        for i in range(3)
    ]

    assert [a.status_code for a in answers] == [202, 202, 429]
    assert answers[2].json["error"]["code"] == "rate_limited"
    assert 1 <= int(answers[2].headers["Retry-After"]) <= 60


def test_a_phone_is_limited_per_merchant_under_a_ceiling_for_all_merchants(
    settings: Settings, db: Database, merchant: MerchantAccount, cipher: Any
) -> None:
    from tests.conftest import DARAJA_CREDENTIALS, make_merchant

    other = make_merchant(db, settings, cipher, daraja=dict(DARAJA_CREDENTIALS))
    client = ingress_client(
        settings, db, phone_push_limit=2, phone_push_global_limit=3, phone_push_window_s=120
    )
    phone = f"0713{uuid.uuid4().int % 10**6:06d}"

    def ask(account: MerchantAccount, key: str) -> Any:
        return client.simulate_post(
            "/v1/payments", json=payment(phone), headers=account.headers(key)
        )

    answers = [ask(merchant, "a"), ask(merchant, "b"), ask(merchant, "c"), ask(other, "d")]
    ceiling = ask(other, "e")

    # The merchant's own limit stops its third prompt; another merchant may still ask,
    # until all of them together reach the phone's ceiling.
    assert [a.status_code for a in answers] == [202, 202, 429, 202]
    assert ceiling.status_code == 429
    assert ceiling.json["error"]["code"] == "rate_limited"
    assert 1 <= int(ceiling.headers["Retry-After"]) <= 120


@pytest.mark.parametrize(
    ("arrange", "code"),
    [
        ("disable_gateway", "gateway_disabled"),
        ("mark_kyc", "kyc_required"),
        ("require_registration", "account_missing"),
    ],
)
def test_pre_flight_refusals_are_synchronous_with_precise_codes(
    settings: Settings, db: Database, merchant: MerchantAccount, arrange: str, code: str
) -> None:
    client = ingress_client(settings, db)
    if arrange == "disable_gateway":
        with db.transaction() as session:
            set_callback_policy(session, merchant.id, "daraja", enabled=False)
    elif arrange == "mark_kyc":
        marked = client.simulate_put(
            "/v1/customers/0712345678", json={"kyc_required": True}, headers=merchant.headers()
        )
        assert marked.json == {"phone": "2547****5678", "kyc_required": True}
    else:
        with db.transaction() as session:
            session.get(Merchant, merchant.id).require_registered_customers = True  # type: ignore[union-attr]

    refused = client.simulate_post(
        "/v1/payments", json=payment("+254712345678"), headers=merchant.headers("k")
    )

    assert (refused.status_code, refused.json["error"]["code"]) == (422, code)


def test_a_registered_customer_without_kyc_may_pay_when_registration_is_required(
    settings: Settings, db: Database, merchant: MerchantAccount
) -> None:
    client = ingress_client(settings, db)
    with db.transaction() as session:
        session.get(Merchant, merchant.id).require_registered_customers = True  # type: ignore[union-attr]
    client.simulate_put(
        "/v1/customers/0712345678", json={"kyc_required": False}, headers=merchant.headers()
    )

    accepted = client.simulate_post(
        "/v1/payments", json=payment("0712345678"), headers=merchant.headers("k")
    )

    assert accepted.status_code == 202


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b'{"a": ' * 12 + b"1" + b"}" * 12, {}, 400, "invalid_json"),
        ('{"amount": 100}'.encode("utf-16"), {}, 400, "invalid_json"),
        (
            b"{}",
            {"Content-Type": "application/json; charset=latin-1"},
            415,
            "unsupported_media_type",
        ),
        (b"{}", {"X-Padding": "x" * 9000}, 431, "headers_too_large"),
        (b"{}", {f"X-H{i}": "1" for i in range(70)}, 431, "headers_too_large"),
    ],
)
def test_request_limits_are_4xx_with_a_code(
    settings: Settings,
    db: Database,
    merchant: MerchantAccount,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    client = ingress_client(settings, db)

    response = client.simulate_post(
        "/v1/payments",
        body=body,
        headers={"Content-Type": "application/json", **merchant.headers("k"), **headers},
    )

    assert (response.status_code, response.json["error"]["code"]) == (status, code)


def test_a_very_long_uri_is_414(
    settings: Settings, db: Database, merchant: MerchantAccount
) -> None:
    response = ingress_client(settings, db).simulate_get(
        "/v1/payments/" + "a" * 5000, headers=merchant.headers()
    )

    assert (response.status_code, response.json["error"]["code"]) == (414, "uri_too_long")


# -- redemption ------------------------------------------------------------------------------


def succeeded_payment(
    db: Database,
    merchant: MerchantAccount,
    *,
    amount: int = 1000,
    age: timedelta = timedelta(0),
    status: str = "succeeded",
) -> str:
    [seeded] = seed_submitted_payments(db, merchant.id, 1, tag=f"r{uuid.uuid4().hex[:8]}")
    with db.transaction() as session:
        intent = session.get(PaymentIntent, seeded.id)
        assert intent is not None
        intent.status, intent.amount_minor = status, amount
        intent.finished_at = datetime.now(UTC) - age
    return str(seeded.id)


def redeem(
    client: Any, merchant: MerchantAccount, payment_id: str, order: str, amount: int = 1000
) -> Any:
    return client.simulate_post(
        f"/v1/payments/{payment_id}/redeem",
        json={"order_id": order, "expected_amount": amount},
        headers=merchant.headers(),
    )


def test_a_payment_redeems_once_and_reuse_names_the_first_order(
    settings: Settings, db: Database, merchant: MerchantAccount
) -> None:
    client = ingress_client(settings, db)
    payment_id = succeeded_payment(db, merchant)

    first = redeem(client, merchant, payment_id, "ORDER-1")
    again = redeem(client, merchant, payment_id, "ORDER-1")
    reuse = redeem(client, merchant, payment_id, "ORDER-2")

    assert first.status_code == again.status_code == 200
    assert first.json == again.json
    assert first.json["order_id"] == "ORDER-1"
    assert reuse.status_code == 409
    assert reuse.json["error"]["code"] == "already_redeemed"
    assert reuse.json["error"]["order_id"] == "ORDER-1"


@pytest.mark.parametrize(
    ("status", "age_days", "amount", "http", "code"),
    [
        ("failed", 0, 1000, 409, "payment_not_redeemable"),
        ("expired", 0, 1000, 409, "payment_not_redeemable"),
        ("succeeded", 8, 1000, 410, "redemption_expired"),
        ("succeeded", 0, 900, 422, "amount_mismatch"),
    ],
)
def test_a_payment_that_cannot_pay_for_the_order_is_refused_with_the_reason(
    settings: Settings,
    db: Database,
    merchant: MerchantAccount,
    status: str,
    age_days: int,
    amount: int,
    http: int,
    code: str,
) -> None:
    client = ingress_client(settings, db)
    payment_id = succeeded_payment(db, merchant, status=status, age=timedelta(days=age_days))

    refused = redeem(client, merchant, payment_id, "ORDER-X", amount=amount)

    assert (refused.status_code, refused.json["error"]["code"]) == (http, code)


def test_the_fee_tolerance_is_configurable(
    settings: Settings, db: Database, merchant: MerchantAccount
) -> None:
    client = ingress_client(settings, db, redeem_tolerance_minor=100)
    payment_id = succeeded_payment(db, merchant, amount=1000)

    assert redeem(client, merchant, payment_id, "ORDER-F", amount=1100).status_code == 200


def test_ten_orders_racing_for_one_payment_redeem_it_exactly_once(
    settings: Settings, db: Database, merchant: MerchantAccount
) -> None:
    payment_id = succeeded_payment(db, merchant)
    answers: list[Any] = [None] * 10
    start = threading.Barrier(10)

    def attempt(i: int) -> None:
        client = ingress_client(settings, db)
        start.wait()
        answers[i] = redeem(client, merchant, payment_id, f"ORDER-{i}")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winners = [a for a in answers if a.status_code == 200]
    losers = [a for a in answers if a.status_code == 409]
    assert len(winners) == 1
    assert len(losers) == 9
    assert {a.json["error"]["order_id"] for a in losers} == {winners[0].json["order_id"]}


def test_another_merchants_payment_cannot_be_redeemed(
    settings: Settings, db: Database, merchant: MerchantAccount, cipher: Any
) -> None:
    from tests.conftest import make_merchant

    payment_id = succeeded_payment(db, merchant)
    other = make_merchant(db, settings, cipher, daraja=None)

    response = redeem(ingress_client(settings, db), other, payment_id, "ORDER-1")

    assert (response.status_code, response.json["error"]["code"]) == (404, "not_found")
