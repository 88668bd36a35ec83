"""Customers hear by SMS and e-mail when their payment did not complete — and a notice never
moves money.

The in-process worker applies real callbacks to seeded payments; SMS go to the sandbox
process's SMS simulator over HTTP, e-mail to the ``smtp_sink`` fixture over SMTP.
"""

from __future__ import annotations

import base64
import dataclasses
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import select, update

from sandbox.smtp import Mailbox, SmtpSink
from shared.commands.templates import template
from shared.db.models import CustomerNotification, PaymentIntent
from shared.db.session import Database
from shared.messages import ApplyCallback, NotifyCustomer, Publisher
from tests.conftest import MerchantAccount
from tests.support.processes import ManagedProcess
from tests.support.rabbit import Rabbit
from tests.support.seed import (
    SeededPayment,
    failure_callback,
    ledger_state,
    seed_submitted_payments,
    success_callback,
)
from tests.support.waiting import wait_until
from workers import runtime as worker_runtime
from workers.notifications import notify_customer
from workers.outcomes import apply_word, lock_intent
from workers.polling import expiry_word

pytestmark = pytest.mark.usefixtures("worker")

CANCEL = (1032, "Request cancelled by user")
INSUFFICIENT = (1, "The balance is insufficient for the transaction.")
EMAIL = "jane.doe@example.com"


