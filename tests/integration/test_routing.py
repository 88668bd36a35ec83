"""Routes per currency at the ingress: which gateway a payment naming none is sent to."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import falcon.testing
import pytest

from shared.crypto import CredentialCipher, payment_id_for
from shared.db.session import Database
from shared.merchants import set_callback_policy, set_route, store_gateway_credentials
from shared.messages import INITIATE_PAYMENT
from shared.settings import Settings
from tests.conftest import DARAJA_CREDENTIALS, MerchantAccount, make_merchant
from tests.support.app import ingress_client
from tests.support.rabbit import Rabbit

# Stored as given: the worker, not the ingress, would use them.
INTASEND = {
    "publishable_key": "ISPubKey_test_x",
    "secret_key": "ISSecretKey_test_x",
    "challenge": "c",
}


@pytest.fixture
def client(settings: Settings, db: Database, rabbit: Rabbit) -> Iterator[falcon.testing.TestClient]:
    yield ingress_client(settings, db)
    rabbit.purge(INITIATE_PAYMENT.queue_name)  # nobody consumes here: leave nothing behind


@pytest.fixture
def both(db: Database, settings: Settings, cipher: CredentialCipher) -> MerchantAccount:
    """A merchant with Daraja then IntaSend: its KES route is daraja, intasend."""
    merchant = make_merchant(db, settings, cipher, daraja=dict(DARAJA_CREDENTIALS))
    with db.transaction() as session:
        store_gateway_credentials(
            session, cipher, merchant.id, "intasend", INTASEND, production=False
        )
    return merchant


def pay(client: falcon.testing.TestClient, merchant: MerchantAccount, key: str) -> Any:
    body = {"amount": 1000, "currency": "KES", "phone": "0712345678", "reference": key}
    return client.simulate_post("/v1/payments", json=body, headers=merchant.headers(key))


def routed_to(rabbit: Rabbit) -> list[str]:
    return [m["kwargs"]["request"]["gateway"] for m in rabbit.take_all(INITIATE_PAYMENT.queue_name)]


def test_a_disabled_first_gateway_sends_payments_to_the_next(
    client: falcon.testing.TestClient, db: Database, both: MerchantAccount, rabbit: Rabbit
) -> None:
    assert pay(client, both, "R-1").status_code == 202
    with db.transaction() as session:
        set_callback_policy(session, both.id, "daraja", enabled=False)
    assert pay(client, both, "R-2").status_code == 202

    assert routed_to(rabbit) == ["daraja", "intasend"]


def test_a_reordered_route_applies_to_new_payments(
    client: falcon.testing.TestClient, db: Database, both: MerchantAccount, rabbit: Rabbit
) -> None:
    with db.transaction() as session:
        set_route(session, both.id, "KES", ["intasend", "daraja"])

    assert pay(client, both, "R-3").status_code == 202
    assert routed_to(rabbit) == ["intasend"]


def test_a_retried_request_keeps_its_id_when_the_route_changed_in_between(
    client: falcon.testing.TestClient, db: Database, both: MerchantAccount, rabbit: Rabbit
) -> None:
    first = pay(client, both, "R-4")
    with db.transaction() as session:
        set_route(session, both.id, "KES", ["intasend", "daraja"])
    second = pay(client, both, "R-4")

    # The same key is the same request: no idempotency_conflict, the same payment id.
    expected = {"id": str(payment_id_for(both.id, "R-4")), "status": "accepted"}
    assert (first.status_code, first.json) == (second.status_code, second.json) == (202, expected)
    # Answered from the first acceptance (stored or not): queued once, to the first route.
    assert len(routed_to(rabbit)) == 1


def test_a_route_naming_a_gateway_for_another_currency_is_refused(
    db: Database, both: MerchantAccount
) -> None:
    with db.transaction() as session, pytest.raises(ValueError, match="does not take XOF"):
        set_route(session, both.id, "XOF", ["daraja"])


def test_a_merchant_without_any_route_for_the_currency_is_told_so(
    client: falcon.testing.TestClient, both: MerchantAccount
) -> None:
    body = {"amount": 1500, "currency": "XOF", "phone": "+221771234567", "reference": "R-5"}
    response = client.simulate_post(
        "/v1/payments", json=body, headers=both.headers(str(uuid.uuid4()))
    )

    assert (response.status_code, response.json["error"]["code"]) == (422, "currency_not_supported")
