"""Merchant API keys over real HTTP to the ingress process: several per merchant, scopes, revoking.

Keys are issued by ``issue_api_key`` or by ``malipo merchant key ...``; every request
goes to the gunicorn ingress, which reads keys from PostgreSQL on each request. No
workers consume here, so whatever the ingress enqueues stays in RabbitMQ to be looked at.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result
from sqlalchemy import func, select, text

from shared.cli import main
from shared.crypto import PREFIX_LENGTH
from shared.db.models import ApiKey, GatewayEvent, WebhookEvent
from shared.db.session import Database
from shared.merchants import issue_api_key, revoke_api_key
from shared.messages import INITIATE_PAYMENT, NOTIFY_MERCHANT, RETRY_PAYMENT
from shared.settings import Settings
from tests.conftest import ApiClient, MerchantAccount, make_merchant
from tests.support.processes import ManagedProcess
from tests.support.rabbit import Rabbit
from tests.support.seed import seed_submitted_payments

pytestmark = pytest.mark.usefixtures("ingress_server")

# Where the ingress sends payment commands and forced webhook deliveries.
QUEUES = sorted({spec.queue_name for spec in (INITIATE_PAYMENT, RETRY_PAYMENT, NOTIFY_MERCHANT)})


@pytest.fixture(autouse=True)
def _empty_queues(rabbit: Rabbit) -> Iterator[None]:
    rabbit.purge(*QUEUES)
    yield
    rabbit.purge(*QUEUES)  # nobody consumes here


def pepper(settings: Settings) -> bytes:
    return settings.secret_key.get_secret_value().encode()


def new_key(
    db: Database,
    settings: Settings,
    merchant_id: uuid.UUID | None,
    *scopes: str,
    label: str | None = None,
) -> str:
    with db.transaction() as session:
        return issue_api_key(session, pepper(settings), merchant_id, tuple(scopes), label)


def bearer(key: str, idempotency_key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return headers


def payment_body() -> dict[str, Any]:
    return {
        "amount": 1000,
        "currency": "KES",
        "phone": "0712345678",
        "reference": f"INV-{uuid.uuid4().hex[:8]}",
    }


def pay(
    api: ApiClient,
    key: str,
    idempotency_key: str | None = None,
    body: dict[str, Any] | None = None,
) -> requests.Response:
    return api.post(
        "/v1/payments",
        json=body or payment_body(),
        headers=bearer(key, idempotency_key or uuid.uuid4().hex),
    )


def refusal(response: requests.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def queued(rabbit: Rabbit) -> dict[str, int]:
    return {queue: rabbit.count(queue) for queue in QUEUES}


NOTHING_QUEUED = dict.fromkeys(QUEUES, 0)


def a_payment(db: Database, merchant_id: uuid.UUID) -> uuid.UUID:
    [seeded] = seed_submitted_payments(db, merchant_id, 1, tag=f"keys-{uuid.uuid4().hex[:8]}")
    return seeded.id


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def cli_ok(*args: str) -> Result:
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return result


def key_row(db: Database, prefix: str) -> ApiKey:
    with db.transaction() as session:
        return session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).one()


def prefix_of(key: str) -> str:
    return key[:PREFIX_LENGTH]


# --- several keys -----------------------------------------------------------------------------


def test_a_merchant_holds_several_keys_at_once_and_each_one_works(
    api: ApiClient, rabbit: Rabbit, db: Database, settings: Settings, merchant: MerchantAccount
) -> None:
    # Given a merchant with its first key and two more, issued later
    keys = [
        merchant.api_key,
        new_key(db, settings, merchant.id, "payments:write", "payments:read", label="pos"),
        new_key(db, settings, merchant.id, "payments:write", "payments:read", label="web"),
    ]
    payment_id = a_payment(db, merchant.id)

    # When each key makes a payment and reads the merchant's payment
    made = [pay(api, key) for key in keys]
    read = [api.get(f"/v1/payments/{payment_id}", headers=bearer(key)) for key in keys]

    # Then every key is accepted, each acting for the same merchant
    assert [r.status_code for r in made] == [202, 202, 202]
    assert [r.status_code for r in read] == [200, 200, 200]
    assert {r.json()["id"] for r in read} == {str(payment_id)}
    messages = rabbit.take_all(INITIATE_PAYMENT.queue_name)
    assert sorted(m["kwargs"]["payment_id"] for m in messages) == sorted(
        r.json()["id"] for r in made
    )
    assert {m["kwargs"]["merchant_id"] for m in messages} == {str(merchant.id)}
    with db.transaction() as session:
        live = session.scalars(
            select(ApiKey).where(ApiKey.merchant_id == merchant.id, ApiKey.revoked_at.is_(None))
        ).all()
    assert len(live) == 3


def test_the_merchants_keys_share_its_idempotency_keys(
    api: ApiClient, db: Database, settings: Settings, merchant: MerchantAccount
) -> None:
    # Given a second key for the merchant
    second = new_key(db, settings, merchant.id, "payments:write")

    # When a command is sent with the first key, then retried with the second
    body = payment_body()
    first = pay(api, merchant.api_key, "order-1", body)
    retried = pay(api, second, "order-1", body)

    # Then both name the same payment: the payment belongs to the merchant, not to the key
    assert (first.status_code, retried.status_code) == (202, 202)
    assert first.json()["id"] == retried.json()["id"]


# --- scopes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/payments", payment_body()),
        ("POST", "/v1/payments/{payment_id}/retry", None),
        ("POST", "/v1/payments/{payment_id}/redeem", {"order_id": "o-1"}),
        ("PUT", "/v1/customers/0712345678", {"kyc_required": True}),
        ("DELETE", "/v1/customers/0712345678", None),
    ],
)
def test_a_key_without_payments_write_is_refused_403_and_nothing_is_queued(
    api: ApiClient,
    rabbit: Rabbit,
    db: Database,
    settings: Settings,
    merchant: MerchantAccount,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    # Given a key that may only read
    reader = new_key(db, settings, merchant.id, "payments:read")
    payment_id = a_payment(db, merchant.id)

    # When it tries to change something
    response = api.http.request(
        method,
        api.base_url + path.format(payment_id=payment_id),
        json=body,
        headers=bearer(reader, "k-reader"),
        timeout=40,
    )

    # Then it is refused for its scope, and nothing is queued
    assert refusal(response) == (403, "forbidden")
    assert "payments:write" in response.json()["error"]["message"]
    assert queued(rabbit) == NOTHING_QUEUED
    # ... while the merchant's full key may do the same
    assert pay(api, merchant.api_key).status_code == 202


def test_a_key_without_payments_read_cannot_read_payments_or_customers(
    api: ApiClient, db: Database, settings: Settings, merchant: MerchantAccount
) -> None:
    # Given a payment and a registered customer, and a key that may only write
    writer = new_key(db, settings, merchant.id, "payments:write")
    payment_id = a_payment(db, merchant.id)
    registered = api.http.put(
        f"{api.base_url}/v1/customers/0712345678",
        json={"kyc_required": False},
        headers=bearer(writer),
        timeout=40,
    )
    assert registered.status_code == 200

    # When it reads them
    payment = api.get(f"/v1/payments/{payment_id}", headers=bearer(writer))
    waited = api.get(f"/v1/payments/{payment_id}", params={"wait": "5"}, headers=bearer(writer))
    customer = api.get("/v1/customers/0712345678", headers=bearer(writer))

    # Then it is refused (at once, even when asked to wait), though it may still write
    assert refusal(payment) == (403, "forbidden")
    assert "payments:read" in payment.json()["error"]["message"]
    assert "status" not in payment.json()
    assert refusal(waited) == (403, "forbidden")
    assert waited.elapsed.total_seconds() < 4
    assert refusal(customer) == (403, "forbidden")
    assert pay(api, writer).status_code == 202
    # ... while the merchant's full key reads both
    assert api.get(f"/v1/payments/{payment_id}", headers=merchant.headers()).status_code == 200
    assert api.get("/v1/customers/0712345678", headers=merchant.headers()).status_code == 200


def _seed_ops_events(db: Database, merchant_id: uuid.UUID) -> tuple[int, int]:
    """One orphan gateway event and one held webhook event of the merchant: (ids)."""
    now = datetime.now(UTC)
    with db.transaction() as session:
        gateway_event = GatewayEvent(
            gateway="daraja",
            event_key=f"keys-{uuid.uuid4().hex}",
            source="callback",
            merchant_id=merchant_id,
            outcome="orphan",
            detail="seeded by test_api_keys",
            body_masked="{}",
            received_at=now,
        )
        webhook_event = WebhookEvent(
            webhook_id=f"msg_{uuid.uuid4().hex}",
            merchant_id=merchant_id,
            event_type="payment.succeeded",
            payload={"seeded": True},
            status="held",
            published_at=now,
        )
        session.add_all([gateway_event, webhook_event])
        session.flush()
        return gateway_event.id, webhook_event.id


OPS_REQUESTS = [
    ("GET", "/ops/events", None),
    ("GET", "/ops/webhooks", None),
    ("POST", "/ops/webhooks/{event_id}/resend", None),
    ("POST", "/ops/webhooks/replay", {"since": "2020-01-01T00:00:00Z"}),
    ("GET", "/ops/dead-letters", None),
]


@pytest.mark.parametrize(("method", "path", "body"), OPS_REQUESTS)
def test_a_merchant_key_without_ops_scopes_cannot_reach_ops(
    api: ApiClient,
    rabbit: Rabbit,
    db: Database,
    merchant: MerchantAccount,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    # Given the merchant's payments key, and a webhook event of its own
    _, event_id = _seed_ops_events(db, merchant.id)

    # When it asks an /ops endpoint
    response = api.http.request(
        method,
        api.base_url + path.format(event_id=event_id),
        json=body,
        headers=merchant.headers(),
        timeout=40,
    )

    # Then it is refused, and nothing is queued
    assert refusal(response) == (403, "forbidden")
    assert queued(rabbit) == NOTHING_QUEUED


def test_a_merchant_ops_read_key_sees_only_its_own_merchant_and_cannot_act(
    api: ApiClient,
    rabbit: Rabbit,
    db: Database,
    settings: Settings,
    cipher: Any,
    merchant: MerchantAccount,
) -> None:
    # Given ops events of this merchant and of another, and the merchant's ops:read key
    other = make_merchant(db, settings, cipher)
    mine_gateway, mine_webhook = _seed_ops_events(db, merchant.id)
    theirs_gateway, theirs_webhook = _seed_ops_events(db, other.id)
    reader = bearer(new_key(db, settings, merchant.id, "ops:read"))

    # When it reads and tries to act
    events = api.get("/ops/events", params={"limit": "500"}, headers=reader)
    webhooks = api.get("/ops/webhooks", params={"limit": "500"}, headers=reader)
    asked_for_other = api.get(
        "/ops/webhooks", params={"merchant_id": str(other.id)}, headers=reader
    )
    resend = api.post(f"/ops/webhooks/{mine_webhook}/resend", headers=reader)
    dead_letters = api.get("/ops/dead-letters", headers=reader)
    payment = pay(api, reader["Authorization"].removeprefix("Bearer "))

    # Then it sees its own merchant's events only, and may do nothing else
    assert events.status_code == 200
    seen = {e["id"] for e in events.json()["events"]}
    assert mine_gateway in seen
    assert theirs_gateway not in seen
    assert {e["merchant_id"] for e in events.json()["events"]} == {str(merchant.id)}
    assert webhooks.status_code == 200
    seen_webhooks = {e["id"] for e in webhooks.json()["events"]}
    assert mine_webhook in seen_webhooks
    assert theirs_webhook not in seen_webhooks
    assert refusal(asked_for_other) == (403, "forbidden")
    assert refusal(resend) == (403, "forbidden")
    assert refusal(dead_letters) == (403, "forbidden")  # platform operators only
    assert refusal(payment) == (403, "forbidden")
    assert queued(rabbit) == NOTHING_QUEUED


def test_a_merchant_ops_write_key_acts_only_on_its_own_webhook_events(
    api: ApiClient,
    rabbit: Rabbit,
    db: Database,
    settings: Settings,
    cipher: Any,
    merchant: MerchantAccount,
) -> None:
    # Given a webhook event of this merchant and one of another, and an ops:write merchant key
    other = make_merchant(db, settings, cipher)
    _, mine = _seed_ops_events(db, merchant.id)
    _, theirs = _seed_ops_events(db, other.id)
    writer = bearer(new_key(db, settings, merchant.id, "ops:read", "ops:write"))

    # When it resends both, and replays for the other merchant
    own = api.post(f"/ops/webhooks/{mine}/resend", headers=writer)
    foreign = api.post(f"/ops/webhooks/{theirs}/resend", headers=writer)
    foreign_replay = api.post(
        "/ops/webhooks/replay",
        json={"merchant_id": str(other.id), "since": "2020-01-01T00:00:00Z"},
        headers=writer,
    )

    # Then only its own event is queued; the other merchant's is not even admitted to exist
    assert own.status_code == 202
    assert own.json()["id"] == mine
    assert refusal(foreign) == (404, "not_found")
    assert refusal(foreign_replay) == (403, "forbidden")
    [message] = rabbit.take_all(NOTIFY_MERCHANT.queue_name)
    assert message["kwargs"]["event_id"] == mine


def test_an_operator_key_reaches_ops_for_every_merchant_but_cannot_act_for_a_merchant(
    api: ApiClient,
    rabbit: Rabbit,
    db: Database,
    settings: Settings,
    cipher: Any,
    merchant: MerchantAccount,
) -> None:
    # Given events of two merchants and a platform operator's key (no merchant)
    other = make_merchant(db, settings, cipher)
    mine, _ = _seed_ops_events(db, merchant.id)
    theirs, _ = _seed_ops_events(db, other.id)
    operator = bearer(new_key(db, settings, None, "ops:read", "ops:write"))
    payment_id = a_payment(db, merchant.id)

    # When it reads /ops and tries the merchant API
    events = api.get("/ops/events", params={"limit": "500"}, headers=operator)
    dead_letters = api.get("/ops/dead-letters", headers=operator)
    paid = api.post(
        "/v1/payments", json=payment_body(), headers={**operator, "Idempotency-Key": "o"}
    )
    read = api.get(f"/v1/payments/{payment_id}", headers=operator)

    # Then it sees every merchant's events, and the merchant API refuses it
    assert events.status_code == 200
    assert {mine, theirs} <= {e["id"] for e in events.json()["events"]}
    assert dead_letters.status_code == 200
    assert refusal(paid) == (403, "forbidden")
    assert refusal(read) == (403, "forbidden")
    assert queued(rabbit) == NOTHING_QUEUED


def test_operator_keys_carry_ops_scopes_only(db: Database, settings: Settings) -> None:
    with pytest.raises(ValueError, match="operator key carries ops scopes only"):
        new_key(db, settings, None, "payments:write")
    with pytest.raises(ValueError, match="scopes must be among"):
        new_key(db, settings, uuid.uuid4(), "payments:admin")


# --- revocation -------------------------------------------------------------------------------


def test_a_revoked_key_is_refused_at_once_and_the_merchants_other_keys_keep_working(
    api: ApiClient, rabbit: Rabbit, db: Database, settings: Settings, merchant: MerchantAccount
) -> None:
    # Given a second key that is in use
    second = new_key(db, settings, merchant.id, "payments:write", "payments:read")
    payment_id = a_payment(db, merchant.id)
    assert pay(api, second).status_code == 202
    assert api.get(f"/v1/payments/{payment_id}", headers=bearer(second)).status_code == 200
    rabbit.purge(INITIATE_PAYMENT.queue_name)

    # When it is revoked
    with db.transaction() as session:
        assert revoke_api_key(session, prefix_of(second))

    # Then its very next requests are refused as unauthenticated, and nothing is queued
    assert refusal(pay(api, second)) == (401, "unauthorized")
    revoked_read = api.get(f"/v1/payments/{payment_id}", headers=bearer(second))
    assert refusal(revoked_read) == (401, "unauthorized")
    assert "status" not in revoked_read.json()
    assert rabbit.count(INITIATE_PAYMENT.queue_name) == 0
    # ... while the merchant's first key works as before
    assert pay(api, merchant.api_key).status_code == 202
    assert api.get(f"/v1/payments/{payment_id}", headers=merchant.headers()).status_code == 200


def test_a_revoked_operator_key_loses_ops_at_once(
    api: ApiClient, db: Database, settings: Settings
) -> None:
    operator = new_key(db, settings, None, "ops:read")
    assert api.get("/ops/events", headers=bearer(operator)).status_code == 200

    cli_ok("merchant", "key", "revoke", prefix_of(operator))

    assert refusal(api.get("/ops/events", headers=bearer(operator))) == (401, "unauthorized")


# --- the CLI ----------------------------------------------------------------------------------


def test_cli_key_create_prints_the_key_once_with_exactly_the_scopes_asked(
    api: ApiClient, rabbit: Rabbit, db: Database, merchant: MerchantAccount
) -> None:
    # Given a payment of the merchant
    payment_id = a_payment(db, merchant.id)

    # When a read-only key is created with the CLI
    result = cli_ok(
        "merchant", "key", "create", str(merchant.id), "--scope", "payments:read", "--label", "bi"
    )

    # Then it prints the key once, as JSON, and the key holds exactly that scope
    created = json.loads(result.stdout)
    assert created == {
        "merchant_id": str(merchant.id),
        "api_key": created["api_key"],
        "scopes": ["payments:read"],
    }
    key = created["api_key"]
    assert key.startswith("mlp_")
    assert len(key) > PREFIX_LENGTH + 20
    row = key_row(db, prefix_of(key))
    assert (row.merchant_id, row.scopes, row.label) == (merchant.id, ["payments:read"], "bi")
    assert api.get(f"/v1/payments/{payment_id}", headers=bearer(key)).status_code == 200
    assert refusal(pay(api, key)) == (403, "forbidden")
    assert refusal(api.get("/ops/events", headers=bearer(key))) == (403, "forbidden")
    assert rabbit.count(INITIATE_PAYMENT.queue_name) == 0


def test_cli_key_create_defaults_to_the_payments_scopes_and_takes_several(
    api: ApiClient, db: Database, merchant: MerchantAccount
) -> None:
    default = json.loads(cli_ok("merchant", "key", "create", str(merchant.id)).stdout)
    several = json.loads(
        cli_ok(
            *("merchant", "key", "create", str(merchant.id)),
            *("--scope", "payments:write", "--scope", "ops:read"),
        ).stdout
    )

    assert default["scopes"] == ["payments:write", "payments:read"]
    assert several["scopes"] == ["payments:write", "ops:read"]
    assert pay(api, default["api_key"]).status_code == 202
    assert pay(api, several["api_key"]).status_code == 202
    assert api.get("/ops/events", headers=bearer(several["api_key"])).status_code == 200
    assert api.get("/ops/events", headers=bearer(default["api_key"])).status_code == 403


def test_cli_key_create_refuses_an_unknown_merchant_or_scope(db: Database) -> None:
    with db.transaction() as session:
        before = session.scalar(select(func.count(ApiKey.id)))

    unknown_merchant = cli("merchant", "key", "create", str(uuid.uuid4()))
    unknown_scope = cli("merchant", "key", "create", str(uuid.uuid4()), "--scope", "payments:admin")

    assert unknown_merchant.exit_code == 1
    assert "no merchant" in unknown_merchant.output
    assert "api_key" not in unknown_merchant.output
    assert unknown_scope.exit_code == 2
    with db.transaction() as session:
        assert session.scalar(select(func.count(ApiKey.id))) == before


def test_cli_key_list_shows_the_merchants_keys_but_never_a_secret(
    db: Database, settings: Settings, cipher: Any, merchant: MerchantAccount
) -> None:
    # Given the merchant's first key, one made with the CLI, and another merchant's key
    made = json.loads(
        cli_ok("merchant", "key", "create", str(merchant.id), "--label", "till-2").stdout
    )["api_key"]
    other = make_merchant(db, settings, cipher)

    # When the merchant's keys are listed
    result = cli_ok("merchant", "key", "list", str(merchant.id))

    # Then both of its keys are shown by prefix, the other merchant's not, and no secret at all
    listed = json.loads(result.stdout)
    assert [k["prefix"] for k in listed] == [prefix_of(merchant.api_key), prefix_of(made)]
    assert listed[1]["label"] == "till-2"
    assert listed[1]["scopes"] == ["payments:write", "payments:read"]
    assert [k["revoked_at"] for k in listed] == [None, None]
    for secret in (merchant.api_key, made, other.api_key):
        assert secret[PREFIX_LENGTH + 1 :] not in result.output
    assert prefix_of(other.api_key) not in result.output
    for row in listed:
        assert set(row) == {"prefix", "scopes", "label", "bus", "created_at", "revoked_at"}


def test_cli_key_revoke_refuses_the_key_at_once_and_list_shows_it_revoked(
    api: ApiClient, db: Database, merchant: MerchantAccount
) -> None:
    # Given a second key, made with the CLI and in use
    made = json.loads(cli_ok("merchant", "key", "create", str(merchant.id)).stdout)["api_key"]
    assert pay(api, made).status_code == 202

    # When it is revoked by its prefix
    result = cli_ok("merchant", "key", "revoke", prefix_of(made))

    # Then it is refused on the next request, the first key still works, and list says so
    assert result.output.strip() == f"revoked {prefix_of(made)}"
    assert refusal(pay(api, made)) == (401, "unauthorized")
    assert pay(api, merchant.api_key).status_code == 202
    listed = {
        k["prefix"]: k
        for k in json.loads(cli_ok("merchant", "key", "list", str(merchant.id)).stdout)
    }
    assert listed[prefix_of(made)]["revoked_at"] is not None
    assert listed[prefix_of(merchant.api_key)]["revoked_at"] is None
    first_revocation = key_row(db, prefix_of(made)).revoked_at

    # ... and revoking again changes nothing, while an unknown prefix is an error
    cli_ok("merchant", "key", "revoke", prefix_of(made))
    assert key_row(db, prefix_of(made)).revoked_at == first_revocation
    unknown = cli("merchant", "key", "revoke", "mlp_000000000000")
    assert unknown.exit_code == 1
    assert "no key with prefix mlp_000000000000" in unknown.output


# --- storage ----------------------------------------------------------------------------------


def test_keys_are_stored_as_a_keyed_hash_and_the_plain_key_is_nowhere(
    api: ApiClient,
    db: Database,
    settings: Settings,
    merchant: MerchantAccount,
    ingress_server: ManagedProcess,
) -> None:
    # Given a key made with the CLI, and used
    key = json.loads(cli_ok("merchant", "key", "create", str(merchant.id)).stdout)["api_key"]
    prefix, secret = prefix_of(key), key[PREFIX_LENGTH + 1 :]
    assert pay(api, key).status_code == 202

    # When the api_keys table is read whole, every column of every row as text
    with db.transaction() as session:
        rows = [str(r) for r in session.scalars(text("SELECT k::text FROM api_keys AS k"))]

    # Then neither the key nor its secret part is in it; only the prefix and a keyed hash are
    assert rows
    assert not any(key in row or secret in row for row in rows)
    row = key_row(db, prefix)
    assert (
        row.secret_hash == hmac.new(pepper(settings), secret.encode(), hashlib.sha256).hexdigest()
    )
    assert row.secret_hash != hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in ingress_server.output()
    # ... and the prefix, which lists show, is no key by itself
    forged = f"{prefix}_{'A' * len(secret)}"
    assert refusal(pay(api, forged)) == (401, "unauthorized")
    assert refusal(api.get("/ops/events", headers=bearer(prefix))) == (401, "unauthorized")
