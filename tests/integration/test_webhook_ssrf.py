"""Merchant webhook URLs cannot reach into malipo's network (issue 13, items 1 and 8).

A merchant names its endpoint, so it can name 127.0.0.1, a 10.x host, the cloud
metadata address, or a name it re-points after registration. Registration
refuses what resolves to a non-public address; every delivery resolves again,
refuses, and records the refusal as a failed attempt with a short fixed reason;
nothing reaches the local receiver. What a merchant sees of failures is a status
code and such a reason, never the answer's body; logs never carry a URL's query.

Resolution is faked only through ``shared.egress.resolve`` (the one look-up a
delivery makes), or real: ``localhost`` resolves to loopback.
"""

from __future__ import annotations

import io
import json
import socket
import uuid
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

import falcon.testing
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from shared import egress
from shared.cli import main as malipo
from shared.crypto import CredentialCipher
from shared.db.models import AuditRecord, WebhookDelivery, WebhookEndpoint
from shared.db.session import Database
from shared.egress import LINK_LOCAL, LOOPBACK, PRIVATE, REFUSED
from shared.merchants import issue_api_key
from shared.messages import Publisher
from shared.settings import Settings
from shared.webhooks import CONNECTION_REFUSED, EndpointRefused, set_endpoint
from tests.conftest import MerchantAccount
from tests.integration.test_webhooks import (
    Answer,
    Receiver,
    deliveries,
    final_payment,
    status_is,
)
from tests.support.app import ingress_client
from tests.support.env import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.usefixtures("worker")

PUBLIC = "93.184.216.34"
TOKEN = "tok-5ecr3t-9f1c2a7d"  # a merchant's URL token, to be kept out of logs
SIG = "sig0a1b2c3d4e5f6789"


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    endpoint.thread.start()
    yield endpoint
    endpoint.server.shutdown()
    endpoint.server.server_close()


@pytest.fixture
def publisher(broker: Any) -> Publisher:
    return Publisher(broker)


