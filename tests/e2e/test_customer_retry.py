"""A customer's retry: a new push under the same payment and reference, within the limits."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from shared.db.models import PaymentAttempt, PaymentIntent, WebhookEvent
from shared.db.session import Database
from shared.messages import Publisher, RetryPayment, build_broker
from shared.settings import Settings
from tests.conftest import ApiClient, MerchantAccount
from tests.e2e.test_payment_flow import start_payment
from tests.support.app import ingress_client
from tests.support.payments import final_view, ledger_total
from tests.support.sim import Simulator
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker", "ingress_server")]


def test_a_cancelled_payment_retried_by_the_customer_succeeds_under_the_same_id_and_reference(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator, db: Database
) -> None:
    # Given a payment the customer cancelled at the first prompt
    sim.scenario(match={"phone": "254711600001"}, result_code=1032)
    payment_id = start_payment(api, merchant, phone="254711600001", amount=800)
    assert final_view(api, merchant, payment_id)["status"] == "cancelled"
    sim.reset()  # the next prompt is answered

    # When the customer retries
    retried = api.post(f"/v1/payments/{payment_id}/retry", headers=merchant.headers())

    # Then a second push goes out under the same payment and reference, and it succeeds
    assert retried.status_code == 202
    assert retried.json() == {"id": payment_id, "status": "retrying"}
    view = wait_until(
        lambda: (v := final_view(api, merchant, payment_id))["status"] == "succeeded" and v,
        what="the retried payment to succeed",
    )
    assert view["failure"] is None
    with db.transaction() as session:
        attempts = session.scalars(
            select(PaymentAttempt)
            .where(PaymentAttempt.intent_id == uuid.UUID(payment_id))
            .order_by(PaymentAttempt.number)
        ).all()
        events = session.scalars(
            select(WebhookEvent.event_type)
            .where(WebhookEvent.payment_id == uuid.UUID(payment_id))
            .order_by(WebhookEvent.id)
        ).all()
    assert [(a.number, a.cycle, a.status) for a in attempts] == [
        (1, 1, "accepted"),
        (2, 2, "accepted"),
    ]
    assert [
        p["body"]["AccountReference"] for p in sim.requests(kind="stkpush") if p["status"] == 200
    ] == [view["reference"][:12]]
    assert list(events) == ["payment.cancelled", "payment.succeeded"]
    assert ledger_total(db, merchant) == 800


def test_only_a_failed_cancelled_or_expired_payment_can_be_retried(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator
) -> None:
    payment_id = start_payment(api, merchant, phone="254711600002")
    assert final_view(api, merchant, payment_id)["status"] == "succeeded"

    refused = api.post(f"/v1/payments/{payment_id}/retry", headers=merchant.headers())
    unknown = api.post(f"/v1/payments/{uuid.uuid4()}/retry", headers=merchant.headers())

    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "payment_not_retryable")
    assert unknown.status_code == 404


def test_a_retry_respects_the_per_phone_prompt_limit(
    api: ApiClient,
    merchant: MerchantAccount,
    sim: Simulator,
    settings: Settings,
    db: Database,
    rabbit: Any,
) -> None:
    sim.scenario(match={"phone": "254711600003"}, result_code=1032)
    payment_id = start_payment(api, merchant, phone="254711600003")
    assert final_view(api, merchant, payment_id)["status"] == "cancelled"
    # The first prompt already used this phone's only prompt of the window
    strict = ingress_client(settings, db, phone_push_limit=1, phone_push_window_s=600)

    refused = strict.simulate_post(f"/v1/payments/{payment_id}/retry", headers=merchant.headers())

    assert (refused.status_code, refused.json["error"]["code"]) == (429, "rate_limited")
    assert int(refused.headers["Retry-After"]) > 0
    assert final_view(api, merchant, payment_id)["status"] == "cancelled"


def test_a_retry_replayed_later_does_not_prompt_the_customer_again(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator, db: Database, settings: Settings
) -> None:
    # Given a payment cancelled twice: at the first prompt, and at the customer's retry
    phone = "254711600002"
    sim.scenario(match={"phone": phone}, result_code=1032)
    payment_id = start_payment(api, merchant, phone=phone, amount=800)
    assert final_view(api, merchant, payment_id)["status"] == "cancelled"
    assert (
        api.post(f"/v1/payments/{payment_id}/retry", headers=merchant.headers()).status_code == 202
    )
    wait_until(
        lambda: (
            len(attempts_of(db, payment_id)) == 2
            and final_view(api, merchant, payment_id)["status"] == "cancelled"
        ),
        what="the retry's cycle to end",
    )
    retry = retry_message(db, payment_id)

    # When the first retry's message is delivered again later (an operator replaying a
    # dead letter of it): it is about cycle 1, and the payment is in cycle 2
    publisher = Publisher(build_broker(settings.broker_url.get_secret_value()))
    publisher.send(retry)
    publisher.send(
        RetryPayment(**{**retry.to_kwargs(), "requested_at": datetime.now(UTC).isoformat()})
    )

    # Then no third prompt reaches the customer
    time.sleep(3)  # the worker takes well under a second to act on a retry it accepts
    assert len(attempts_of(db, payment_id)) == 2
    assert final_view(api, merchant, payment_id)["status"] == "cancelled"


def attempts_of(db: Database, payment_id: str) -> list[PaymentAttempt]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(PaymentAttempt).where(PaymentAttempt.intent_id == uuid.UUID(payment_id))
            )
        )


def retry_message(db: Database, payment_id: str) -> RetryPayment:
    """The retry the ingress sent for cycle 1, rebuilt as it was (its cycle and time)."""
    with db.transaction() as session:
        intent = session.get(PaymentIntent, uuid.UUID(payment_id))
        assert intent is not None
        return RetryPayment(
            payment_id=payment_id,
            merchant_id=str(intent.merchant_id),
            requested_at=intent.accepted_at.isoformat(),
            cycle=1,
        )
