"""Merchant webhooks end to end: real payments, the in-process workers, a real HTTP receiver.

Events come from payments finished through the real apply path; ``notify_merchant``
POSTs them to a scripted receiver (stdlib ``http.server`` on an ephemeral port);
signatures are checked with the independent ``standardwebhooks`` package.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import falcon.testing
import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from shared.cli import main as malipo
from shared.crypto import CredentialCipher
from shared.db.models import Merchant, WebhookDelivery, WebhookEndpoint, WebhookEvent
from shared.db.session import Database
from shared.merchants import issue_api_key
from shared.messages import ApplyCallback, NotifyMerchant, Publisher
from shared.settings import Settings
from shared.webhooks import EndpointRefused, event_body, set_endpoint, set_endpoint_enabled
from tests.conftest import MerchantAccount
from tests.support.app import ingress_client
from tests.support.env import free_port
from tests.support.seed import seed_submitted_payments, success_callback
from tests.support.waiting import wait_until

pytestmark = pytest.mark.usefixtures("worker")

HOOK = "/hook"
SCHEDULE = (0.2, 0.4, 0.8)
QUIET_S = 2.0  # longer than the whole test schedule: no request may come after it
# The receivers listen on loopback, which webhooks may reach only when allowed (sandbox).
LOCAL_HOSTS = "127.0.0.1"


# --- a merchant's endpoint ------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"ok": true}'
    hang_s: float = 0.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    answered: int

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class Receiver:
    """A merchant's webhook endpoint whose answers a test scripts, one per request."""

    def __init__(self) -> None:
        self.script: list[Answer] = []
        self.default = Answer()
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return self.url_for(HOOK)

    def url_for(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def answer(self, *answers: Answer, then: Answer | None = None) -> None:
        """Answer the next requests so, in order, then ``then`` (default: 200)."""
        with self.lock:
            self.script = list(answers)
            self.default = then or Answer()

    def next_answer(self) -> Answer:
        with self.lock:
            return self.script.pop(0) if self.script else self.default

    def record(self, received: Received) -> None:
        with self.lock:
            self.requests.append(received)

    def received(self, path: str = HOOK) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            answer = receiver.next_answer()
            receiver.record(
                Received(self.path, dict(self.headers.items()), body, time.time(), answer.status)
            )
            time.sleep(answer.hang_s)
            try:
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sender gave up (timeout)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    endpoint.thread.start()
    yield endpoint
    endpoint.server.shutdown()
    endpoint.server.server_close()


class MailSink:
    """An SMTP server that keeps what it is sent."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def mail_sink() -> Iterator[tuple[MailSink, int]]:
    sink, port = MailSink(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()


# --- the pipeline around it ------------------------------------------------------------------


@pytest.fixture
def publisher(broker: Any) -> Publisher:
    return Publisher(broker)


@pytest.fixture(autouse=True)
def fast_webhooks(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Workers retrying on a sub-second schedule, with a 1 s delivery timeout.

    The local receivers are allowed (``MALIPO_WEBHOOK_ALLOW_HOSTS``) to the workers and
    to the CLI alike, whatever the environment says.
    """
    from workers.runtime import runtime

    rt = runtime()
    schedule = ",".join(str(delay) for delay in SCHEDULE)
    fast = rt.settings.model_copy(
        update={
            "webhook_retry_schedule_s": schedule,
            "webhook_timeout_s": 1.0,
            "webhook_allow_hosts": LOCAL_HOSTS,
        }
    )
    monkeypatch.setattr(rt, "settings", fast)
    monkeypatch.setenv("MALIPO_WEBHOOK_ALLOW_HOSTS", LOCAL_HOSTS)
    return fast


@pytest.fixture
def operator(db: Database, settings: Settings) -> dict[str, str]:
    with db.transaction() as session:
        key = issue_api_key(
            session,
            settings.secret_key.get_secret_value().encode(),
            None,
            ("ops:read", "ops:write"),
        )
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def ops(settings: Settings, db: Database) -> falcon.testing.TestClient:
    return ingress_client(settings, db)


def cli(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(malipo, ["webhook", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    value: dict[str, Any] = json.loads(result.output)
    return value


def endpoint_at(db: Database, cipher: CredentialCipher, merchant: MerchantAccount, url: str) -> str:
    with db.transaction() as session:
        secret = set_endpoint(
            session, cipher, merchant.id, url, production=False, allowed_hosts=[LOCAL_HOSTS]
        )
    assert secret is not None
    return secret


def switch(db: Database, merchant: MerchantAccount, enabled: bool) -> None:
    with db.transaction() as session:
        set_endpoint_enabled(session, merchant.id, enabled)


def final_payment(db: Database, publisher: Publisher, merchant: MerchantAccount) -> WebhookEvent:
    """A payment succeeded through the real apply path; returns its webhook event."""
    tag = f"wh{uuid.uuid4().hex[:8]}"
    [payment] = seed_submitted_payments(db, merchant.id, 1, tag=tag)
    body = success_callback(payment, receipt=f"R{uuid.uuid4().hex[:9].upper()}")
    publisher.send(
        ApplyCallback(
            gateway="daraja",
            merchant_id=str(merchant.id),
            body_b64=base64.b64encode(body).decode(),
            headers={"content-type": "application/json"},
            received_at=datetime.now(UTC).isoformat(),
        )
    )

    def written() -> WebhookEvent | None:
        with db.transaction() as session:
            return session.scalars(
                select(WebhookEvent).where(WebhookEvent.payment_id == payment.id)
            ).one_or_none()

    return wait_until(written, what="the webhook event")


def event(db: Database, event_id: int) -> WebhookEvent:
    with db.transaction() as session:
        row = session.get(WebhookEvent, event_id)
    assert row is not None
    return row


def status_is(db: Database, event_id: int, status: str) -> WebhookEvent | None:
    row = event(db, event_id)
    return row if row.status == status else None


def deliveries(db: Database, event_id: int) -> list[WebhookDelivery]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.event_id == event_id)
                .order_by(WebhookDelivery.id)
            )
        )


def endpoint(db: Database, merchant: MerchantAccount) -> WebhookEndpoint:
    with db.transaction() as session:
        row = session.get(WebhookEndpoint, merchant.id)
    assert row is not None
    return row


def quietly(receiver: Receiver, count: int) -> None:
    """Wait past the whole retry schedule, then check nothing more arrived."""
    time.sleep(QUIET_S)
    assert len(receiver.received()) == count


# --- signatures --------------------------------------------------------------------------------


def test_deliveries_verify_with_standardwebhooks_under_each_secret_of_a_rotation(
    db: Database, publisher: Publisher, merchant: MerchantAccount, receiver: Receiver
) -> None:
    # Given an endpoint whose secret was rotated (old and new both active)
    old = cli("set", str(merchant.id), receiver.url)["secret"]
    new = cli("rotate-secret", str(merchant.id))["secret"]
    shown = CliRunner().invoke(malipo, ["webhook", "show", str(merchant.id)]).output
    assert "whsec_" not in shown
    assert json.loads(shown)["signing_secrets"] == 2

    # When a payment finishes
    sent = final_payment(db, publisher, merchant)

    # Then its event arrives once, as the exact stored payload, verifiable with either secret
    [request] = wait_until(receiver.received, what="the delivery")
    assert request.webhook_id == sent.webhook_id
    assert request.body == event_body(sent.payload)
    assert request.headers["Content-Type"] == "application/json"
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        payload = Webhook(secret).verify(request.body, request.headers)
        assert payload["data"]["id"] == str(sent.payment_id)
        assert payload["type"] == "payment.succeeded"
    wait_until(lambda: status_is(db, sent.id, "delivered"), what="delivered")

    # And once the rotation ends, only the new secret signs
    assert cli("drop-old-secrets", str(merchant.id))["dropped"] == 1
    later = final_payment(db, publisher, merchant)
    wait_until(lambda: len(receiver.received()) == 2, what="the second delivery")
    second = receiver.received()[1]
    assert second.webhook_id == later.webhook_id
    Webhook(new).verify(second.body, second.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(second.body, second.headers)


# --- retries and failures ----------------------------------------------------------------------


def test_an_endpoint_failing_three_times_then_recovering_gets_the_event_once_more(
    db: Database,
    cipher: CredentialCipher,
    publisher: Publisher,
    merchant: MerchantAccount,
    receiver: Receiver,
) -> None:
    # Given an endpoint that fails three times, then answers 200
    endpoint_at(db, cipher, merchant, receiver.url)
    receiver.answer(Answer(500), Answer(500), Answer(503, body=b"x" * 2000))

    # When an event is sent
    sent = final_payment(db, publisher, merchant)

    # Then it is attempted on the schedule and delivered by the fourth attempt, then never again
    wait_until(lambda: status_is(db, sent.id, "delivered"), what="delivery")
    quietly(receiver, 4)
    requests = receiver.received()
    assert {r.webhook_id for r in requests} == {sent.webhook_id}
    assert [r.answered for r in requests] == [500, 500, 503, 200]
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(requests)]
    assert all(gap >= delay * 0.9 for gap, delay in zip(gaps, SCHEDULE, strict=True)), gaps
    rows = deliveries(db, sent.id)
    assert [(r.attempt, r.status_code, r.succeeded) for r in rows] == [
        (1, 500, False),
        (2, 500, False),
        (3, 503, False),
        (4, 200, True),
    ]
    assert all(r.latency_ms is not None and r.url == receiver.url for r in rows)
    # Only a successful answer's body is kept (a failed one's could be anyone's page).
    assert [r.response_excerpt for r in rows] == [None, None, None, '{"ok": true}']
    stored = event(db, sent.id)
    assert (stored.attempts, stored.next_attempt_at) == (4, None)
    assert endpoint(db, merchant).failing_since is None


def test_an_endpoint_that_never_recovers_fails_the_event_once_the_schedule_is_spent(
    db: Database,
    cipher: CredentialCipher,
    publisher: Publisher,
    merchant: MerchantAccount,
    receiver: Receiver,
) -> None:
    endpoint_at(db, cipher, merchant, receiver.url)
    receiver.answer(then=Answer(500))

    sent = final_payment(db, publisher, merchant)

    wait_until(lambda: status_is(db, sent.id, "failed"), what="failure")
    quietly(receiver, 1 + len(SCHEDULE))
    assert endpoint(db, merchant).failing_since is not None
    assert endpoint(db, merchant).enabled


def test_410_gone_disables_the_endpoint_and_later_events_are_held(
    db: Database,
    cipher: CredentialCipher,
    publisher: Publisher,
    merchant: MerchantAccount,
    receiver: Receiver,
) -> None:
    # Given an endpoint that answers 410 Gone
    endpoint_at(db, cipher, merchant, receiver.url)
    receiver.answer(then=Answer(410))

    # When an event is sent, then another
    first = final_payment(db, publisher, merchant)
    wait_until(lambda: status_is(db, first.id, "held"), what="the first event held")
    second = final_payment(db, publisher, merchant)
    wait_until(lambda: status_is(db, second.id, "held"), what="the second event held")

    # Then the endpoint was disabled after one attempt, and nothing more was sent
    quietly(receiver, 1)
    disabled = endpoint(db, merchant)
    assert not disabled.enabled
    assert "410" in (disabled.disabled_reason or "")
    assert deliveries(db, second.id) == []


def test_a_redirect_is_a_failed_attempt_and_is_not_followed(
    db: Database,
    cipher: CredentialCipher,
    publisher: Publisher,
    merchant: MerchantAccount,
    receiver: Receiver,
) -> None:
    endpoint_at(db, cipher, merchant, receiver.url)
    receiver.answer(Answer(302, headers={"Location": receiver.url_for("/elsewhere")}))

    sent = final_payment(db, publisher, merchant)

    wait_until(lambda: status_is(db, sent.id, "delivered"), what="delivery")
    quietly(receiver, 2)
    assert receiver.received("/elsewhere") == []
    rows = deliveries(db, sent.id)
    assert [(r.status_code, r.succeeded) for r in rows] == [(302, False), (200, True)]


def test_a_hanging_endpoint_times_out_and_the_event_is_retried(
    db: Database,
    cipher: CredentialCipher,
    publisher: Publisher,
    merchant: MerchantAccount,
    receiver: Receiver,
) -> None:
    endpoint_at(db, cipher, merchant, receiver.url)
    receiver.answer(Answer(hang_s=3))

    sent = final_payment(db, publisher, merchant)

    wait_until(lambda: status_is(db, sent.id, "delivered"), what="delivery")
    first, second = deliveries(db, sent.id)
    assert first.status_code is None
    assert (first.error or "").startswith("timeout")
    assert (second.status_code, second.succeeded) == (200, True)


def test_retry_after_longer_than_the_schedule_is_honoured(
    db: Database,
    cipher: CredentialCipher,
    publisher: Publisher,
    merchant: MerchantAccount,
    receiver: Receiver,
) -> None:
    endpoint_at(db, cipher, merchant, receiver.url)
    receiver.answer(Answer(429, headers={"Retry-After": "1"}))

    sent = final_payment(db, publisher, merchant)

    wait_until(lambda: status_is(db, sent.id, "delivered"), what="delivery")
    first, second = receiver.received()
    # The schedule says 0.2 s; Retry-After says 1 s, capped at the schedule's longest (0.8 s).
    assert second.at - first.at >= 0.75


def test_an_endpoint_failing_for_five_days_is_disabled_and_the_merchant_is_told(
    db: Database,
    cipher: CredentialCipher,
    publisher: Publisher,
    merchant: MerchantAccount,
    receiver: Receiver,
    mail_sink: tuple[MailSink, int],
    fast_webhooks: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an endpoint failing for six days, a merchant with an e-mail address, and SMTP
    from workers.runtime import runtime

    sink, port = mail_sink
    smtp = {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_starttls": False}
    smtp["smtp_from"] = "ops@malipo.test"
    monkeypatch.setattr(runtime(), "settings", fast_webhooks.model_copy(update=smtp))
    endpoint_at(db, cipher, merchant, receiver.url)
    with db.transaction() as session:
        failing, owner = (
            session.get(WebhookEndpoint, merchant.id),
            session.get(Merchant, merchant.id),
        )
        assert failing is not None
        assert owner is not None
        failing.failing_since = datetime.now(UTC) - timedelta(days=6)
        owner.email = "payments@shop.test"
    receiver.answer(then=Answer(500))

    # When one more attempt fails
    sent = final_payment(db, publisher, merchant)

    # Then the endpoint is disabled, the event held, and the merchant told by e-mail
    wait_until(lambda: status_is(db, sent.id, "held"), what="the event held")
    quietly(receiver, 1)
    disabled = endpoint(db, merchant)
    assert not disabled.enabled
    assert "failing since" in (disabled.disabled_reason or "")
    [mail] = wait_until(lambda: sink.messages, what="the e-mail")
    assert mail.rcpt_tos == ["payments@shop.test"]
    assert receiver.url in mail.content.decode()


def test_a_merchant_without_an_endpoint_has_its_events_held(
    db: Database, publisher: Publisher, merchant: MerchantAccount
) -> None:
    sent = final_payment(db, publisher, merchant)

    # Held by the transaction that wrote it: no notify_merchant message is spent on it.
    assert sent.status == "held"
    assert sent.attempts == 0
    wait_until(lambda: status_is(db, sent.id, "held"), what="the event held")
    assert deliveries(db, sent.id) == []


# --- duplicates, resend, replay ----------------------------------------------------------------


def test_duplicate_messages_for_one_event_make_one_delivery(
    db: Database,
    cipher: CredentialCipher,
    publisher: Publisher,
    merchant: MerchantAccount,
    receiver: Receiver,
) -> None:
    # Given a healthy (slowish) endpoint
    endpoint_at(db, cipher, merchant, receiver.url)
    receiver.answer(then=Answer(hang_s=0.3))

    # When the event's message arrives four times (fast path, relay, redeliveries)
    sent = final_payment(db, publisher, merchant)
    for _ in range(3):
        publisher.send(NotifyMerchant(event_id=sent.id))

    # Then the receiver gets it once
    wait_until(lambda: status_is(db, sent.id, "delivered"), what="delivery")
    quietly(receiver, 1)
    assert len(deliveries(db, sent.id)) == 1


def test_resend_delivers_a_delivered_event_once_more_with_the_same_webhook_id(
    db: Database,
    cipher: CredentialCipher,
    publisher: Publisher,
    merchant: MerchantAccount,
    receiver: Receiver,
    ops: falcon.testing.TestClient,
    operator: dict[str, str],
) -> None:
    # Given a delivered event
    endpoint_at(db, cipher, merchant, receiver.url)
    sent = final_payment(db, publisher, merchant)
    wait_until(lambda: status_is(db, sent.id, "delivered"), what="delivery")

    # When an operator resends it
    answer = ops.simulate_post(f"/ops/webhooks/{sent.id}/resend", headers=operator)

    # Then it arrives once more, with the same webhook-id
    assert answer.status_code == 202, answer.text
    wait_until(lambda: len(receiver.received()) == 2, what="the resend")
    quietly(receiver, 2)
    assert [r.webhook_id for r in receiver.received()] == [sent.webhook_id] * 2
    listing = ops.simulate_get(
        "/ops/webhooks", params={"merchant_id": str(merchant.id)}, headers=operator
    )
    assert listing.status_code == 200, listing.text
    [shown] = listing.json["events"]
    assert (shown["webhook_id"], shown["status"]) == (sent.webhook_id, "delivered")
    assert [d["succeeded"] for d in shown["deliveries"]] == [True, True]


def test_resend_of_an_unknown_event_is_404(
    ops: falcon.testing.TestClient, operator: dict[str, str]
) -> None:
    assert ops.simulate_post("/ops/webhooks/999999999/resend", headers=operator).status_code == 404


def test_replay_resends_exactly_the_undelivered_events_since_then(
    db: Database,
    cipher: CredentialCipher,
    publisher: Publisher,
    merchant: MerchantAccount,
    receiver: Receiver,
    ops: falcon.testing.TestClient,
    operator: dict[str, str],
) -> None:
    # Given, before T, one delivered and one held event
    endpoint_at(db, cipher, merchant, receiver.url)
    old_delivered = final_payment(db, publisher, merchant)
    wait_until(lambda: status_is(db, old_delivered.id, "delivered"), what="delivery")
    switch(db, merchant, enabled=False)
    old_held = final_payment(db, publisher, merchant)
    wait_until(lambda: status_is(db, old_held.id, "held"), what="held")
    time.sleep(0.05)
    since = datetime.now(UTC)
    time.sleep(0.05)
    # and after T one delivered, one held and one failed event
    switch(db, merchant, enabled=True)
    delivered = final_payment(db, publisher, merchant)
    wait_until(lambda: status_is(db, delivered.id, "delivered"), what="delivery")
    switch(db, merchant, enabled=False)
    held = final_payment(db, publisher, merchant)
    wait_until(lambda: status_is(db, held.id, "held"), what="held")
    switch(db, merchant, enabled=True)
    receiver.answer(then=Answer(500))
    failed = final_payment(db, publisher, merchant)
    wait_until(lambda: status_is(db, failed.id, "failed"), what="failure")
    receiver.answer(then=Answer(200))
    receiver.clear()

    # When the operator replays since T
    answer = ops.simulate_post(
        "/ops/webhooks/replay",
        json={"merchant_id": str(merchant.id), "since": since.isoformat()},
        headers=operator,
    )

    # Then exactly the undelivered events since T arrive, once each, with a fresh schedule
    assert answer.status_code == 202, answer.text
    assert answer.json == {"replayed": 2}
    for replayed in (held, failed):
        wait_until(lambda e=replayed: status_is(db, e.id, "delivered"), what="replayed delivery")
    quietly(receiver, 2)
    assert sorted(r.webhook_id for r in receiver.received()) == sorted(
        [held.webhook_id, failed.webhook_id]
    )
    assert event(db, failed.id).attempts == 1
    assert event(db, old_held.id).status == "held"


def test_replay_needs_a_merchant_and_a_time(
    ops: falcon.testing.TestClient, operator: dict[str, str], merchant: MerchantAccount
) -> None:
    missing_since = {"merchant_id": str(merchant.id)}
    missing_merchant = {"since": datetime.now(UTC).isoformat()}
    for body in (missing_since, missing_merchant, {**missing_since, "since": "yesterday"}):
        answer = ops.simulate_post("/ops/webhooks/replay", json=body, headers=operator)
        assert answer.status_code == 400, body


def test_an_attempt_whose_worker_died_is_written_off_after_its_lease_and_sent_again(
    db: Database,
    cipher: CredentialCipher,
    publisher: Publisher,
    merchant: MerchantAccount,
    receiver: Receiver,
) -> None:
    from workers.runtime import runtime
    from workers.webhooks import INTERRUPTED, claim_attempt, lease

    # Given an event whose attempt a worker claimed and then died (no outcome recorded)
    endpoint_at(db, cipher, merchant, receiver.url)
    switch(db, merchant, enabled=False)
    sent = final_payment(db, publisher, merchant)
    wait_until(lambda: status_is(db, sent.id, "held"), what="held")
    switch(db, merchant, enabled=True)
    with db.transaction() as session:
        claimed = claim_attempt(session, runtime(), sent.id, force=False, now=datetime.now(UTC))
    assert claimed is not None

    # When its message comes again while the attempt's lease runs, nothing is sent
    publisher.send(NotifyMerchant(event_id=sent.id))
    quietly(receiver, 0)

    # Then, once the lease has run out, the next message writes the attempt off and delivers
    with db.transaction() as session:
        [open_row] = session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.event_id == sent.id)
        ).all()
        open_row.attempted_at -= lease(runtime()) + timedelta(seconds=1)
    publisher.send(NotifyMerchant(event_id=sent.id))
    wait_until(lambda: status_is(db, sent.id, "delivered"), what="delivery")
    quietly(receiver, 1)
    rows = deliveries(db, sent.id)
    assert [(r.attempt, r.status_code, r.error) for r in rows] == [
        (1, None, INTERRUPTED),
        (2, 200, None),
    ]


def test_production_refuses_plain_http_endpoints(
    db: Database, cipher: CredentialCipher, merchant: MerchantAccount
) -> None:
    with db.transaction() as session, pytest.raises(EndpointRefused, match="https"):
        set_endpoint(session, cipher, merchant.id, "http://shop.test/hooks", production=True)
    with db.transaction() as session:
        assert set_endpoint(session, cipher, merchant.id, "https://shop.test/h", production=True)