class SmsProvider:
    """The sandbox SMS simulator's control API (``/_sim/sms``)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = f"{base_url}/_sim/sms"
        self.http = requests.Session()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, self.base_url + path, timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        self._call("POST", "/reset")

    def fail(self, **failure: Any) -> None:
        self._call("POST", "/failures", json=failure)

    def messages(self, to: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/messages", params={"to": to})
        return result

    def answers(self, to: str) -> list[int]:
        """HTTP statuses of the messaging calls for this number, oldest first."""
        calls = self._call("GET", "/requests")
        return [call["status"] for call in calls if call["fields"].get("to") == to]


@pytest.fixture
def sms(sandbox_server: ManagedProcess, test_env: dict[str, str]) -> SmsProvider:
    provider = SmsProvider(test_env["MALIPO_SMS_BASE_URL"])
    provider.reset()
    return provider


@pytest.fixture
def mailbox(smtp_sink: SmtpSink) -> Mailbox:
    smtp_sink.mailbox.reset()
    return smtp_sink.mailbox


@pytest.fixture
def publisher(broker: Any) -> Publisher:
    return Publisher(broker)


@dataclasses.dataclass(frozen=True)
class Customer:
    """A seeded, submitted payment with a phone (and e-mail) no other test uses."""

    payment: SeededPayment
    phone: str
    reference: str

    @property
    def e164(self) -> str:
        return f"+{self.phone}"


def submitted_payment(
    db: Database, merchant: MerchantAccount, *, email: str | None = None
) -> Customer:
    tag = f"n{uuid.uuid4().hex[:8]}"
    [payment] = seed_submitted_payments(db, merchant.id, 1, tag=tag)
    phone = f"2547{random.randrange(10**8):08d}"
    with db.transaction() as session:
        session.execute(
            update(PaymentIntent)
            .where(PaymentIntent.id == payment.id)
            .values(phone=phone, customer_email=email)
        )
    return Customer(dataclasses.replace(payment, phone=phone), phone, f"{tag}-0")


def callback(publisher: Publisher, merchant: MerchantAccount, body: bytes) -> None:
    publisher.send(
        ApplyCallback(
            gateway="daraja",
            merchant_id=str(merchant.id),
            body_b64=base64.b64encode(body).decode(),
            headers={},
            received_at=datetime.now(UTC).isoformat(),
        )
    )


def fail(publisher: Publisher, merchant: MerchantAccount, customer: Customer, code: Any) -> None:
    callback(publisher, merchant, failure_callback(customer.payment, *code))


def notices(db: Database, customer: Customer) -> dict[str, CustomerNotification]:
    with db.transaction() as session:
        rows = session.scalars(
            select(CustomerNotification).where(
                CustomerNotification.payment_id == customer.payment.id
            )
        ).all()
    return {row.channel: row for row in rows}


def finished_notices(
    db: Database, customer: Customer, channels: int = 1, timeout_s: float = 30
) -> dict[str, CustomerNotification]:
    def done() -> dict[str, CustomerNotification] | None:
        rows = notices(db, customer)
        final = len(rows) == channels and all(r.status != "pending" for r in rows.values())
        return rows if final else None

    return wait_until(done, timeout_s=timeout_s, what="customer notices to finish")


def payment_row(db: Database, customer: Customer) -> PaymentIntent:
    with db.transaction() as session:
        intent = session.get(PaymentIntent, customer.payment.id)
        assert intent is not None
        return intent


def status_is(db: Database, customer: Customer, status: str) -> Callable[[], bool]:
    return lambda: payment_row(db, customer).status == status


def merchant_name(db: Database, merchant: MerchantAccount) -> str:
    from shared.db.models import Merchant

    with db.transaction() as session:
        row = session.get(Merchant, merchant.id)
        assert row is not None
        return row.name


# --- what customers are told ----------------------------------------------------------------


def test_a_cancelled_payment_sends_one_sms_and_one_email(
    db: Database,
    merchant: MerchantAccount,
    publisher: Publisher,
    sms: SmsProvider,
    mailbox: Mailbox,
) -> None:
    customer = submitted_payment(db, merchant, email=EMAIL)
    name = merchant_name(db, merchant)

    fail(publisher, merchant, customer, CANCEL)
    rows = finished_notices(db, customer, channels=2)

    assert {channel: row.status for channel, row in rows.items()} == {
        "sms": "sent",
        "email": "sent",
    }
    [message] = sms.messages(customer.e164)
    assert message["message"] == (
        f"Your payment of KES 1.00 to {name} for {customer.reference} was cancelled. "
        "No money was taken."
    )
    assert message["from"] == "MALIPO"
    assert rows["sms"].provider_ref == message["messageId"]
    [mail] = mailbox.mails(EMAIL)
    assert mail.subject == f"Your payment to {name} was cancelled"
    assert f"KES 1.00 to {name} for {customer.reference} was cancelled" in mail.body
    assert mail.sender == "payments@malipo.test"
    assert rows["email"].provider_ref == mail.message_id
    for row in rows.values():
        assert (row.attempts, row.last_error, row.event) == (1, None, "cancelled")
        assert row.sent_at is not None


def test_a_failed_payment_says_why(
    db: Database, merchant: MerchantAccount, publisher: Publisher, sms: SmsProvider
) -> None:
    customer = submitted_payment(db, merchant)

    fail(publisher, merchant, customer, INSUFFICIENT)
    rows = finished_notices(db, customer)

    assert rows["sms"].status == "sent"
    assert rows["sms"].event == "failed"
    [message] = sms.messages(customer.e164)
    assert (
        "did not go through: your balance was too low. No money was taken." in (message["message"])
    )


def test_an_expired_payment_notifies_too(
    db: Database, merchant: MerchantAccount, sms: SmsProvider
) -> None:
    customer = submitted_payment(db, merchant)
    payment = customer.payment

    with db.transaction() as session:  # what the poller applies when the window closes
        intent = lock_intent(session, payment.id)
        assert intent is not None
        now = datetime.now(UTC)
        apply_word(
            session, intent, expiry_word("daraja", payment.id, payment.checkout_id, now), now
        )
    rows = finished_notices(db, customer)

    assert (rows["sms"].status, rows["sms"].event) == ("sent", "expired")
    [message] = sms.messages(customer.e164)
    assert "timed out: no confirmation came in time." in message["message"]


def test_a_successful_payment_notifies_nobody(
    db: Database,
    merchant: MerchantAccount,
    publisher: Publisher,
    sms: SmsProvider,
    mailbox: Mailbox,
) -> None:
    customer = submitted_payment(db, merchant, email=EMAIL)

    callback(publisher, merchant, success_callback(customer.payment, receipt="RSUCCESS01"))
    wait_until(status_is(db, customer, "succeeded"), what="the payment to succeed")

    # Notices are written in the transaction that moves the payment: none now means none ever.
    assert notices(db, customer) == {}
    assert sms.messages(customer.e164) == []
    assert mailbox.mails(EMAIL) == []


# --- when the channel does not take it ------------------------------------------------------


def test_an_sms_provider_error_is_retried_until_sent(
    db: Database, merchant: MerchantAccount, publisher: Publisher, sms: SmsProvider
) -> None:
    customer = submitted_payment(db, merchant)
    sms.fail(phone=customer.e164, http_status=500, times=2)

    fail(publisher, merchant, customer, CANCEL)
    rows = finished_notices(db, customer, timeout_s=45)

    assert (rows["sms"].status, rows["sms"].attempts, rows["sms"].last_error) == ("sent", 3, None)
    assert sms.answers(customer.e164) == [500, 500, 201]
    assert len(sms.messages(customer.e164)) == 1


def test_a_permanent_refusal_fails_the_notice_and_leaves_the_payment_alone(
    db: Database, merchant: MerchantAccount, publisher: Publisher, sms: SmsProvider
) -> None:
    customer = submitted_payment(db, merchant)
    sms.fail(phone=customer.e164, status_code=403)

    fail(publisher, merchant, customer, CANCEL)
    wait_until(status_is(db, customer, "cancelled"), what="the payment to be cancelled")
    before = payment_row(db, customer)
    rows = finished_notices(db, customer)
    after = payment_row(db, customer)

    assert rows["sms"].status == "failed"
    assert (rows["sms"].attempts, rows["sms"].last_error) == (1, "403 InvalidPhoneNumber")
    assert sms.answers(customer.e164) == [201]
    assert sms.messages(customer.e164) == []
    assert (after.status, after.updated_at, after.flags) == (
        before.status,
        before.updated_at,
        before.flags,
    )
    assert (after.failure_code, after.finished_at) == ("cancelled_by_user", before.finished_at)
    assert ledger_state(db, merchant.id).entries == 0


def test_an_unconfigured_channel_fails_the_notice_quietly(
    db: Database,
    merchant: MerchantAccount,
    publisher: Publisher,
    sms: SmsProvider,
    mailbox: Mailbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rt = worker_runtime.runtime()
    bare = rt.settings.model_copy(update={"sms_api_key": None, "smtp_host": None})
    monkeypatch.setattr(worker_runtime, "_runtime", dataclasses.replace(rt, settings=bare))
    customer = submitted_payment(db, merchant, email=EMAIL)

    fail(publisher, merchant, customer, CANCEL)
    rows = finished_notices(db, customer, channels=2)

    for row in rows.values():
        assert (row.status, row.attempts, row.last_error) == (
            "failed",
            1,
            "channel not configured",
        )
    assert sms.messages(customer.e164) == []
    assert mailbox.mails(EMAIL) == []
    assert payment_row(db, customer).status == "cancelled"


# --- idempotency and wording ----------------------------------------------------------------


def test_duplicate_messages_send_once(
    rabbit: Rabbit,
    db: Database,
    merchant: MerchantAccount,
    publisher: Publisher,
    broker: Any,
    sms: SmsProvider,
) -> None:
    customer = submitted_payment(db, merchant)

    fail(publisher, merchant, customer, CANCEL)
    row = wait_until(lambda: notices(db, customer).get("sms"), what="the notice row")
    for _ in range(3):  # racing the original delivery
        publisher.send(NotifyCustomer(notification_id=row.id))
    finished_notices(db, customer)
    wait_until(lambda: rabbit.counts("notifications")[0] == 0, what="queue drained")
    notify_customer.fn(notification_id=row.id)  # and once more, after it was sent

    assert len(sms.messages(customer.e164)) == 1
    assert notices(db, customer)["sms"].attempts == 1


def test_a_merchants_template_is_used(
    db: Database, merchant: MerchantAccount, publisher: Publisher, sms: SmsProvider
) -> None:
    body = "$merchant: $reference was cancelled, $currency $amount not charged ($status)."
    scope = ["--channel", "sms", "--event", "cancelled", "--merchant", str(merchant.id)]
    stored = CliRunner().invoke(template, ["set", *scope, "--body", body])
    listed = CliRunner().invoke(template, ["list", "--merchant", str(merchant.id)])
    customer = submitted_payment(db, merchant)

    fail(publisher, merchant, customer, CANCEL)
    finished_notices(db, customer)

    assert stored.exit_code == 0, stored.output
    assert '"source": "merchant"' in listed.output
    [message] = sms.messages(customer.e164)
    name = merchant_name(db, merchant)
    assert message["message"] == (
        f"{name}: {customer.reference} was cancelled, KES 1.00 not charged (cancelled)."
    )
    reset = CliRunner().invoke(template, ["reset", *scope])
    assert reset.exit_code == 0
    assert "removed" in reset.output