@pytest.fixture(autouse=True)
def strict_workers(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Workers with no allow-list (as in production), a short schedule and a 1 s timeout."""
    from workers.runtime import runtime

    rt = runtime()
    strict = rt.settings.model_copy(
        update={
            "webhook_allow_hosts": "",
            "webhook_retry_schedule_s": "0.2,0.4",
            "webhook_timeout_s": 1.0,
        }
    )
    monkeypatch.setattr(rt, "settings", strict)
    monkeypatch.setenv("MALIPO_WEBHOOK_ALLOW_HOSTS", "")  # the CLI reads the environment
    return strict


class Resolver:
    """``shared.egress.resolve`` with answers a test sets per name; others resolve for real."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.answers: dict[str, list[str]] = {}
        self.asked: list[str] = []
        self.real = egress.resolve
        monkeypatch.setattr(egress, "resolve", self)

    def __call__(self, host: str, port: int) -> list[IPv4Address | IPv6Address]:
        self.asked.append(host)
        if host in self.answers:
            return [ip_address(a) for a in self.answers[host]]
        return self.real(host, port)


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    return Resolver(monkeypatch)


def cli_set(merchant: MerchantAccount, url: str) -> tuple[int, str]:
    result = CliRunner().invoke(malipo, ["webhook", "set", str(merchant.id), url])
    return result.exit_code, result.output


def stored_endpoint(db: Database, merchant: MerchantAccount) -> WebhookEndpoint | None:
    with db.transaction() as session:
        return session.get(WebhookEndpoint, merchant.id)


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (connections are refused)."""
    port = free_port()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    return port


# --- registration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hook",
        "http://localhost:{port}/hook",
        "http://[::1]:{port}/hook",
        "http://[::ffff:127.0.0.1]:{port}/hook",
        "http://2130706433:{port}/hook",
        "http://169.254.169.254/latest/meta-data/",
    ],
)
def test_registering_a_local_url_is_refused(
    db: Database, cipher: CredentialCipher, merchant: MerchantAccount, url: str
) -> None:
    url = url.format(port=free_port())
    with db.transaction() as session, pytest.raises(EndpointRefused, match="refused: the endpoint"):
        set_endpoint(session, cipher, merchant.id, url, production=False)
    code, output = cli_set(merchant, url)
    assert code != 0
    assert "refused: the endpoint resolves to" in output
    assert stored_endpoint(db, merchant) is None


def test_registering_a_name_that_resolves_to_a_private_address_is_refused(
    db: Database, cipher: CredentialCipher, merchant: MerchantAccount, resolver: Resolver
) -> None:
    resolver.answers["intranet.shop.example"] = ["10.20.30.40"]
    url = "https://intranet.shop.example/hooks/malipo"
    with db.transaction() as session, pytest.raises(EndpointRefused) as refused:
        set_endpoint(session, cipher, merchant.id, url, production=True)
    assert str(refused.value) == REFUSED[PRIVATE]
    assert "10.20.30.40" not in str(refused.value)
    code, output = cli_set(merchant, url)
    assert (code, REFUSED[PRIVATE] in output) == (1, True)
    assert stored_endpoint(db, merchant) is None
    assert "intranet.shop.example" in resolver.asked


def test_the_sandbox_allow_list_admits_a_named_local_host(
    db: Database,
    cipher: CredentialCipher,
    merchant: MerchantAccount,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    with db.transaction() as session:
        assert set_endpoint(
            session, cipher, merchant.id, url, production=False, allowed_hosts=["127.0.0.1"]
        )
    monkeypatch.setenv("MALIPO_WEBHOOK_ALLOW_HOSTS", "127.0.0.1,localhost")
    code, output = cli_set(merchant, url.replace("127.0.0.1", "localhost"))
    assert code == 0, output


# --- delivery: resolved again, checked, refused, recorded -------------------------------------


@pytest.mark.parametrize(
    ("name", "at_send_time", "reason"),
    [
        ("localhost", None, REFUSED[LOOPBACK]),  # the real resolver: loopback
        ("hooks.shop.example", [PUBLIC, "10.0.0.9"], REFUSED[PRIVATE]),  # one bad address of two
        ("hooks.shop.example", ["::ffff:169.254.169.254"], REFUSED[LINK_LOCAL]),
    ],
    ids=["localhost", "one-private-of-two", "mapped-metadata-address"],
)
def test_a_name_public_at_registration_but_not_at_send_time_is_refused_and_recorded(
    db: Database,
    cipher: CredentialCipher,
    publisher: Publisher,
    merchant: MerchantAccount,
    receiver: Receiver,
    resolver: Resolver,
    name: str,
    at_send_time: list[str] | None,
    reason: str,
) -> None:
    # Given an endpoint whose name resolved to a public address when it was registered
    port = int(receiver.server.server_address[1])
    url = f"http://{name}:{port}/hook"
    resolver.answers[name] = [PUBLIC]
    with db.transaction() as session:
        assert set_endpoint(session, cipher, merchant.id, url, production=False)
    # and that now resolves (DNS rebinding) to an address inside the network
    del resolver.answers[name]
    if at_send_time is not None:
        resolver.answers[name] = at_send_time
    resolver.asked.clear()

    # When an event is sent
    sent = final_payment(db, publisher, merchant)

    # Then every attempt is refused, recorded as a failure, and nothing reaches the receiver
    wait_until(lambda: status_is(db, sent.id, "failed"), what="the event failed")
    assert receiver.received() == []
    rows = deliveries(db, sent.id)
    assert [(r.status_code, r.error, r.succeeded, r.response_excerpt) for r in rows] == [
        (None, reason, False, None)
    ] * 3
    assert resolver.asked.count(name) == 3  # resolved once per attempt


# --- what a merchant sees of failures ---------------------------------------------------------


@pytest.fixture
def ops(settings: Settings, db: Database) -> falcon.testing.TestClient:
    return ingress_client(settings, db)


def ops_key(db: Database, settings: Settings, merchant_id: uuid.UUID | None) -> dict[str, str]:
    with db.transaction() as session:
        key = issue_api_key(
            session, settings.secret_key.get_secret_value().encode(), merchant_id, ("ops:read",)
        )
    return {"Authorization": f"Bearer {key}"}


def test_a_merchant_sees_status_codes_and_short_reasons_never_an_answers_body(
    db: Database,
    cipher: CredentialCipher,
    settings: Settings,
    publisher: Publisher,
    merchant: MerchantAccount,
    receiver: Receiver,
    ops: falcon.testing.TestClient,
    strict_workers: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from workers.runtime import runtime

    # Given a (sandbox-allowed) endpoint that answers 500 with an internal page, then 200
    monkeypatch.setattr(
        runtime(),
        "settings",
        strict_workers.model_copy(update={"webhook_allow_hosts": "127.0.0.1"}),
    )
    with db.transaction() as session:
        set_endpoint(
            session,
            cipher,
            merchant.id,
            receiver.url,
            production=False,
            allowed_hosts=["127.0.0.1"],
        )
    internal = b"<h1>admin console</h1> db_password=hunter2 instance-id i-0abc"
    receiver.answer(Answer(500, body=internal), then=Answer(200, body=b'{"ok": true}'))
    sent = final_payment(db, publisher, merchant)
    wait_until(lambda: status_is(db, sent.id, "delivered"), what="delivery")
    # and an attempt stored before errors were a fixed vocabulary
    with db.transaction() as session:
        session.add(
            WebhookDelivery(
                event_id=sent.id,
                attempt=99,
                url=receiver.url,
                succeeded=False,
                error="ConnectionError: HTTPConnectionPool(host='10.0.0.5', port=6379): ...",
                response_excerpt="-ERR wrong number of arguments",
            )
        )

    # When the merchant, and an operator, list the event's deliveries
    def shown(headers: dict[str, str]) -> list[dict[str, object]]:
        answer = ops.simulate_get(
            "/ops/webhooks", params={"merchant_id": str(merchant.id)}, headers=headers
        )
        assert answer.status_code == 200, answer.text
        [event] = answer.json["events"]
        return list(event["deliveries"])

    mine = shown(ops_key(db, settings, merchant.id))
    platform = shown(ops_key(db, settings, None))

    # Then the merchant sees codes and short reasons only, and no body at all
    assert [(d["status_code"], d["error"], d["response_excerpt"]) for d in mine] == [
        (500, None, None),
        (200, None, None),
        (None, "request failed", None),
    ]
    assert b"admin" not in json.dumps(mine).encode()
    assert "10.0.0.5" not in json.dumps(mine)
    # and the worker kept the body of the successful answer only
    assert [d["response_excerpt"] for d in platform][:2] == [None, '{"ok": true}']


# --- logs ------------------------------------------------------------------------------------


def test_logs_and_records_never_carry_a_webhook_urls_query(
    db: Database,
    cipher: CredentialCipher,
    publisher: Publisher,
    merchant: MerchantAccount,
    strict_workers: Settings,
    worker_log: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from workers.runtime import runtime

    # Given an endpoint whose URL carries tokens, on a (sandbox-allowed) port that refuses
    monkeypatch.setattr(
        runtime(),
        "settings",
        strict_workers.model_copy(update={"webhook_allow_hosts": "127.0.0.1"}),
    )
    monkeypatch.setenv("MALIPO_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")
    url = f"http://127.0.0.1:{closed_port()}/hook?token={TOKEN}&sig={SIG}"
    code, output = cli_set(merchant, url)
    assert code == 0, output

    # When an event is attempted until its schedule is spent
    sent = final_payment(db, publisher, merchant)
    wait_until(lambda: status_is(db, sent.id, "failed"), what="the event failed")

    # Then neither the log lines nor the delivery errors nor the audit row hold the tokens
    logged = worker_log.getvalue()
    assert "webhook attempt" in logged
    for secret in (TOKEN, SIG):
        assert secret not in logged
    rows = deliveries(db, sent.id)
    assert {r.error for r in rows} == {CONNECTION_REFUSED}
    with db.transaction() as session:
        [audited] = session.scalars(
            select(AuditRecord.detail).where(
                AuditRecord.action == "webhook_endpoint.set",
                AuditRecord.subject_id == str(merchant.id),
            )
        ).all()
    assert TOKEN not in json.dumps(audited)
    assert SIG not in json.dumps(audited)
    assert audited["url"].endswith("/hook?token=***&sig=***")
