"""The command bus: ``malipo.commands`` consumed, checked and carried out like HTTP commands.

The AMQP twin of the HTTP ingress. A command is authenticated (its key's signature,
fresh), authorised (the key's scopes and merchant) and checked against its schema
before anything happens; then the same code the HTTP API runs accepts it
(:class:`~ingress.resources.payments.PaymentDesk`,
:class:`~ingress.resources.transfers.TransferCommands`), so the fields, validation,
idempotency and answers are the HTTP API's own.

Nothing lost: a message is acknowledged only after its command was stored and its
answer published (or its refusal counted and published to ``malipo.commands.refused``),
both confirmed by RabbitMQ. A crash before the ack redelivers it; the same idempotency
key then gives the same answer. A transient failure (PostgreSQL or RabbitMQ down) puts
the command back for later; nothing is refused for an outage.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import pika
import pika.exceptions
import structlog
from sqlalchemy import text

from ingress.auth import Authenticator
from ingress.errors import error_body
from ingress.resources.payments import CommandLimits, PaymentDesk
from ingress.resources.transfers import TransferCommands
from shared.bus import declare_events_exchange
from shared.bus_commands import (
    COMMAND_SCOPES,
    COMMANDS_EXCHANGE,
    COMMANDS_QUEUE,
    KEY_HEADER,
    MAX_COMMAND_BYTES,
    REFUSAL_REASONS,
    REFUSED_QUEUE,
    REPLY_TO,
    SIGNATURE_HEADER,
    SIGNATURE_TOLERANCE_S,
    TIMESTAMP_HEADER,
    schema_errors,
)
from shared.crypto import CredentialCipher
from shared.db.session import Database
from shared.domain import errors
from shared.domain.errors import MalipoError, TransientError
from shared.gateways.registry import GatewayRegistry
from shared.logging import configure_process_logging
from shared.merchants import Principal, bus_key
from shared.messages import (
    BrokerUnavailable,
    Publisher,
    broker_parameters,
    build_broker,
    queue_arguments,
)
from shared.paypage import PayLinks
from shared.settings import parse_credentials_keys, settings_or_exit
from shared.transfers import Requester
from shared.webhooks import WebhookSignatureInvalid, verify

log = structlog.stdlib.get_logger(__name__)
_COUNT_REFUSAL = text(
    "INSERT INTO refused_commands (minute, reason, key_prefix, count, last_at)"
    " VALUES (date_trunc('minute', :now), :reason, :prefix, 1, :now)"
    " ON CONFLICT (minute, reason, key_prefix)"
    " DO UPDATE SET count = refused_commands.count + 1,"
    " last_at = greatest(refused_commands.last_at, excluded.last_at)"
)


def declare_commands(channel: Any, queue_type: str = "classic") -> None:
    """``malipo.commands`` (topic: every routing key reaches the consumer, which refuses
    what it does not know), its queue and the refused queue; idempotent."""
    channel.exchange_declare(COMMANDS_EXCHANGE, exchange_type="topic", durable=True)
    channel.queue_declare(COMMANDS_QUEUE, durable=True, arguments=queue_arguments(queue_type))
    channel.queue_bind(COMMANDS_QUEUE, COMMANDS_EXCHANGE, routing_key="#")
    # Refused commands wait for an operator: never dropped for a delivery count.
    refused = queue_arguments(queue_type, delivery_limit=False)
    channel.queue_declare(REFUSED_QUEUE, durable=True, arguments=refused)


class Refused(Exception):
    """A command that will not be carried out: a reason of REFUSAL_REASONS, and why."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        assert reason in REFUSAL_REASONS
        super().__init__(reason)
        self.reason = reason
        self.detail = detail or REFUSAL_REASONS[reason]


@dataclass
class Outcome:
    """What became of one command: an answer (HTTP status and body) and/or a refusal."""

    status: int
    body: dict[str, Any]
    command: str
    # The sender proved who it is: only then is an answer sent to its reply_to.
    authentic: bool
    refusal: Refused | None = None
    key_prefix: str = ""


