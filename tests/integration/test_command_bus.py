"""``malipo.commands``: signed commands carried out as their HTTP twins, the rest refused."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pika.exceptions
import pytest
from click.testing import CliRunner
from pydantic import SecretStr
from sqlalchemy import func, select

from shared.bus_commands import COMMANDS_EXCHANGE, COMMANDS_QUEUE, REFUSED_QUEUE, envelope
from shared.cli import main as malipo
from shared.client import (
    CommandPublisher,
    PaymentCreate,
    PaymentRetry,
    PayoutCreate,
    RefundCreate,
)
from shared.crypto import CredentialCipher, canonical_json, payment_id_for
from shared.db.models import AcceptedCommand, ApiKey, AuditRecord, RefusedCommand
from shared.db.session import Database
from shared.settings import Settings
from shared.webhooks import signature
from tests.conftest import TEST_ENV, ApiClient, MerchantAccount, make_merchant
from tests.support.command_bus import bus_key, refused, replies, reply_queue, running_consumer
from tests.support.env import free_port, free_port_outside_ephemeral_range
from tests.support.processes import ManagedProcess
from tests.support.rabbit import Rabbit
from tests.support.tcp_proxy import TcpProxy

BROKER_URL = TEST_ENV["MALIPO_BROKER_URL"]


@pytest.fixture
def consumer(
    settings: Settings, db: Database, cipher: CredentialCipher, broker: Any
) -> Iterator[None]:
    with running_consumer(settings, db, cipher):
        yield


def payment(key: str, phone: str = "0712345678") -> PaymentCreate:
    return PaymentCreate(
        idempotency_key=key, amount=100, currency="KES", phone=phone, reference=key[:60]
    )


def accepted_count(db: Database, merchant_id: uuid.UUID, keys: list[str]) -> int:
    ids = [payment_id_for(merchant_id, key) for key in keys]
    with db.transaction() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(AcceptedCommand)
                .where(AcceptedCommand.payment_id.in_(ids))
            )
            or 0
        )


def refusal_counts(db: Database, prefix: str) -> dict[str, int]:
    with db.transaction() as session:
        rows = session.execute(
            select(RefusedCommand.reason, func.sum(RefusedCommand.count))
            .where(RefusedCommand.key_prefix == prefix)
            .group_by(RefusedCommand.reason)
        )
        return {reason: int(count) for reason, count in rows}


def test_a_payment_command_gets_the_http_answer_and_the_same_answer_again(
    db: Database,
    settings: Settings,
    cipher: CredentialCipher,
    merchant: MerchantAccount,
    rabbit: Rabbit,
    consumer: None,
    ingress_server: ManagedProcess,
    api: ApiClient,
) -> None:
    token = bus_key(db, settings, cipher, merchant.id)
    key = f"bus-{uuid.uuid4().hex[:10]}"
    with reply_queue(rabbit) as queue:
        with CommandPublisher(BROKER_URL, token, str(merchant.id), reply_to=queue) as bus:
            first = bus.publish(payment(key))
            again = bus.publish(payment(key))  # a replay: a new message, the same key
        got = {reply.correlation_id: reply for reply in replies(rabbit, queue, 2)}
    assert set(got) == {first, again}
    assert got[first].status == got[again].status == 202
    assert got[first].body == got[again].body
    assert got[first].body == {"id": str(payment_id_for(merchant.id, key)), "status": "accepted"}
    assert accepted_count(db, merchant.id, [key]) == 1
    # The HTTP API, asked with the same key by the same merchant, answers the same body.
    over_http = api.post(
        "/v1/payments",
        json=payment(key).data(),
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
    )
    assert over_http.status_code == 202
    assert over_http.json() == got[first].body
    rabbit.purge("payments")


def test_an_invalid_command_gets_the_http_error_as_its_answer(
    db: Database,
    settings: Settings,
    cipher: CredentialCipher,
    merchant: MerchantAccount,
    rabbit: Rabbit,
    consumer: None,
    ingress_server: ManagedProcess,
    api: ApiClient,
) -> None:
    token = bus_key(db, settings, cipher, merchant.id)
    key = f"bus-{uuid.uuid4().hex[:10]}"
    bad_phone = payment(key, phone="12")  # fits the schema; the HTTP rules refuse it
    unpaid = str(uuid.uuid4())
    with reply_queue(rabbit) as queue:
        with CommandPublisher(BROKER_URL, token, str(merchant.id), reply_to=queue) as bus:
            sent = {
                bus.publish(bad_phone): ("POST", "/v1/payments", bad_phone.data()),
                bus.publish(
                    RefundCreate(idempotency_key=key, payment_id=unpaid, reason="returned")
                ): ("POST", f"/v1/payments/{unpaid}/refunds", {"reason": "returned"}),
                bus.publish(
                    PayoutCreate(
                        idempotency_key=key,
                        amount=5_000,
                        currency="KES",
                        phone="0712345678",
                        reason="settlement",
                    )
                ): (
                    "POST",
                    "/v1/payouts",
                    {
                        "amount": 5_000,
                        "currency": "KES",
                        "phone": "0712345678",
                        "reason": "settlement",
                    },
                ),
                bus.publish(PaymentRetry(payment_id=unpaid)): (
                    "POST",
                    f"/v1/payments/{unpaid}/retry",
                    None,
                ),
            }
        got = {reply.correlation_id: reply for reply in replies(rabbit, queue, len(sent))}
    for message_id, (_, path, body) in sent.items():
        over_http = api.post(
            path,
            json=body,
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"{key}-http"},
        )
        assert over_http.status_code >= 400, path
        assert (got[message_id].status, got[message_id].body) == (
            over_http.status_code,
            over_http.json(),
        ), path
    assert accepted_count(db, merchant.id, [key]) == 0


def raw_publish(
    rabbit: Rabbit, routing_key: str, body: bytes, headers: dict[str, Any], reply_to: str
) -> str:
    message_id = str(uuid.uuid4())
    with rabbit.channel() as channel:
        channel.confirm_delivery()
        channel.basic_publish(
            COMMANDS_EXCHANGE,
            routing_key,
            body,
            pika.BasicProperties(message_id=message_id, reply_to=reply_to, headers=headers),
            mandatory=True,
        )
    return message_id


def test_unsigned_forged_stale_over_scoped_and_malformed_commands_are_refused_and_counted(
    db: Database,
    settings: Settings,
    cipher: CredentialCipher,
    merchant: MerchantAccount,
    rabbit: Rabbit,
    consumer: None,
) -> None:
    token = bus_key(db, settings, cipher, merchant.id)
    read_only = bus_key(db, settings, cipher, merchant.id, ("payments:read",))
    http_only = bus_key(db, settings, cipher, merchant.id, bus=False)
    other = make_merchant(db, settings, cipher)
    prefix = token[:16]
    keys = {reason: f"refused-{reason}-{uuid.uuid4().hex[:8]}" for reason in range(9)}
    with reply_queue(rabbit) as queue:
        bus = CommandPublisher(BROKER_URL, token, str(merchant.id), reply_to=queue)
        forger = CommandPublisher(
            BROKER_URL, f"{prefix}_{'x' * 43}", str(merchant.id), reply_to=queue
        )
        body = bus.body(payment(keys[0]))
        now = int(time.time())
        wanted = {
            raw_publish(rabbit, "payment.create", body, {}, queue): "unsigned",
            forger.publish(payment(keys[1])): "bad_signature",
            bus.publish(payment(keys[2]), now=time.time() - 600): "stale",
            CommandPublisher(BROKER_URL, read_only, str(merchant.id), reply_to=queue).publish(
                payment(keys[3])
            ): "scope_missing",
            CommandPublisher(BROKER_URL, token, str(other.id), reply_to=queue).publish(
                payment(keys[4])
            ): "wrong_merchant",
            CommandPublisher(BROKER_URL, http_only, str(merchant.id), reply_to=queue).publish(
                payment(keys[5])
            ): "key_not_for_bus",
        }
        # Signed correctly, but not a command: a string amount, an unknown routing key.
        for routing_key, document, reason in (
            (
                "payment.create",
                envelope(
                    "payment.create",
                    str(merchant.id),
                    {**payment(keys[6]).data(), "amount": "1"},
                    keys[6],
                ),
                "malformed",
            ),
            (
                "payment.delete",
                envelope("payment.create", str(merchant.id), {}, keys[7]),
                "unknown_command",
            ),
        ):
            signed = canonical_json(document)
            message_id = str(uuid.uuid4())
            headers = {
                "malipo-key": prefix,
                "malipo-timestamp": str(now),
                "malipo-signature": signature(bus.secret, message_id, now, signed),
            }
            with rabbit.channel() as channel:
                channel.confirm_delivery()
                channel.basic_publish(
                    COMMANDS_EXCHANGE,
                    routing_key,
                    signed,
                    pika.BasicProperties(message_id=message_id, reply_to=queue, headers=headers),
                    mandatory=True,
                )
            wanted[message_id] = reason
        # An answer may only go to a service's own queue, never into malipo's.
        into_malipo = CommandPublisher(
            BROKER_URL, token, str(merchant.id), reply_to="payments"
        ).publish(payment(keys[8]))
        wanted[into_malipo] = "malformed"
        bus.close()
        forger.close()

        got = refused(rabbit, *wanted)
        # The senders that proved who they are are told why (where they may be told);
        # forgers and unknown keys hear nothing.
        told = {
            message_id
            for message_id, reason in wanted.items()
            if reason not in ("unsigned", "bad_signature", "key_not_for_bus")
            and message_id != into_malipo
        }
        answered = {r.correlation_id: r for r in replies(rabbit, queue, len(told))}
    assert {message_id: item.reason for message_id, item in got.items()} == wanted
    assert "reply_to" in got[into_malipo].detail
    assert set(answered) == told
    for reply in answered.values():
        assert reply.status == 400
        assert reply.body["error"]["code"] == f"command_{wanted[reply.correlation_id]}"
    assert accepted_count(db, merchant.id, list(keys.values())) == 0
    assert accepted_count(db, other.id, list(keys.values())) == 0
    assert refusal_counts(db, prefix) == {
        "bad_signature": 1,
        "stale": 1,
        "wrong_merchant": 1,
        "malformed": 2,
        "unknown_command": 1,
    }
    assert refusal_counts(db, read_only[:16]) == {"scope_missing": 1}
    assert refusal_counts(db, http_only[:16]) == {"key_not_for_bus": 1}
    assert refusal_counts(db, "").get("unsigned", 0) >= 1
    # What an operator reads: the same counts.
    listed = CliRunner().invoke(malipo, ["bus", "refusals", "--hours", "1"], catch_exceptions=False)
    rows = json.loads(listed.output)["refused"]
    assert {"reason": "scope_missing", "key_prefix": read_only[:16], "count": 1} in rows
    assert {"reason": "malformed", "key_prefix": prefix, "count": 2} in rows


def publish(channel: Any, exchange: str, routing_key: str) -> None:
    channel.confirm_delivery()  # a refusal is then raised here, not lost
    channel.basic_publish(exchange, routing_key, b"{}")


@pytest.fixture
def service_user(broker: Any) -> Iterator[tuple[str, str]]:
    name = f"svc-test-{uuid.uuid4().hex[:6]}"
    result = CliRunner().invoke(malipo, ["bus", "service", name, "--apply"])
    assert result.exit_code == 0, result.output + (result.stderr or "")
    password = result.stderr.rsplit(": ", 1)[1].strip()
    try:
        yield name, password
    finally:
        subprocess.run(["rabbitmqctl", "delete_user", name], capture_output=True, check=False)


def test_a_service_user_publishes_commands_and_reads_only_its_own_queues(
    service_user: tuple[str, str], rabbit: Rabbit, consumer: None
) -> None:
    name, password = service_user
    url = BROKER_URL.replace("guest:guest@", f"{name}:{password}@")
    parameters = pika.URLParameters(url)

    def attempt(action: Any) -> bool:
        connection = pika.BlockingConnection(parameters)
        try:
            action(connection.channel())
            return True
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 403:  # ACCESS_REFUSED, nothing else
                raise
            return False
        finally:
            if connection.is_open:
                connection.close()

    own = f"svc.{name}.events"
    assert attempt(lambda ch: ch.queue_declare(own, durable=True))
    assert attempt(lambda ch: ch.queue_bind(own, "malipo.events", routing_key="payment.#"))
    assert attempt(lambda ch: ch.basic_get(own, auto_ack=True))
    assert attempt(lambda ch: publish(ch, COMMANDS_EXCHANGE, "payment.create"))
    # Not malipo's queues, not the event exchange, not another service's queue.
    assert not attempt(lambda ch: ch.basic_get("payments", auto_ack=True))
    assert not attempt(lambda ch: ch.basic_get(REFUSED_QUEUE, auto_ack=True))
    assert not attempt(lambda ch: publish(ch, "malipo.events", "payment.succeeded.x"))
    assert not attempt(lambda ch: publish(ch, "", "payments"))
    assert not attempt(lambda ch: ch.queue_declare("svc.someone-else.replies", durable=True))
    rabbit.take_messages(REFUSED_QUEUE)
    with rabbit.channel() as channel:
        channel.queue_delete(own)


def test_while_postgresql_is_unreachable_a_command_waits_and_is_then_answered(
    db: Database,
    settings: Settings,
    cipher: CredentialCipher,
    merchant: MerchantAccount,
    rabbit: Rabbit,
    broker: Any,
) -> None:
    token = bus_key(db, settings, cipher, merchant.id)
    key = f"bus-outage-{uuid.uuid4().hex[:8]}"
    unreachable = Database(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere")
    with reply_queue(rabbit) as queue:
        with running_consumer(settings, unreachable, cipher):
            with CommandPublisher(BROKER_URL, token, str(merchant.id), reply_to=queue) as bus:
                message_id = bus.publish(payment(key))
            time.sleep(3)  # the consumer tries, and puts it back, a few times
            assert rabbit.take_messages(queue) == []  # no answer: not refused for an outage
        assert rabbit.count(COMMANDS_QUEUE) == 1  # it waits in the queue
        with running_consumer(settings, db, cipher):
            (answer,) = replies(rabbit, queue, 1)
    assert answer.correlation_id == message_id
    assert answer.status == 202
    assert accepted_count(db, merchant.id, [key]) == 1
    rabbit.purge("payments")


def test_a_key_issued_for_the_bus_from_the_cli_signs_commands_and_says_so(
    db: Database,
    merchant: MerchantAccount,
    rabbit: Rabbit,
    consumer: None,
) -> None:
    made = CliRunner().invoke(
        malipo,
        ["merchant", "key", "create", str(merchant.id), "--bus", "--scope", "payments:write"],
        catch_exceptions=False,
    )
    token = json.loads(made.output)["api_key"]
    listed = CliRunner().invoke(
        malipo, ["merchant", "key", "list", str(merchant.id)], catch_exceptions=False
    )
    by_prefix = {row["prefix"]: row for row in json.loads(listed.output)}
    assert by_prefix[token[:16]]["bus"] is True
    assert by_prefix[merchant.api_key[:16]]["bus"] is False
    with db.transaction() as session:
        row = session.scalars(select(ApiKey).where(ApiKey.prefix == token[:16])).one()
        created = session.scalars(
            select(AuditRecord).where(
                AuditRecord.subject_id == str(row.id), AuditRecord.action == "api_key.created"
            )
        ).one()
        assert row.signing_ciphertext is not None
        assert token.split("_", 2)[2].encode() not in row.signing_ciphertext
    assert created.detail["bus"] is True
    key = f"cli-bus-{uuid.uuid4().hex[:8]}"
    with reply_queue(rabbit) as queue:
        with CommandPublisher(BROKER_URL, token, str(merchant.id), reply_to=queue) as bus:
            bus.publish(payment(key))
        (answer,) = replies(rabbit, queue, 1)
    assert answer.status == 202
    rabbit.purge("payments")


def test_the_consumer_comes_back_after_rabbitmq_goes_away(
    db: Database,
    settings: Settings,
    cipher: CredentialCipher,
    merchant: MerchantAccount,
    rabbit: Rabbit,
    broker: Any,
) -> None:
    token = bus_key(db, settings, cipher, merchant.id)
    key = f"bus-reconnect-{uuid.uuid4().hex[:8]}"
    proxy = TcpProxy(free_port_outside_ephemeral_range(), ("127.0.0.1", 5672))
    proxy.open()
    through_proxy = settings.model_copy(
        update={
            "broker_url": SecretStr(BROKER_URL.replace("127.0.0.1:5672", f"127.0.0.1:{proxy.port}"))
        }
    )
    try:
        with reply_queue(rabbit) as queue, running_consumer(through_proxy, db, cipher) as consumer:
            consumer.consuming.clear()
            proxy.close()  # RabbitMQ gone: the consumer's connection is cut
            time.sleep(2)
            proxy.open()
            assert consumer.consuming.wait(30), "the consumer never consumed again"
            with CommandPublisher(BROKER_URL, token, str(merchant.id), reply_to=queue) as bus:
                message_id = bus.publish(payment(key))
            (answer,) = replies(rabbit, queue, 1)
    finally:
        proxy.close()
    assert answer.correlation_id == message_id
    assert answer.status == 202
    rabbit.purge("payments")
