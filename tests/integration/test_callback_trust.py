"""Callbacks nobody can forge: refused whatever the trick, recorded for operators, never applied."""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

import falcon.testing
import pytest
from sqlalchemy import func, select

from shared.callback_auth import SIGNATURE_HEADER, sign
from shared.db.models import GatewayEvent
from shared.db.session import Database
from shared.merchants import (
    issue_api_key,
    set_callback_policy,
    set_ip_allowlist,
)
from shared.settings import Settings
from tests.conftest import MerchantAccount
from tests.support.app import ingress_client
from tests.support.seed import ledger_state, seed_submitted_payments, success_callback
from tests.support.waiting import wait_until

pytestmark = pytest.mark.usefixtures("worker")

SAFARICOM_IP = "196.201.214.200"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def operator_key(db: Database, settings: Settings) -> str:
    with db.transaction() as session:
        return issue_api_key(
            session, settings.secret_key.get_secret_value().encode(), None, ("ops:read",)
        )


def refused_events(
    client: falcon.testing.TestClient, key: str, body: bytes
) -> list[dict[str, Any]]:
    response = client.simulate_get(
        "/ops/refused-callbacks",
        params={"limit": "500"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
    digest = hashlib.sha256(body).hexdigest()
    return [e for e in response.json["refused"] if e["sample_sha256"] == digest]


def post(client: falcon.testing.TestClient, secret: str | None, body: bytes, **headers: str) -> Any:
    return client.simulate_post(
        f"/callbacks/mpesa/{secret}", body=body, headers={**JSON, **headers}
    )


def unique_body() -> bytes:
    return (
        b'{"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_%s", "ResultCode": 0}}}'
        % uuid.uuid4().hex.encode()
    )


TRICKS = [
    "wrong_secret",
    "wrong_ip",
    "spoofed_forwarded_for",
    "no_signature",
    "bad_signature",
    "stale_signature",
]


@pytest.mark.parametrize("trick", TRICKS)
def test_a_forged_callback_is_refused_alike_and_recorded_with_its_reason(
    db: Database, settings: Settings, merchant: MerchantAccount, operator_key: str, trick: str
) -> None:
    # Given a merchant that allows only Safaricom's address and requires signed callbacks
    with db.transaction() as session:
        set_ip_allowlist(session, merchant.id, "daraja", [SAFARICOM_IP])
        set_callback_policy(session, merchant.id, "daraja", require_signature=True)
    client = ingress_client(settings, db, trusted_proxies="127.0.0.1/32")
    body, secret, now = unique_body(), merchant.callback_secret, int(time.time())
    signing_key = str(settings.callback_signing_secret.get_secret_value()).encode()  # type: ignore[union-attr]
    via = {"X-Forwarded-For": SAFARICOM_IP}
    good = {**via, SIGNATURE_HEADER: sign(signing_key, body, now)}
    elsewhere = {**good, "X-Forwarded-For": "203.0.113.9"}
    spoofed = {**good, "X-Forwarded-For": f"{SAFARICOM_IP}, 203.0.113.9"}
    wrong_key = {**good, SIGNATURE_HEADER: sign(b"another key", body, now)}
    stale = {**good, SIGNATURE_HEADER: sign(signing_key, body, now - 3600)}
    forged: dict[str, Any] = {
        "wrong_secret": ("x" * 43, good, "unknown_secret"),
        "wrong_ip": (secret, elsewhere, "ip_not_allowed"),
        "spoofed_forwarded_for": (secret, spoofed, "ip_not_allowed"),
        "no_signature": (secret, via, "signature_missing"),
        "bad_signature": (secret, wrong_key, "signature_invalid"),
        "stale_signature": (secret, stale, "signature_stale"),
    }
    path_secret, headers, reason = forged[trick]

    # When the forged callback is posted
    refused = post(client, path_secret, body, **headers)

    # Then it gets the same bare 404 as any unknown URL, and is counted with its reason
    assert refused.status_code == 404
    assert refused.json == client.simulate_get("/no/such/route").json
    [event] = wait_until(
        lambda: refused_events(client, operator_key, body), timeout_s=15, what="the count"
    )
    assert (event["reason"], event["count"]) == (reason, 1)
    assert event["merchant_id"] == (None if trick == "wrong_secret" else str(merchant.id))
    assert not {"body", "body_masked"} & set(event)  # the count keeps a hash, never the body
    spoofed = trick in ("wrong_ip", "spoofed_forwarded_for")
    assert event["source"] == ("203.0.113.9" if spoofed else SAFARICOM_IP)
    # And the genuine callback still gets through
    assert post(client, secret, body, **good).json == {"ResultCode": 0, "ResultDesc": "Accepted"}


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
    db: Database, settings: Settings, merchant: MerchantAccount
) -> None:
    with db.transaction() as session:
        set_ip_allowlist(session, merchant.id, "daraja", [SAFARICOM_IP])
    untrusting = ingress_client(settings, db, trusted_proxies="")

    response = post(
        untrusting, merchant.callback_secret, unique_body(), **{"X-Forwarded-For": SAFARICOM_IP}
    )

    assert response.status_code == 404


def test_the_ops_listing_shows_orphans_and_mismatches_which_are_never_credited(
    db: Database, settings: Settings, merchant: MerchantAccount, cipher: Any
) -> None:
    # Given a payment, a callback for a payment nobody knows, and one with a tampered amount
    [payment] = seed_submitted_payments(db, merchant.id, 1, tag=f"ops{uuid.uuid4().hex[:6]}")
    ghost = payment.__class__(
        id=uuid.uuid4(),
        checkout_id=f"ws_CO_ghost{uuid.uuid4().hex[:8]}",
        amount_minor=500,
        phone=payment.phone,
    )
    tampered = payment.__class__(
        payment.id, payment.checkout_id, payment.amount_minor + 100, payment.phone
    )
    client = ingress_client(settings, db)
    with db.transaction() as session:
        ops_key = issue_api_key(
            session, settings.secret_key.get_secret_value().encode(), merchant.id, ("ops:read",)
        )
    auth = {"Authorization": f"Bearer {ops_key}"}

    # When both are delivered
    for fake in (ghost, tampered):
        assert (
            post(client, merchant.callback_secret, success_callback(fake, "RFAKE00001")).status_code
            == 200
        )

    # Then the merchant's operator sees both in the review listing, and nothing was credited
    def listed() -> dict[str, Any] | None:
        page = client.simulate_get(
            "/ops/events", params={"outcome": "orphan,mismatch"}, headers=auth
        ).json
        return page if page["counts"] == {"orphan": 1, "mismatch": 1} else None

    page = wait_until(listed, timeout_s=20, what="orphan and mismatch listed")
    by_outcome = {e["outcome"]: e for e in page["events"]}
    assert by_outcome["orphan"]["gateway_ref"] == ghost.checkout_id
    assert by_outcome["mismatch"]["payment_id"] == str(payment.id)
    assert "2547" in by_outcome["orphan"]["body_masked"]
    assert payment.phone not in by_outcome["orphan"]["body_masked"]
    assert ledger_state(db, merchant.id).entries == 0


def test_the_ops_listing_needs_the_ops_scope(
    settings: Settings, db: Database, merchant: MerchantAccount
) -> None:
    client = ingress_client(settings, db)

    response = client.simulate_get("/ops/events", headers=merchant.headers())

    assert (response.status_code, response.json["error"]["code"]) == (403, "forbidden")


def test_a_disabled_gateway_refuses_its_callbacks(
    db: Database, settings: Settings, merchant: MerchantAccount, operator_key: str
) -> None:
    client = ingress_client(settings, db)
    body = unique_body()
    with db.transaction() as session:
        set_callback_policy(session, merchant.id, "daraja", enabled=False)

    refused = post(client, merchant.callback_secret, body)

    assert refused.status_code == 404
    [event] = wait_until(
        lambda: refused_events(client, operator_key, body), timeout_s=15, what="the count"
    )
    assert event["reason"] == "unknown_secret"
    with db.transaction() as session:
        set_callback_policy(session, merchant.id, "daraja", enabled=True)
    assert post(client, merchant.callback_secret, body).status_code == 200


def test_one_merchant_cannot_pre_empt_another_s_callback_by_its_id(
    db: Database, settings: Settings, merchant: MerchantAccount, cipher: Any
) -> None:
    # Given merchant B's submitted payment, whose CheckoutRequestID merchant A learns
    from tests.conftest import DARAJA_CREDENTIALS, make_merchant

    attacker = make_merchant(db, settings, cipher, daraja=dict(DARAJA_CREDENTIALS))
    [victim_payment] = seed_submitted_payments(db, merchant.id, 1, tag=f"v{uuid.uuid4().hex[:6]}")
    client = ingress_client(settings, db)
    callback = success_callback(victim_payment, f"R{uuid.uuid4().hex[:9].upper()}")

    # When A posts B's success to A's own callback URL first, then Safaricom posts B's
    forged = post(client, attacker.callback_secret, callback)
    genuine = post(client, merchant.callback_secret, callback)

    # Then A's copy is A's orphan, and B's real callback is still applied: B is credited
    assert forged.status_code == genuine.status_code == 200
    wait_until(
        lambda: ledger_state(db, merchant.id).entries == 1,
        timeout_s=20,
        what="the victim's real callback to be credited",
    )
    assert ledger_state(db, attacker.id).entries == 0


def test_refused_callbacks_are_stored_as_counts_never_a_row_each(
    db: Database, settings: Settings, operator_key: str
) -> None:
    # Given three sources posting made-up secrets, through a trusted proxy
    client = ingress_client(settings, db, trusted_proxies="127.0.0.1/32")
    tag = uuid.uuid4().int % 200
    sources = [f"198.51.{tag}.{n}" for n in (1, 2, 3)]

    # When each sends 100 of them
    for i in range(300):
        source = sources[i % 3]
        answer = post(client, uuid.uuid4().hex, unique_body(), **{"X-Forwarded-For": source})
        assert answer.status_code == 404

    # Then operators see 300 refusals, in a few count rows (per minute and source), no events
    def counted() -> list[dict[str, Any]] | None:
        rows = [
            row
            for source in sources
            for row in client.simulate_get(
                "/ops/refused-callbacks",
                params={"source": source, "reason": "unknown_secret"},
                headers={"Authorization": f"Bearer {operator_key}"},
            ).json["refused"]
        ]
        return rows if sum(r["count"] for r in rows) == 300 else None

    rows = wait_until(counted, timeout_s=20, what="the refusals counted")
    assert len(rows) <= 6  # three sources, at most two minutes each
    assert {r["merchant_id"] for r in rows} == {None}
    with db.transaction() as session:
        from_them = select(func.count()).where(GatewayEvent.remote_addr.in_(sources))
        assert session.scalar(from_them) == 0
