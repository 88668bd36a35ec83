"""Message contracts and the broker: what travels between processes, and how.

Every actor's name and queue is declared here once, as an :class:`ActorSpec`.
Workers declare their actors from these specs; the ingress and the scheduler
enqueue by spec through :class:`Publisher`, so they never import worker code.
Messages carry ids and small values only. ``request_id`` and ``payment_id``
travel in message options and are bound in the log context on both sides.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Self
from urllib.parse import urlencode, urlsplit, urlunsplit

import dramatiq
import dramatiq.errors
import pika
import structlog
from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL, RabbitmqBroker
from dramatiq.common import xq_name
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from shared.domain.errors import PermanentError, TransientError


@dataclass(frozen=True)
class ActorSpec:
    actor_name: str
    queue_name: str


INITIATE_PAYMENT = ActorSpec("initiate_payment", "payments")
APPLY_CALLBACK = ActorSpec("apply_callback", "callbacks")
POLL_PAYMENT = ActorSpec("poll_payment", "polls")
SWEEP_PENDING = ActorSpec("sweep_pending_payments", "maintenance")
SEAL_AUDIT_LOG = ActorSpec("seal_audit_log", "maintenance")
RECORD_REFUSED_CALLBACK = ActorSpec("record_refused_callback", "callbacks")
COUNT_REFUSED_CALLBACKS = ActorSpec("count_refused_callbacks", "callbacks")
RETRY_PAYMENT = ActorSpec("retry_payment", "payments")
NOTIFY_MERCHANT = ActorSpec("notify_merchant", "notifications")
NOTIFY_CUSTOMER = ActorSpec("notify_customer", "notifications")
RELAY_OUTBOX = ActorSpec("relay_outbox", "maintenance")
DRAIN_DEAD_LETTERS = ActorSpec("drain_dead_letters", "maintenance")
SEND_TRANSFER = ActorSpec("send_transfer", "transfers")
CHECK_TRANSFER = ActorSpec("check_transfer", "transfers")
SWEEP_TRANSFERS = ActorSpec("sweep_transfers", "maintenance")
STREAM_EVENTS = ActorSpec("stream_events", "maintenance")
RECONCILE_WINDOW = ActorSpec("reconcile_window", "reconciliation")
RESOLVE_RECONCILIATION_ITEM = ActorSpec("resolve_reconciliation_item", "reconciliation")
NOTIFY_OPERATORS = ActorSpec("notify_operators", "notifications")

ALL_ACTORS = (
    INITIATE_PAYMENT,
    APPLY_CALLBACK,
    POLL_PAYMENT,
    SWEEP_PENDING,
    SEAL_AUDIT_LOG,
    RECORD_REFUSED_CALLBACK,
    COUNT_REFUSED_CALLBACKS,
    RETRY_PAYMENT,
    NOTIFY_MERCHANT,
    NOTIFY_CUSTOMER,
    RELAY_OUTBOX,
    DRAIN_DEAD_LETTERS,
    SEND_TRANSFER,
    CHECK_TRANSFER,
    SWEEP_TRANSFERS,
    STREAM_EVENTS,
    RECONCILE_WINDOW,
    RESOLVE_RECONCILIATION_ITEM,
    NOTIFY_OPERATORS,
)


class MessageContract:
    """Base of the message payloads: JSON-able fields, parsed strictly on the way in."""

    spec: ClassVar[ActorSpec]

    def to_kwargs(self) -> dict[str, Any]:
        fields: dict[str, Any] = dataclasses.asdict(self)  # type: ignore[call-overload]
        return fields

    @classmethod
    def from_kwargs(cls, fields: dict[str, Any]) -> Self:
        """Build from a message's kwargs; unknown keys are ignored (newer producers)."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        try:
            return cls(**{k: v for k, v in fields.items() if k in names})
        except TypeError as exc:
            raise MalformedMessage(f"{cls.__name__}: {exc}") from None


class MalformedMessage(PermanentError):
    """A message that does not fit its contract: retrying cannot help."""


@dataclass(frozen=True)
class InitiatePayment(MessageContract):
    """Create the intent (idempotently) and send the push. ``request`` is normalised."""

    spec: ClassVar[ActorSpec] = INITIATE_PAYMENT
    payment_id: str
    merchant_id: str
    idempotency_key: str
    request: dict[str, Any]
    request_hash: str
    accepted_at: str