class CommandHandler:
    """Check and carry out one command (no AMQP here: what arrived in, an Outcome out)."""

    def __init__(
        self,
        db: Database,
        cipher: CredentialCipher,
        payments: PaymentDesk,
        transfers: TransferCommands,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.cipher = cipher
        self.payments = payments
        self.transfers = transfers
        self.clock = clock

    def handle(self, routing_key: str, properties: Any, body: bytes) -> Outcome:
        """Raises :class:`TransientError` when it should be tried again later."""
        headers = properties.headers or {}
        prefix = str(headers.get(KEY_HEADER) or "")[:32]
        outcome = Outcome(0, {}, routing_key[:40], authentic=False, key_prefix=prefix)
        try:
            principal = self._authenticate(outcome, headers, properties.message_id, body)
            document = self._authorise(routing_key, principal, body, properties.reply_to)
            outcome.body = self._carry_out(routing_key, principal, document)
            outcome.status = 202
        except Refused as refusal:
            outcome.refusal = refusal
            outcome.status, outcome.body = (
                400,
                {"error": {"code": f"command_{refusal.reason}", "message": refusal.detail}},
            )
        except MalipoError as exc:
            if exc.error is errors.SERVICE_UNAVAILABLE:
                raise BrokerUnavailable(exc.detail or "the command could not be queued") from exc
            outcome.status = exc.error.http_status
            outcome.body = error_body(exc.error, exc.detail, exc.facts)
        return outcome

    def _authenticate(
        self, outcome: Outcome, headers: dict[str, Any], message_id: str | None, body: bytes
    ) -> Principal:
        """The key's principal; ``outcome.authentic`` once the signature is the key's."""
        prefix = outcome.key_prefix
        timestamp = str(headers.get(TIMESTAMP_HEADER) or "")
        signature = str(headers.get(SIGNATURE_HEADER) or "")
        if not prefix or not timestamp or not signature or not message_id:
            raise Refused("unsigned")
        with self.db.transaction() as session:
            key = bus_key(session, self.cipher, prefix)
        if key is None:
            raise Refused("unknown_key")
        if key.signing_secret is None:
            raise Refused("key_not_for_bus")
        signed = {
            "webhook-id": message_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": signature,
        }
        moment = int(timestamp) if timestamp.isdigit() and len(timestamp) <= 12 else 0
        try:  # the signature first (at its own time), then whether that time is now
            verify(key.signing_secret, body, signed, now=moment, tolerance_s=0)
        except WebhookSignatureInvalid:
            raise Refused("bad_signature") from None
        outcome.authentic = True
        if abs(self.clock() - moment) > SIGNATURE_TOLERANCE_S:
            raise Refused("stale")
        return key.principal

    @staticmethod
    def _authorise(
        routing_key: str, principal: Principal, body: bytes, reply_to: str | None
    ) -> dict[str, Any]:
        if routing_key not in COMMAND_SCOPES:
            raise Refused("unknown_command", f"no command {routing_key[:40]!r}")
        if reply_to is not None and not REPLY_TO.fullmatch(reply_to):
            raise Refused("malformed", "reply_to must name one of the service's svc.* queues")
        if len(body) > MAX_COMMAND_BYTES:
            raise Refused("malformed", f"a command is at most {MAX_COMMAND_BYTES} bytes")
        try:
            document = json.loads(body.decode("utf-8"))
        except (ValueError, RecursionError):
            raise Refused("malformed", "the body is not UTF-8 JSON") from None
        problems = schema_errors(routing_key, document)
        if problems:
            raise Refused("malformed", "; ".join(problems))
        scope = COMMAND_SCOPES[routing_key]
        if scope not in principal.scopes:
            raise Refused("scope_missing", f"this API key lacks the {scope!r} scope")
        if (
            principal.merchant_id is None
            or str(principal.merchant_id) != document["merchant_id"].lower()
        ):
            raise Refused("wrong_merchant")
        assert isinstance(document, dict)
        return document

    def _carry_out(
        self, command: str, principal: Principal, document: dict[str, Any]
    ) -> dict[str, Any]:
        merchant_id = principal.merchant_id
        assert merchant_id is not None
        data, key = dict(document["data"]), document.get("idempotency_key", "")
        who = Requester(merchant_id, principal.api_key_id, f"key:{principal.api_key_id}")
        if command == "payment.create":
            return self.payments.create(merchant_id, key, data)
        payment_id = uuid.UUID(data.pop("payment_id")) if "payment_id" in data else None
        if command == "payment.retry":
            assert payment_id is not None
            return self.payments.retry(merchant_id, payment_id)
        if command == "refund.create":
            assert payment_id is not None
            return dict(self.transfers.refund(who, payment_id, key, data))
        return dict(self.transfers.payout(who, key, data))

    def count_refusal(self, outcome: Outcome) -> None:
        assert outcome.refusal is not None
        with self.db.autocommit() as conn:
            conn.execute(
                _COUNT_REFUSAL,
                {
                    "now": datetime.now(UTC),
                    "reason": outcome.refusal.reason,
                    "prefix": outcome.key_prefix,
                },
            )


class CommandConsumer:
    """Consume ``malipo.commands`` until stopped, reconnecting when RabbitMQ goes away."""

    def __init__(
        self,
        broker_url: str,
        handler: CommandHandler,
        *,
        prefetch: int = 20,
        queue_type: str = "classic",
    ) -> None:
        self.parameters = broker_parameters(broker_url)
        self.queue_type = queue_type
        self.handler = handler
        self.prefetch = prefetch
        self.stopping = False
        self.consuming = threading.Event()  # set once the exchanges and queues are declared

    def stop(self, *_: object) -> None:
        self.stopping = True

    def run(self) -> None:
        backoff = 1.0
        while not self.stopping:
            try:
                self._consume()
                backoff = 1.0
            except (pika.exceptions.AMQPError, OSError) as exc:
                log.warning(
                    "command bus: RabbitMQ unreachable; consuming again shortly",
                    error=repr(exc)[:200],
                    retry_in_s=backoff,
                    outage="rabbitmq",
                )
                time.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    def _consume(self) -> None:
        connection = pika.BlockingConnection(self.parameters)
        try:
            channel = connection.channel()
            declare_commands(channel, self.queue_type)
            declare_events_exchange(channel)
            channel.basic_qos(prefetch_count=self.prefetch)
            answers = connection.channel()
            answers.confirm_delivery()
            log.info("command bus: consuming", queue=COMMANDS_QUEUE)
            self.consuming.set()
            for method, properties, body in channel.consume(COMMANDS_QUEUE, inactivity_timeout=1):
                if method is not None:
                    self._one(channel, answers, method, properties, body)
                if self.stopping:
                    break
            channel.cancel()
        finally:
            if connection.is_open:
                connection.close()

    def _one(self, channel: Any, answers: Any, method: Any, properties: Any, body: bytes) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            command=method.routing_key[:40], message_id=str(properties.message_id)[:100]
        )
        try:
            outcome = self.handler.handle(method.routing_key, properties, body)
        except TransientError as exc:
            self._put_back(channel, method, exc)
            return
        except Exception:
            log.exception("command refused: it could not be processed")
            outcome = Outcome(
                500,
                error_body(errors.INTERNAL_ERROR),
                method.routing_key[:40],
                authentic=False,
                refusal=Refused("internal_error"),
                key_prefix=str((properties.headers or {}).get(KEY_HEADER) or "")[:32],
            )
        if outcome.refusal is not None:
            try:
                self.handler.count_refusal(outcome)
            except TransientError as exc:
                self._put_back(channel, method, exc)
                return
            self._refuse(answers, properties, body, outcome)
        if outcome.authentic and properties.reply_to and REPLY_TO.fullmatch(properties.reply_to):
            self._answer(answers, properties, outcome)
        channel.basic_ack(method.delivery_tag)

    @staticmethod
    def _put_back(channel: Any, method: Any, exc: TransientError) -> None:
        """PostgreSQL or RabbitMQ is down for now: the command waits, nothing is refused."""
        service = "rabbitmq" if isinstance(exc, BrokerUnavailable) else "postgresql"
        log.warning(
            "command put back: a dependency is unavailable", error=str(exc)[:200], outage=service
        )
        time.sleep(1)
        channel.basic_nack(method.delivery_tag, requeue=True)

    @staticmethod
    def _refuse(answers: Any, properties: Any, body: bytes, outcome: Outcome) -> None:
        assert outcome.refusal is not None
        log.warning(
            "command refused",
            reason=outcome.refusal.reason,
            detail=outcome.refusal.detail[:300],
            key_prefix=outcome.key_prefix,
        )
        headers = {
            **(properties.headers or {}),
            "refusal_reason": outcome.refusal.reason,
            "refusal_detail": outcome.refusal.detail[:500],
            "refused_at": datetime.now(UTC).isoformat(),
            "routing_key": outcome.command,
        }
        answers.basic_publish(
            "",
            REFUSED_QUEUE,
            body,
            pika.BasicProperties(
                content_type=properties.content_type,
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=properties.message_id,
                correlation_id=properties.correlation_id,
                reply_to=properties.reply_to,
                timestamp=int(time.time()),
                headers=headers,
            ),
        )

    @staticmethod
    def _answer(answers: Any, properties: Any, outcome: Outcome) -> None:
        try:
            answers.basic_publish(
                "",
                properties.reply_to,
                json.dumps(outcome.body, separators=(",", ":")).encode(),
                pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode=pika.DeliveryMode.Persistent,
                    correlation_id=properties.correlation_id or properties.message_id,
                    type="reply",
                    headers={"status": outcome.status, "command": outcome.command},
                ),
                mandatory=True,
            )
        except pika.exceptions.UnroutableError:
            log.warning("command answer not delivered: no such reply queue")


def main() -> None:
    """``malipo bus consume``: run the command consumer until SIGTERM or SIGINT."""
    settings = settings_or_exit("bus")
    configure_process_logging(settings)
    db = Database(
        settings.database_url.get_secret_value(),
        pool_size=2,
        application_name="malipo-bus",
        lock_timeout_ms=settings.db_lock_timeout_ms,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )
    publisher = Publisher(
        build_broker(
            settings.broker_url.get_secret_value(),
            publish_only=True,
            queue_type=settings.queue_type,
        )
    )
    gateways = GatewayRegistry.from_settings(settings)
    cipher = CredentialCipher(parse_credentials_keys(settings.credentials_keys.get_secret_value()))
    auth = Authenticator(db, settings.secret_key.get_secret_value().encode())
    desk = PaymentDesk(
        db,
        publisher,
        gateways,
        CommandLimits.from_settings(settings),
        PayLinks.from_settings(settings),
    )
    transfers = TransferCommands(db, auth, publisher, settings.max_body_bytes)
    consumer = CommandConsumer(
        settings.broker_url.get_secret_value(),
        CommandHandler(db, cipher, desk, transfers),
        queue_type=settings.queue_type,
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        consumer.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    consumer.run()


if __name__ == "__main__":
    main()
