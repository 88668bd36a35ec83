"""A Python service's client of the malipo bus: signed commands in, events out.

    from shared.client import CommandPublisher, PaymentCreate, consume_events

    with CommandPublisher(broker_url, api_key, merchant_id, reply_to="svc.orders.replies") as bus:
        bus.publish(PaymentCreate(idempotency_key="order-1", amount=100, currency="KES",
                                  phone="0712345678", reference="order-1"))

Commands are checked against their published schema before they leave, signed with
the API key's command-signing secret, and published with confirms and mandatory
routing: :meth:`CommandPublisher.publish` returns only once RabbitMQ has the command
(and raises :class:`CommandNotSent` otherwise, so the caller sends it again with the
same idempotency key). Answers arrive on ``reply_to`` (:func:`consume_replies`);
events are consumed with :func:`consume_events` (manual acks, dedupe on event id).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any, ClassVar

import pika
import pika.exceptions

from shared.bus import Event, SeenEvents, consume_events, consume_queue
from shared.bus_commands import (
    COMMANDS_EXCHANGE,
    KEY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    envelope,
    schema_errors,
    signing_secret,
)
from shared.crypto import canonical_json, split_api_key
from shared.messages import broker_parameters
from shared.webhooks import signature

__all__ = [
    "CommandNotSent",
    "CommandPublisher",
    "Event",
    "PaymentCreate",
    "PaymentRetry",
    "PayoutCreate",
    "RefundCreate",
    "Reply",
    "SeenEvents",
    "consume_events",
    "consume_replies",
    "publish_command",
]


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


@dataclass(frozen=True)
class PaymentCreate:
    """``payment.create``: the body of ``POST /v1/payments`` and its Idempotency-Key."""

    command: ClassVar[str] = "payment.create"
    idempotency_key: str
    amount: int
    currency: str
    phone: str
    reference: str
    description: str | None = None
    gateway: str | None = None
    flow: str | None = None
    customer_email: str | None = None
    # Hosted pages: customer_first_name, customer_last_name, city, success_url, failure_url.
    extra: dict[str, str] = field(default_factory=dict)

    def data(self) -> dict[str, Any]:
        fields = asdict(self)
        del fields["idempotency_key"], fields["extra"]
        return {**_present(fields), **self.extra}


@dataclass(frozen=True)
class PaymentRetry:
    """``payment.retry``: ``POST /v1/payments/{id}/retry``."""

    command: ClassVar[str] = "payment.retry"
    payment_id: str
    idempotency_key: None = None

    def data(self) -> dict[str, Any]:
        return {"payment_id": self.payment_id}


@dataclass(frozen=True)
class RefundCreate:
    """``refund.create``: ``POST /v1/payments/{id}/refunds`` (no amount: what is left)."""

    command: ClassVar[str] = "refund.create"
    idempotency_key: str
    payment_id: str
    reason: str
    amount: int | None = None

    def data(self) -> dict[str, Any]:
        return _present(
            {"payment_id": self.payment_id, "amount": self.amount, "reason": self.reason}
        )


@dataclass(frozen=True)
class PayoutCreate:
    """``payout.create``: ``POST /v1/payouts``."""

    command: ClassVar[str] = "payout.create"
    idempotency_key: str
    amount: int
    currency: str
    phone: str
    reason: str
    gateway: str | None = None

    def data(self) -> dict[str, Any]:
        fields = asdict(self)
        del fields["idempotency_key"]
        return _present(fields)


Command = PaymentCreate | PaymentRetry | RefundCreate | PayoutCreate


@dataclass(frozen=True)
class Reply:
    """malipo's answer to a command: the HTTP API's status and body."""

    correlation_id: str
    command: str
    status: int
    body: dict[str, Any]

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


class CommandNotSent(Exception):
    """RabbitMQ did not take the command (refused, unroutable or unreachable): send it
    again (with the same idempotency key, so it cannot happen twice)."""


class CommandPublisher:
    """Publish signed commands for one merchant over one connection (not thread-safe)."""

    def __init__(
        self, broker_url: str, api_key: str, merchant_id: str, *, reply_to: str | None = None
    ) -> None:
        parts = split_api_key(api_key)
        if parts is None:
            raise ValueError("api_key is not a malipo API key")
        self.prefix = parts[0]
        self.secret = signing_secret(api_key)
        self.merchant_id = str(merchant_id)
        self.reply_to = reply_to
        self.parameters = broker_parameters(broker_url)
        self._connection: Any = None
        self._channel: Any = None

    def body(self, command: Command) -> bytes:
        """The signed bytes of ``command``; ValueError when it breaks its schema."""
        document = envelope(
            command.command, self.merchant_id, command.data(), command.idempotency_key
        )
        problems = schema_errors(command.command, document)
        if problems:
            raise ValueError(f"{command.command} does not fit its schema: {'; '.join(problems)}")
        return canonical_json(document)

    def publish(
        self,
        command: Command,
        *,
        message_id: str | None = None,
        correlation_id: str | None = None,
        now: float | None = None,
    ) -> str:
        """Publish ``command``; its message id (the reply's correlation id unless given)."""
        body = self.body(command)
        message_id = message_id or str(uuid.uuid4())
        timestamp = int(now if now is not None else time.time())
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=message_id,
            correlation_id=correlation_id or message_id,
            reply_to=self.reply_to,
            timestamp=timestamp,
            headers={
                KEY_HEADER: self.prefix,
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: signature(self.secret, message_id, timestamp, body),
            },
        )
        try:
            self._open().basic_publish(
                COMMANDS_EXCHANGE, command.command, body, properties, mandatory=True
            )
        except (pika.exceptions.AMQPError, OSError) as exc:
            self.close()
            raise CommandNotSent(repr(exc)[:300]) from exc
        except BaseException:
            self.close()  # interrupted: a confirm may be in flight; never reuse the channel
            raise
        return message_id

    def _open(self) -> Any:
        if self._channel is None or self._channel.is_closed:
            self._connection = pika.BlockingConnection(self.parameters)
            self._channel = self._connection.channel()
            # A service's own queue (svc.*): declared so answers wait there; malipo answers
            # nowhere else (a direct reply-to pseudo-queue needs no declaring).
            if self.reply_to and self.reply_to.startswith("svc."):
                self._channel.queue_declare(self.reply_to, durable=True)  # answers wait there
            self._channel.confirm_delivery()
        return self._channel

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                connection.close()

    def __enter__(self) -> CommandPublisher:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def publish_command(
    broker_url: str,
    api_key: str,
    merchant_id: str,
    command: Command,
    *,
    reply_to: str | None = None,
) -> str:
    """Publish one command on a connection of its own; its message id."""
    with CommandPublisher(broker_url, api_key, merchant_id, reply_to=reply_to) as publisher:
        return publisher.publish(command)


def consume_replies(
    broker_url: str,
    queue: str,
    handle: Callable[[Reply], None],
    *,
    should_stop: Callable[[], bool] = lambda: False,
    idle_s: float = 1.0,
    prefetch: int = 100,
) -> None:
    """Consume answers from ``queue`` (declared durable here) until stopped; each is
    acknowledged after ``handle`` returned."""

    def on_message(method: Any, properties: Any, body: bytes) -> None:
        headers = properties.headers or {}
        handle(
            Reply(
                correlation_id=str(properties.correlation_id),
                command=str(headers.get("command", "")),
                status=int(headers.get("status", 0)),
                body=json.loads(body),
            )
        )

    consume_queue(
        broker_url,
        queue,
        on_message,
        setup=lambda channel: channel.queue_declare(queue, durable=True),
        should_stop=should_stop,
        idle_s=idle_s,
        prefetch=prefetch,
    )