@dataclass(frozen=True)
class ApplyCallback(MessageContract):
    """A raw, authenticated callback as the ingress received it."""

    spec: ClassVar[ActorSpec] = APPLY_CALLBACK
    gateway: str
    merchant_id: str
    body_b64: str
    headers: dict[str, str]
    received_at: str
    remote_addr: str | None = None
    attempt_ref: str | None = None
    method: str = "POST"
    query_string: str = ""


@dataclass(frozen=True)
class PollPayment(MessageContract):
    """Ask the gateway where a submitted payment stands; ``round`` counts the re-checks.

    ``once``: a single check outside the poll schedule (the customer came back to the
    pay page's return URL); a "not yet" answer does not start another chain of polls.
    """

    spec: ClassVar[ActorSpec] = POLL_PAYMENT
    payment_id: str
    round: int = 0
    once: bool = False


@dataclass(frozen=True)
class SweepPendingPayments(MessageContract):
    """Find submitted payments whose poll is overdue and poll them."""

    spec: ClassVar[ActorSpec] = SWEEP_PENDING


@dataclass(frozen=True)
class SealAuditLog(MessageContract):
    """Chain every committed, unsealed audit row (one sealer at a time)."""

    spec: ClassVar[ActorSpec] = SEAL_AUDIT_LOG


@dataclass(frozen=True)
class RecordRefusedCallback(MessageContract):
    """One callback the ingress refused (what ingresses before counts sent): counted as one."""

    spec: ClassVar[ActorSpec] = RECORD_REFUSED_CALLBACK
    gateway: str
    reason: str
    body_sha256: str
    body_bytes: int
    received_at: str
    remote_addr: str | None = None
    merchant_id: str | None = None


@dataclass(frozen=True)
class CountRefusedCallbacks(MessageContract):
    """What one ingress process refused since its last report, counted per bucket.

    Each bucket: ``minute`` (ISO, UTC), ``gateway``, ``merchant_id`` (or None),
    ``source``, ``reason``, ``count``, ``first_at``, ``last_at``, ``sample_sha256``.
    Counted at least once: a report redelivered after a worker crash adds again (these
    are counts of refused requests, never money).
    """

    spec: ClassVar[ActorSpec] = COUNT_REFUSED_CALLBACKS
    buckets: list[dict[str, Any]]


@dataclass(frozen=True)
class RetryPayment(MessageContract):
    """A customer's retry of a failed, cancelled or expired payment: a new attempt, same payment."""

    spec: ClassVar[ActorSpec] = RETRY_PAYMENT
    payment_id: str
    merchant_id: str
    requested_at: str
    # The cycle the customer retried from: a copy replayed later (a dead letter) finds the
    # payment past it and does nothing, instead of prompting the customer once more.
    cycle: int | None = None


@dataclass(frozen=True)
class NotifyMerchant(MessageContract):
    """Deliver one webhook event; ``force`` re-sends one already delivered (operator resend)."""

    spec: ClassVar[ActorSpec] = NOTIFY_MERCHANT
    event_id: int
    force: bool = False


@dataclass(frozen=True)
class NotifyCustomer(MessageContract):
    """Send one customer notification (SMS or e-mail)."""

    spec: ClassVar[ActorSpec] = NOTIFY_CUSTOMER
    notification_id: int


@dataclass(frozen=True)
class RelayOutbox(MessageContract):
    """Publish outbox rows whose after-commit publish was lost."""

    spec: ClassVar[ActorSpec] = RELAY_OUTBOX


@dataclass(frozen=True)
class DrainDeadLetters(MessageContract):
    """Move RabbitMQ's dead-letter (.XQ) copies into the dead_letters archive."""

    spec: ClassVar[ActorSpec] = DRAIN_DEAD_LETTERS


# Log-context keys that travel in message options from producer to consumer.
CONTEXT_OPTIONS = ("request_id", "payment_id")

# Connection parameters that make a dead broker fail fast instead of hanging a request.
_PIKA_DEFAULTS = {
    "connection_attempts": "1",
    "socket_timeout": "5",
    "stack_timeout": "10",
    "blocked_connection_timeout": "10",
    "heartbeat": "60",
}


class BrokerUnavailable(TransientError):
    """RabbitMQ did not confirm the message: it may not have been stored."""


def broker_urls(url: str) -> list[str]:
    """The nodes of ``MALIPO_BROKER_URL``: one URL, or several separated by ``;`` (a cluster:
    each connection tries them in order)."""
    return [part.strip() for part in url.split(";") if part.strip()]


def broker_url_with_defaults(url: str, *, publish_only: bool = False) -> str:
    """Add fail-fast pika parameters to an AMQP URL (each of a ``;`` list) unless it already
    sets them.

    ``publish_only``: connections that only publish from request threads sit idle
    between requests and cannot answer heartbeats; with heartbeats RabbitMQ would
    drop them every minute (dramatiq reconnects, but logs a scary traceback), so
    they ask for none. Consumers keep heartbeats: they service them while waiting.
    """
    nodes = broker_urls(url)
    if len(nodes) > 1:
        return ";".join(broker_url_with_defaults(node, publish_only=publish_only) for node in nodes)
    parts = urlsplit(url)
    given = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    defaults = {**_PIKA_DEFAULTS, "heartbeat": "0"} if publish_only else _PIKA_DEFAULTS
    query = urlencode({**defaults, **given})
    return urlunsplit(parts._replace(query=query))


def current_log_options() -> dict[str, str]:
    """The log-context values a message enqueued now would carry."""
    bound = structlog.contextvars.get_contextvars()
    return {key: str(bound[key]) for key in CONTEXT_OPTIONS if key in bound}


class LogContext(Middleware):
    """Carry the log context across the broker and bind it around each message."""

    def before_enqueue(self, broker: Any, message: Any, delay: Any) -> None:
        bound = structlog.contextvars.get_contextvars()
        for key in CONTEXT_OPTIONS:
            if key in bound and key not in message.options:
                message.options[key] = str(bound[key])

    def before_process_message(self, broker: Any, message: Any) -> None:
        structlog.contextvars.clear_contextvars()
        context = {key: message.options[key] for key in CONTEXT_OPTIONS if key in message.options}
        structlog.contextvars.bind_contextvars(
            message_id=message.message_id, actor=message.actor_name, **context
        )

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        structlog.contextvars.clear_contextvars()

    after_skip_message = after_process_message


def broker_parameters(url: str, *, publish_only: bool = False) -> list[pika.URLParameters]:
    """pika's parameters for every node of ``url``, tried in order by ``BlockingConnection``."""
    return [
        pika.URLParameters(broker_url_with_defaults(node, publish_only=publish_only))
        for node in broker_urls(url)
    ]


QUEUE_TYPES = ("classic", "quorum")
# A message redelivered this often (its consumer died every time) goes to the queue's
# dead-letter queue instead of being delivered again (quorum queues only).
QUORUM_DELIVERY_LIMIT = 50


def queue_arguments(queue_type: str, *, delivery_limit: bool = True) -> dict[str, Any]:
    """The declare arguments of a queue of ``queue_type`` (``MALIPO_QUEUE_TYPE``)."""
    if queue_type == "classic":
        return {}
    if queue_type != "quorum":
        raise ValueError(f"queue type must be one of {', '.join(QUEUE_TYPES)}")
    arguments: dict[str, Any] = {"x-queue-type": "quorum"}
    if delivery_limit:
        arguments["x-delivery-limit"] = QUORUM_DELIVERY_LIMIT
    return arguments


class MalipoBroker(RabbitmqBroker):
    """Dramatiq's RabbitMQ broker, declaring every queue (its delay queue and its dead-letter
    queue too) as ``queue_type``: classic, or quorum for a cluster.

    The dead-letter queue of a quorum queue has no delivery limit: it has nowhere to
    send a message on, and the dead-letter drain must see every one.
    """

    def __init__(self, *args: Any, queue_type: str = "classic", **kwargs: Any) -> None:
        queue_arguments(queue_type)  # refuse an unknown type before connecting
        super().__init__(*args, **kwargs)
        self.queue_type = queue_type

    def _build_queue_arguments(self, queue_name: str) -> dict[str, Any]:
        arguments: dict[str, Any] = super()._build_queue_arguments(queue_name)  # type: ignore[no-untyped-call]
        return {**arguments, **queue_arguments(self.queue_type)}

    def _declare_xq_queue(self, queue_name: str) -> Any:
        return self.channel.queue_declare(
            queue=xq_name(queue_name),
            durable=True,
            arguments={
                "x-message-ttl": DEAD_MESSAGE_TTL,
                **queue_arguments(self.queue_type, delivery_limit=False),
            },
        )


def build_broker(
    broker_url: str, *, publish_only: bool = False, queue_type: str = "classic"
) -> RabbitmqBroker:
    """The one RabbitMQ broker of a process, with publisher confirms and mandatory routing.

    Call once per process (the worker entry point, ``create_app``'s caller) and, in
    workers, pass it to ``dramatiq.set_broker`` before any actor is declared.
    ``publish_only`` for processes that never consume (ingress, scheduler, tools).
    """
    middleware = [
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(max_retries=0),
        CurrentMessage(),
        LogContext(),
    ]
    return MalipoBroker(
        url=broker_url_with_defaults(broker_url, publish_only=publish_only),
        confirm_delivery=True,
        middleware=middleware,
        queue_type=queue_type,
    )


def current_message_retries() -> int:
    """How many times the message being processed has failed before (0 on first delivery)."""
    message = CurrentMessage.get_current_message()
    return int(message.options.get("retries", 0)) if message is not None else 0


class Publisher:
    """Enqueue by actor spec; returns only once RabbitMQ confirmed the message."""

    def __init__(self, broker: RabbitmqBroker) -> None:
        self.broker = broker

    def enqueue(
        self,
        spec: ActorSpec,
        kwargs: dict[str, Any],
        *,
        delay_ms: int | None = None,
        options: dict[str, Any] | None = None,
        message_id: str | None = None,
    ) -> str:
        """``message_id``: keep a message's identity when it is sent again (a replay)."""
        message: dramatiq.Message[Any] = dramatiq.Message(
            queue_name=spec.queue_name,
            actor_name=spec.actor_name,
            args=(),
            kwargs=kwargs,
            options=dict(options or {}),
        )
        if message_id:
            message = message.copy(message_id=message_id)
        try:
            self.broker.enqueue(message, delay=delay_ms)
        except dramatiq.errors.BrokerConnectionError as exc:
            raise BrokerUnavailable(str(exc)) from exc
        return str(message.message_id)

    def send(self, message: MessageContract, *, delay_ms: int | None = None) -> str:
        """Enqueue one contract message; see :meth:`enqueue`."""
        return self.enqueue(message.spec, message.to_kwargs(), delay_ms=delay_ms)

    def ping(self) -> None:
        """Raise BrokerUnavailable unless a channel to RabbitMQ can be opened now."""
        try:
            self.broker.channel.basic_qos(prefetch_count=0)  # a cheap round trip
        except Exception as exc:
            del self.broker.connection
            raise BrokerUnavailable(str(exc)) from exc

    def close(self) -> None:
        self.broker.close()


@dataclass(frozen=True)
class SendTransfer(MessageContract):
    """Send a pending refund or payout to its gateway (at most once; see workers/transfers)."""

    spec: ClassVar[ActorSpec] = SEND_TRANSFER
    transfer_id: str


@dataclass(frozen=True)
class CheckTransfer(MessageContract):
    """Ask the gateway where a submitted or unknown transfer stands."""

    spec: ClassVar[ActorSpec] = CHECK_TRANSFER
    transfer_id: str


@dataclass(frozen=True)
class SweepTransfers(MessageContract):
    """Send pending transfers whose message was lost; check those whose result is overdue."""

    spec: ClassVar[ActorSpec] = SWEEP_TRANSFERS


@dataclass(frozen=True)
class ReconcileWindow(MessageContract):
    """Reconcile ``gateway`` over ``[start, end)`` (ISO 8601), for one merchant or all.

    ``trigger``: ``schedule`` or ``ops``. The window names the run, so a second message
    for the same window re-runs it without a second effect.
    """

    spec: ClassVar[ActorSpec] = RECONCILE_WINDOW
    gateway: str
    start: str
    end: str
    merchant_id: str | None = None
    trigger: str = "ops"


@dataclass(frozen=True)
class ResolveReconciliationItem(MessageContract):
    """An operator's resolution of a reconciliation item, with a note (audited)."""

    spec: ClassVar[ActorSpec] = RESOLVE_RECONCILIATION_ITEM
    item_id: int
    note: str
    actor: str


@dataclass(frozen=True)
class NotifyOperators(MessageContract):
    """An alert for the platform's operators (``reconciliation.completed``, ...)."""

    spec: ClassVar[ActorSpec] = NOTIFY_OPERATORS
    alert_id: str
    event: str
    subject: str
    text: str
    data: dict[str, Any]


@dataclass(frozen=True)
class StreamEvents(MessageContract):
    """Publish committed outbox events on the ``malipo.events`` exchange (see workers/events)."""

    spec: ClassVar[ActorSpec] = STREAM_EVENTS
